"""Data for image-to-image translation: paired and unpaired sources, derived pairs, jitter, and the
``paired_folder`` / ``unpaired_folders`` loaders on files the tests write (and on real faces and CIFAR-10).

Derived inputs are checked against independent implementations (NumPy, scipy.ndimage, Pillow, and
scikit-image's Canny where installed), not only for their shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from gantrain.config import validate
from gantrain.data import DerivedPairs, ImageSource, PairedSource, UnpairedSource, check_data, derive_pairs, has_splits, load_dataset
from gantrain.data import pairs
from gantrain.data.unpaired_folders import holdout_indices
from tests.conftest import user_error

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(name: str) -> Path:
    """Real data in ../shared/data; fail (not skip) when it is missing, as tests/test_data.py does."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.fail(f"real test data missing: {path} is not a folder (check the repository out next to shared/)", pytrace=False)
    return path


def data_cfg(**data) -> dict:
    """A resolved ``data`` section, validated the way the trainer gets it."""
    return validate({"model": {"family": "gan"}, "data": data})["data"]


def save(path: Path, pixels, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels), mode)
    img.save(path)
    return path


def first(source, batch_size=4, seed=0, start=0, count=1) -> list[dict]:
    it = iter(source.pipeline(batch_size, seed, start))
    return [{k: v.numpy() for k, v in next(it).items()} for _ in range(count)]


def unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# Paired and unpaired sources
# ---------------------------------------------------------------------------------------------
def numbered_pairs(n: int, size: int = 4):
    """Grey input i is filled with 10 i, its RGB target with (10 i, 255 - 10 i, 7): a batch shows its pairing."""
    values = 10 * np.arange(n, dtype=np.uint8)
    inputs = np.broadcast_to(values[:, None, None, None], (n, size, size, 1)).copy()
    targets = np.stack([inputs[..., 0], 255 - inputs[..., 0], np.full_like(inputs[..., 0], 7)], axis=-1)
    return inputs, targets


def test_paired_source_batches_keep_pairs_and_shapes():
    src = PairedSource(*numbered_pairs(10), description="numbered")
    assert src.roles == ("source", "target") and len(src) == 10
    assert src.image_shape == (4, 4, 3) and src.input_shape == (4, 4, 1) and src.class_names == [] and src.num_classes == 0
    for batch in first(src, count=4):
        assert batch["source"].dtype == np.float32 and batch["source"].shape == (4, 4, 4, 1) and batch["target"].shape == (4, 4, 4, 3)
        np.testing.assert_allclose(batch["target"][..., 0:1], batch["source"], atol=1e-6)
        np.testing.assert_allclose(batch["target"][..., 1:2], -batch["source"], atol=1e-6)
    with pytest.raises(ValueError, match="differ"):
        PairedSource(np.zeros((3, 4, 4, 1), np.uint8), np.zeros((2, 4, 4, 3), np.uint8))


def test_unpaired_source_shuffles_each_domain_on_its_own():
    a = np.broadcast_to(np.arange(3, dtype=np.uint8)[:, None, None, None], (3, 2, 2, 1)).copy()
    b = np.broadcast_to(100 + np.arange(5, dtype=np.uint8)[:, None, None, None], (5, 2, 2, 3)).copy()
    src = UnpairedSource(a, b)
    assert src.roles == ("domain_a", "domain_b") and len(src) == 5
    assert src.image_shape == (2, 2, 3) and src.shape_a == (2, 2, 1)
    batches = first(src, batch_size=3, seed=4, count=5)
    stream_a = [round((x + 1) * 127.5) for batch in batches for x in batch["domain_a"][:, 0, 0, 0]]
    stream_b = [round((x + 1) * 127.5) - 100 for batch in batches for x in batch["domain_b"][:, 0, 0, 0]]
    # A's 15 draws are 5 permutations of its 3 images, B's 3 permutations of its 5: epochs of their own
    assert all(sorted(stream_a[i : i + 3]) == [0, 1, 2] for i in range(0, 15, 3))
    assert all(sorted(stream_b[i : i + 5]) == [0, 1, 2, 3, 4] for i in range(0, 15, 5))
    with pytest.raises(ValueError, match="image size"):
        UnpairedSource(a, np.zeros((2, 3, 3, 1), np.uint8))


def test_examples_are_the_unjittered_pairs_for_grids_and_evaluation():
    inputs, targets = numbered_pairs(5)
    got = PairedSource(inputs, targets, jitter=True).examples([3, 1])
    np.testing.assert_allclose(got["source"], unit(inputs[[3, 1]]), atol=1e-6)
    np.testing.assert_allclose(got["target"], unit(targets[[3, 1]]), atol=1e-6)
    got = UnpairedSource(inputs, targets[:2], jitter=True).examples([4], [1])
    np.testing.assert_allclose(got["domain_a"], unit(inputs[[4]]), atol=1e-6)
    np.testing.assert_allclose(got["domain_b"], unit(targets[[1]]), atol=1e-6)
    got = derive_pairs(ImageSource(targets, np.full(5, -1, np.int32)), "grey", jitter=True).examples([2])
    np.testing.assert_allclose(got["source"][..., 0], bt601(unit(targets[[2]])), atol=1e-5)


def derived(n=10, size=8, how="grey", jitter=False) -> DerivedPairs:
    images = RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return derive_pairs(ImageSource(images, np.full(n, -1, np.int32), [], "noise"), how, jitter=jitter)


@pytest.mark.parametrize("kind", ["paired", "unpaired", "derived"])
def test_resume_with_jitter_continues_the_same_stream(kind):
    """Batches from start_batch 3 are batches 3, 4, 5 of the stream from 0: order, crops and flips."""
    if kind == "paired":
        inputs, targets = numbered_pairs(10, size=8)
        src = PairedSource(inputs + RNG.integers(0, 5, inputs.shape, dtype=np.uint8), targets, jitter=True)
    elif kind == "unpaired":
        src = UnpairedSource(RNG.integers(0, 256, (7, 8, 8, 1), dtype=np.uint8), RNG.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), jitter=True)
    else:
        src = derived(how="sobel", jitter=True)
    full = first(src, seed=9, count=6)
    resumed = first(src, seed=9, start=3, count=3)
    for whole, part in zip(full[3:], resumed):
        assert whole.keys() == part.keys()
        for role in whole:
            np.testing.assert_array_equal(whole[role], part[role])
    other = first(src, seed=10, count=1)[0]
    assert any(not np.array_equal(other[role], full[0][role]) for role in other)


def jitter_parameters(jittered: np.ndarray, original: np.ndarray) -> list[tuple[int, int, bool]]:
    """For each jittered image, the (top, left, flipped) that makes it from ``original``: resized to
    round(1.117 x size) bilinearly, cropped there and mirrored when flipped (searched exhaustively)."""
    size = original.shape[0]
    big = round(size * 286 / 256)
    resized = tf.image.resize(original[None], (big, big), method="bilinear").numpy()[0]
    found = []
    for image in jittered:
        matches = [(top, left, flip) for top in range(big - size + 1) for left in range(big - size + 1) for flip in (False, True)
                   if np.allclose(image, (lambda crop: crop[:, ::-1] if flip else crop)(resized[top : top + size, left : left + size]), atol=1e-5)]
        assert len(matches) == 1, matches
        found.append(matches[0])
    return found


def test_jitter_is_a_resize_crop_and_flip_shared_by_both_sides_of_a_pair():
    # One image (so every batch shows it), with distinct pixels: each jittered copy reveals its crop and flip.
    grey = RNG.integers(0, 256, (1, 16, 16, 1), dtype=np.uint8)
    target = np.concatenate([grey, 255 - grey, grey], axis=-1)  # a known pixel map of the input
    src = PairedSource(grey, target, jitter=True)
    params = []
    for batch in first(src, batch_size=6, seed=1, count=3):
        # the relation holds after jitter: both sides moved alike
        np.testing.assert_allclose(batch["target"][..., 0:1], batch["source"], atol=1e-5)
        np.testing.assert_allclose(batch["target"][..., 1:2], -batch["source"], atol=1e-5)
        params += jitter_parameters(batch["source"], unit(grey[0]))
    assert {flip for _, _, flip in params} == {False, True}
    assert len({(top, left) for top, left, _ in params}) > 2  # 16 -> 18: offsets 0..2 each way


def test_unpaired_domains_are_jittered_independently():
    image = RNG.integers(0, 256, (1, 16, 16, 1), dtype=np.uint8)
    batch = first(UnpairedSource(image, image, jitter=True), batch_size=8, seed=2)[0]
    jitter_a = jitter_parameters(batch["domain_a"], unit(image[0]))
    jitter_b = jitter_parameters(batch["domain_b"], unit(image[0]))
    assert jitter_a != jitter_b


def test_derived_pairs_jitter_moves_the_image_then_derives():
    src = derived(n=6, size=16, how="grey", jitter=True)
    plain = first(derived(n=6, size=16, how="grey"), batch_size=6)[0]
    batch = first(src, batch_size=6)[0]
    np.testing.assert_allclose(batch["source"][..., 0], batch["target"] @ np.array(pairs.LUMA, np.float32), atol=1e-5)
    assert not np.allclose(batch["target"], plain["target"])


# ---------------------------------------------------------------------------------------------
# Derived pairs against independent implementations
# ---------------------------------------------------------------------------------------------
def bt601(rgb: np.ndarray) -> np.ndarray:
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def sobel_reference(grey: np.ndarray) -> np.ndarray:
    magnitude = np.hypot(ndimage.sobel(grey.astype(np.float64), 0), ndimage.sobel(grey.astype(np.float64), 1))
    return 2 * magnitude / magnitude.max() - 1


def blur_reference(image: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(image.astype(np.float64), (sigma, sigma, 0))


def downscale_reference(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means (area), then Pillow's bicubic on float images back to the size, clipped."""
    h, w, c = image.shape
    small = image.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3)).astype(np.float32)
    up = [np.asarray(Image.fromarray(small[..., k], mode="F").resize((w, h), Image.Resampling.BICUBIC)) for k in range(c)]
    return np.clip(np.stack(up, axis=-1), -1, 1)


def canny_reference(grey01: np.ndarray, sigma: float) -> np.ndarray:
    """The same definition in NumPy/SciPy, hysteresis by connected components instead of dilation."""
    blurred = ndimage.gaussian_filter(grey01.astype(np.float64), sigma)
    d_row, d_col = ndimage.sobel(blurred, 0), ndimage.sobel(blurred, 1)
    magnitude = np.hypot(d_row, d_col)
    top, (h, w) = magnitude.max(), magnitude.shape
    sector = np.floor((np.degrees(np.arctan2(d_row, d_col)) % 180 + 22.5) / 45).astype(int) % 4
    padded = np.pad(magnitude, 1)
    peak = np.zeros((h, w), bool)
    for s, (dr, dc) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead, behind = padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w], padded[1 - dr : 1 - dr + h, 1 - dc : 1 - dc + w]
        peak |= (sector == s) & (magnitude > behind + 1e-5 * top) & (magnitude >= ahead - 1e-5 * top)
    weak = peak & (magnitude >= pairs.CANNY_LOW * top) & (magnitude > 0)
    strong = weak & (magnitude >= pairs.CANNY_HIGH * top)
    components, _ = ndimage.label(weak, structure=np.ones((3, 3)))
    return np.isin(components, np.unique(components[strong])) & weak


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Four real ORL faces, 32x32 RGB (grey photographs), uint8."""
    from gantrain.data.image_folder import load_image

    files = sorted((shared("orl-faces") / "s1").glob("*.pgm"))[:2] + sorted((shared("orl-faces") / "s2").glob("*.pgm"))[:2]
    return np.stack([load_image(f, (32, 32), 3) for f in files])


@pytest.mark.parametrize("how, factor", [("grey", None), ("sobel", None), ("blur", 1.5), ("downscale", 4), ("canny", 1.0)])
def test_derived_source_matches_an_independent_implementation(faces, how, factor):
    colour = faces.copy()
    colour[..., 0] = 255 - colour[..., 0]  # real colour differences, so grey is not a plain copy
    src = derive_pairs(ImageSource(colour, np.full(4, -1, np.int32)), how, factor)
    assert src.input_shape == (32, 32, 3 if how in ("blur", "downscale") else 1) and src.image_shape == (32, 32, 3)
    batch = first(src, batch_size=4)[0]
    target, source = batch["target"].astype(np.float64), batch["source"]
    assert source.shape == (4, *src.input_shape) and source.dtype == np.float32
    for image, got in zip(target, source):
        if how == "grey":
            np.testing.assert_allclose(got[..., 0], bt601(image), atol=1e-5)
        elif how == "sobel":
            np.testing.assert_allclose(got[..., 0], sobel_reference(bt601(image)), atol=1e-5)
        elif how == "blur":
            np.testing.assert_allclose(got, blur_reference(image, 1.5), atol=1e-5)
        elif how == "downscale":
            np.testing.assert_allclose(got, downscale_reference(image.astype(np.float32), 4), atol=1e-5)
        else:
            assert set(np.unique(got)) <= {-1.0, 1.0}
            expected = canny_reference((bt601(image) + 1) / 2, 1.0)
            assert 40 < expected.sum() < 500, expected.sum()  # real edges, not an empty or full map
            assert np.sum((got[..., 0] > 0) != expected) <= 2  # float32 vs float64 at a threshold or tie


def test_blur_mirrors_borders_wider_than_the_image():
    image = RNG.random((1, 5, 4, 2)).astype(np.float32) * 2 - 1
    got = pairs.gaussian_blur(tf.constant(image), 3.0).numpy()[0]  # radius 12 > 5 rows
    np.testing.assert_allclose(got, blur_reference(image[0], 3.0), atol=1e-5)


def square(size=32, lo=8, hi=24) -> np.ndarray:
    img = np.full((1, size, size, 1), -1.0, np.float32)
    img[0, lo:hi, lo:hi] = 1.0
    return img


def test_canny_finds_a_thin_closed_ring_around_a_square():
    edges = pairs.canny(tf.constant(square()), 1.0).numpy()[0, ..., 0] > 0
    # the square covers rows/cols 8..23: its edge lies between 7|8 and 23|24
    ring = np.zeros_like(edges)
    ring[7:25, 7:25] = True
    ring[9:23, 9:23] = False
    assert not (edges & ~ring).any(), "edges away from the square's border"
    for k in range(10, 22):  # along each side, away from the corners: exactly one pixel across the edge
        assert edges[k, 7:9].sum() == 1 and edges[k, 23:25].sum() == 1, k
        assert edges[7:9, k].sum() == 1 and edges[23:25, k].sum() == 1, k
    # in the middle of each side the two pixels across the edge tie: a straight line, not float noise
    middle = slice(12, 20)
    for side in (edges[middle, 7:9], edges[middle, 23:25], edges[7:9, middle].T, edges[23:25, middle].T):
        assert side.all(axis=0).sum() == 1, side.astype(int)
    assert ndimage.label(edges, structure=np.ones((3, 3)))[1] == 1  # one closed contour
    assert (pairs.canny(tf.constant(np.zeros((1, 8, 8, 1), np.float32)), 1.0).numpy() == -1).all()  # flat: no edges


def test_canny_agrees_with_scikit_image_within_a_pixel(faces):
    from skimage import feature  # a test dependency (pyproject dev extra)
    grey01 = bt601(unit(faces[0]).astype(np.float64)) / 2 + 0.5
    blurred = ndimage.gaussian_filter(grey01, 1.0)
    top = np.hypot(ndimage.sobel(blurred, 0), ndimage.sobel(blurred, 1)).max()
    theirs = feature.canny(grey01, 1.0, low_threshold=pairs.CANNY_LOW * top, high_threshold=pairs.CANNY_HIGH * top, mode="reflect")
    ours = pairs.canny(tf.constant(unit(faces[:1])), 1.0).numpy()[0, ..., 0] > 0
    inner = (slice(2, -2), slice(2, -2))  # scikit-image leaves the border out

    def near(a, b):  # share of a's pixels within one pixel of b's
        return (a & ndimage.binary_dilation(b, np.ones((3, 3)))).sum() / a.sum()

    assert near(ours[inner], theirs[inner]) > 0.9 and near(theirs[inner], ours[inner]) > 0.9


def test_derivation_errors():
    images = ImageSource(np.zeros((2, 8, 8, 3), np.uint8), np.full(2, -1, np.int32))
    user_error(lambda: derive_pairs(images, "edges"), "unknown derivation 'edges'", "grey, sobel, canny, blur, downscale")
    user_error(lambda: derive_pairs(images, "downscale", 1.0), "downscale factor", "> 1")
    user_error(lambda: derive_pairs(images, "blur", 0), "blur factor", "> 0")
    user_error(lambda: derive_pairs(images, "downscale", 16), "cannot downscale 8x8 images by 16")
    assert derive_pairs(images, "blur").factor == 2.0 and derive_pairs(images, "grey", 3).factor is None


def test_holdout_is_fixed_disjoint_and_complete(tmp_path):
    train, test = holdout_indices(50, 0.1, "train", tmp_path), holdout_indices(50, 0.1, "test", tmp_path)
    assert len(test) == 5 and len(train) == 45
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(50))
    np.testing.assert_array_equal(test, holdout_indices(50, 0.1, "test", tmp_path))
    assert len(holdout_indices(3, 0.01, "test", tmp_path)) == 1  # at least one held out
    user_error(lambda: holdout_indices(1, 0.5, "train", tmp_path), "data.holdout", "of the 1 images in", "leaves no train images")


# ---------------------------------------------------------------------------------------------
# paired_folder
# ---------------------------------------------------------------------------------------------
def write_pairs(folder: Path, n: int, size=(6, 8), b_ext=".png") -> list[np.ndarray]:
    """A/i.png (grey value 20 i + noise) and B/i<b_ext> = its negative in RGB; returns the A images."""
    images = []
    for i in range(n):
        a = np.clip(20 * i + RNG.integers(0, 10, size), 0, 255).astype(np.uint8)
        save(folder / "A" / f"img{i}.png", a)
        save(folder / "B" / f"img{i}{b_ext}", np.stack([255 - a] * 3, axis=-1))
        images.append(a)
    return images


def paired(root: Path, **params):
    params.setdefault("image_size", [6, 8])
    return load_dataset(data_cfg(loader="paired_folder", root=str(root), **params))


def test_paired_folders_match_by_name_in_both_directions(tmp_path):
    originals = write_pairs(tmp_path, 4, b_ext=".bmp")
    cfg = data_cfg(loader="paired_folder", root=str(tmp_path), image_size=[6, 8], input_channels=1)
    assert check_data(cfg) == ("source", "target") and not has_splits(cfg)
    src = load_dataset(cfg)
    assert isinstance(src, PairedSource) and len(src) == 4 and src.input_shape == (6, 8, 1) and src.image_shape == (6, 8, 3)
    np.testing.assert_array_equal(src.inputs[..., 0], np.stack(originals))  # native size: the files' pixels
    np.testing.assert_array_equal(src.targets, 255 - np.repeat(src.inputs, 3, axis=-1))
    assert src.location == str(tmp_path.resolve()) and "4 pairs" in src.description
    back = paired(tmp_path, direction="b2a", channels=1)
    np.testing.assert_array_equal(back.inputs, 255 - back.targets)
    np.testing.assert_array_equal(back.targets[..., 0], np.stack(originals))


def test_paired_folders_with_split_folders(tmp_path):
    write_pairs(tmp_path / "train", 3)
    write_pairs(tmp_path / "test", 2)
    cfg = data_cfg(loader="paired_folder", root=str(tmp_path), image_size=[6, 8])
    assert has_splits(cfg) and check_data(cfg) == ("source", "target")
    assert len(load_dataset(cfg)) == 3 and len(load_dataset(cfg, "test")) == 2
    (tmp_path / "test" / "B" / "img1.png").unlink()  # validate lists the test split's pairs too
    user_error(lambda: check_data(cfg), "unmatched pairs", "img1.png")


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=1)


def test_side_by_side_splits_at_the_middle_and_reads_val_as_test(tmp_path):
    lefts = [RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    rights = [RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    for i, (left, right) in enumerate(zip(lefts, rights)):
        save(tmp_path / "train" / f"{i}.png", side_by_side(left, right))
    save(tmp_path / "val" / "0.png", side_by_side(lefts[0], rights[0]))
    cfg = data_cfg(loader="paired_folder", root=str(tmp_path), layout="side_by_side", image_size=8)
    assert has_splits(cfg) and check_data(cfg) == ("source", "target")
    src = load_dataset(cfg)
    np.testing.assert_array_equal(src.inputs, np.stack(lefts))
    np.testing.assert_array_equal(src.targets, np.stack(rights))
    swapped = load_dataset(data_cfg(loader="paired_folder", root=str(tmp_path), layout="side_by_side", image_size=8, direction="b2a"), "test")
    np.testing.assert_array_equal(swapped.inputs[0], rights[0])
    np.testing.assert_array_equal(swapped.targets[0], lefts[0])


def test_side_by_side_decodes_any_mode_and_size(tmp_path):
    half = np.zeros((20, 30), np.uint8)
    half[:, 10:20] = 200  # a bright middle band: the centre crop of each half keeps it
    save(tmp_path / "grey.png", side_by_side(half, 255 - half))
    save(tmp_path / "rgba.png", np.dstack([side_by_side(half, 255 - half)] * 3 + [np.full((20, 60), 255, np.uint8)]))
    save(tmp_path / "palette.gif", Image.fromarray(np.dstack([side_by_side(half, 255 - half)] * 3)).convert("P", palette=Image.Palette.ADAPTIVE))
    save(tmp_path / "deep.png", (side_by_side(half, 255 - half).astype(np.uint16) * 257))  # 16-bit grey
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")
    src = paired(tmp_path, layout="side_by_side", image_size=10, channels=3, input_channels=1)
    assert src.inputs.shape == (4, 10, 10, 1) and src.targets.shape == (4, 10, 10, 3)
    assert np.abs(src.inputs[:, 5, 5, 0].astype(int) - 200).max() <= 3
    assert np.abs(src.targets[:, 5, 5, :].astype(int) - 55).max() <= 3
    assert src.inputs[:, 5, 0, 0].max() <= 3 and src.targets[:, 5, 0, :].min() >= 252


def test_paired_folder_decodes_modes_and_sizes_to_the_requested_size(tmp_path):
    save(tmp_path / "A" / "a.png", Image.new("RGBA", (40, 50), (255, 0, 0, 255)))
    save(tmp_path / "B" / "a.jpg", Image.new("RGB", (13, 9), (0, 0, 250)))
    save(tmp_path / "A" / "b.gif", Image.new("RGB", (30, 70), (0, 200, 0)).convert("P", palette=Image.Palette.ADAPTIVE))
    save(tmp_path / "B" / "b.pgm", np.full((16, 16), 100 * 257, np.uint16))  # 16-bit PGM
    src = paired(tmp_path, image_size=[12, 16])
    assert src.inputs.shape == (2, 12, 16, 3)
    assert np.abs(src.inputs[:, 6, 8].astype(int) - [[255, 0, 0], [0, 200, 0]]).max() <= 3
    assert np.abs(src.targets[:, 6, 8].astype(int) - [[0, 0, 250], [100, 100, 100]]).max() <= 3


def test_paired_folder_errors(tmp_path):
    user_error(lambda: paired(tmp_path / "nope"), "data.root", "nope", "is not a folder")
    (tmp_path / "A").mkdir()
    user_error(lambda: paired(tmp_path), str(tmp_path / "B"), "is not a folder", "side_by_side")
    (tmp_path / "B").mkdir()
    user_error(lambda: paired(tmp_path), "no images in", str(tmp_path / "A"))
    write_pairs(tmp_path, 6)
    for i in range(4):
        (tmp_path / "B" / f"img{i}.png").rename(tmp_path / "B" / f"other{i}.png")
    msg = user_error(lambda: paired(tmp_path), "unmatched pairs", "4 file(s) in A/", "4 in B/", "img0.png, img1.png, img2.png, ...",
                     "other0.png, other1.png, other2.png, ...", "by name without extension")
    assert "img3.png" not in msg  # the first few only
    cfg = data_cfg(loader="paired_folder", root=str(tmp_path))
    user_error(lambda: check_data(cfg), "unmatched pairs")  # validate finds it without decoding


def test_paired_folder_duplicate_names_and_missing_split(tmp_path):
    write_pairs(tmp_path, 2)
    save(tmp_path / "A" / "img0.jpg", np.zeros((6, 8), np.uint8))
    user_error(lambda: paired(tmp_path), "img0.jpg and img0.png", "have the same name")
    write_pairs(tmp_path / "sets" / "train", 2)
    user_error(lambda: paired(tmp_path / "sets", split="test"), "has the split folder(s) train but no test/ or val/")


def test_paired_folder_unreadable_files(tmp_path, capsys):
    write_pairs(tmp_path, 3)
    bad = tmp_path / "B" / "img1.png"
    bad.write_bytes(b"\x89PNG but not really")
    user_error(lambda: paired(tmp_path), str(bad), "cannot read image", "on_error: skip")
    src = paired(tmp_path, on_error="skip")
    assert len(src) == 2
    assert "skipped 1 of 3 pairs" in capsys.readouterr().err
    for i in (0, 2):
        (tmp_path / "A" / f"img{i}.png").write_bytes(b"")
    user_error(lambda: paired(tmp_path, on_error="skip"), "none of the 3 pairs")


def test_side_by_side_errors(tmp_path):
    user_error(lambda: paired(tmp_path, layout="side_by_side"), "no images in", str(tmp_path))
    save(tmp_path / "ok.png", np.zeros((4, 8), np.uint8))
    save(tmp_path / "odd.png", np.zeros((4, 9), np.uint8))
    user_error(lambda: paired(tmp_path, layout="side_by_side", image_size=4), "odd.png", "9 pixels wide", "halves of equal width")
    (tmp_path / "odd.png").write_bytes(b"GIF89a broken")
    user_error(lambda: paired(tmp_path, layout="side_by_side", image_size=4), "odd.png", "cannot read image")
    assert len(paired(tmp_path, layout="side_by_side", image_size=4, on_error="skip")) == 1


# ---------------------------------------------------------------------------------------------
# unpaired_folders
# ---------------------------------------------------------------------------------------------
def write_domain(folder: Path, n: int, value: int, mode="L", size=(10, 12)) -> None:
    for i in range(n):
        save(folder / f"{i:03d}.png", Image.new(mode, size, value if mode == "L" else (value, value, 0)))


def unpaired(**params):
    params.setdefault("image_size", 8)
    return load_dataset(data_cfg(loader="unpaired_folders", **params))


def test_cyclegan_layout(tmp_path):
    write_domain(tmp_path / "trainA", 3, 10)
    write_domain(tmp_path / "trainB", 5, 200, mode="RGB", size=(30, 20))
    write_domain(tmp_path / "testA", 2, 20)
    write_domain(tmp_path / "testB", 1, 220)
    cfg = data_cfg(loader="unpaired_folders", root=str(tmp_path), image_size=8, channels=1)
    assert check_data(cfg) == ("domain_a", "domain_b") and has_splits(cfg)
    src = load_dataset(cfg)
    assert isinstance(src, UnpairedSource) and len(src) == 5 and src.image_shape == (8, 8, 1)
    assert len(src.domain_a) == 3 and len(src.domain_b) == 5
    assert (src.domain_a == 10).all() and np.abs(src.domain_b.astype(int) - round(0.299 * 200 + 0.587 * 200)).max() <= 1
    test = load_dataset(cfg, "test")
    assert len(test.domain_a) == 2 and len(test.domain_b) == 1 and (test.domain_a == 20).all()
    batch = first(src, batch_size=2)[0]
    assert batch["domain_a"].shape == (2, 8, 8, 1) and np.allclose(batch["domain_a"], 10 / 127.5 - 1)


def test_two_class_folders_with_a_fixed_holdout():
    """The shipped horse2deer config's data: CIFAR-10 horse <-> deer, 10% of each held out."""
    cifar = shared("cifar10-jpeg-test")
    params = dict(domain_a=str(cifar / "horse"), domain_b=str(cifar / "deer"), holdout=0.1, image_size=32)
    cfg = data_cfg(loader="unpaired_folders", **params)
    assert check_data(cfg) == ("domain_a", "domain_b") and has_splits(cfg)
    train, test = load_dataset(cfg), load_dataset(cfg, "test")
    assert (len(train.domain_a), len(train.domain_b), len(test.domain_a), len(test.domain_b)) == (900, 900, 100, 100)
    assert len(train) == 900 and train.image_shape == (32, 32, 3) and "held out" in train.description
    # the held-out images are the files holdout_indices names, whatever the run
    files = sorted((cifar / "horse").glob("*.jpg"))
    held = holdout_indices(len(files), 0.1, "test", cifar / "horse")
    with Image.open(files[held[0]]) as img:
        np.testing.assert_array_equal(test.domain_a[0], np.asarray(img.convert("RGB")))
    train_set = {img.tobytes() for img in train.domain_a}
    assert not any(img.tobytes() in train_set for img in test.domain_a)


def test_unpaired_folders_explicit_test_folders_and_skip(tmp_path, capsys):
    write_domain(tmp_path / "a", 2, 30)
    write_domain(tmp_path / "b", 4, 40)
    write_domain(tmp_path / "a_test", 1, 50)
    write_domain(tmp_path / "b_test", 1, 60)
    (tmp_path / "b" / "broken.png").write_bytes(b"nope")
    folders = {key: str(tmp_path / name) for key, name in (("domain_a", "a"), ("domain_b", "b"), ("domain_a_test", "a_test"), ("domain_b_test", "b_test"))}
    user_error(lambda: unpaired(**folders), "broken.png", "cannot read image")
    src = unpaired(**folders, on_error="skip")
    assert len(src.domain_b) == 4 and "skipped 1 of 5 image files" in capsys.readouterr().err
    test = unpaired(**folders, split="test", on_error="skip")
    assert (test.domain_a == 50).all() and (test.domain_b == 60).all()
    assert not has_splits(data_cfg(loader="unpaired_folders", domain_a=folders["domain_a"], domain_b=folders["domain_b"]))


def test_unpaired_folders_errors(tmp_path):
    write_domain(tmp_path / "trainA", 2, 10)
    (tmp_path / "trainB").mkdir()
    user_error(lambda: unpaired(root=str(tmp_path)), "data.root: no images in", str(tmp_path / "trainB"))
    user_error(lambda: check_data(data_cfg(loader="unpaired_folders", root=str(tmp_path))), "no images in", "trainB")
    user_error(lambda: unpaired(root=str(tmp_path / "nope")), "data.root", "is not a folder")
    (tmp_path / "trainB").rmdir()
    user_error(lambda: unpaired(root=str(tmp_path)), str(tmp_path / "trainB"), "is not a folder", "trainA/ trainB/ testA/ testB/")
    write_domain(tmp_path / "trainB", 2, 10)
    user_error(lambda: unpaired(root=str(tmp_path), split="test"), "data.split", "no testA/ and testB/", "data.holdout")
    assert len(unpaired(root=str(tmp_path), split="test", holdout=0.5).domain_a) == 1
    a, b, empty = str(tmp_path / "trainA"), str(tmp_path / "trainB"), tmp_path / "empty"
    empty.mkdir()
    user_error(lambda: unpaired(root=str(tmp_path), domain_a=a), "data.root and data.domain_a", "set one")
    user_error(lambda: unpaired(domain_a=a), "data.domain_b: required")
    user_error(lambda: unpaired(), "data.domain_a: required")
    user_error(lambda: unpaired(domain_a=a, domain_b=str(empty)), "data.domain_b: no images in", str(empty))
    user_error(lambda: unpaired(domain_a=a, domain_b=str(tmp_path / "missing")), "data.domain_b", "missing", "is not a folder")
    user_error(lambda: unpaired(domain_a=a, domain_b=b, domain_a_test=a), "data.domain_a_test", "data.domain_b_test too")
    user_error(lambda: unpaired(domain_a=a, domain_b=b, split="test"), "no test split", "data.holdout")
    user_error(lambda: unpaired(domain_a=a, domain_b=b, domain_a_test=a, domain_b_test=b, holdout=0.1), "data.holdout")
    write_domain(tmp_path / "testA", 1, 10)
    write_domain(tmp_path / "testB", 1, 10)
    user_error(lambda: unpaired(root=str(tmp_path), holdout=0.1), "data.holdout", "has testA/ and testB/ already")
    user_error(lambda: unpaired(domain_a=str(tmp_path / "trainA" / "000.png"), domain_b=b), "data.domain_a", "is not a folder")


def test_image_folder_holdout_by_class_keeps_whole_subjects_out():
    """data.holdout_by: class (the faces config): 4 of the 40 ORL subjects, all 10 images each, only in the test split."""
    cfg = data_cfg(loader="image_folder", root=str(shared("orl-faces")), image_size=[32, 32], channels=1, holdout=0.1, holdout_by="class")
    train, test = load_dataset(cfg), load_dataset(cfg, split="test")
    assert has_splits(cfg) and (len(train), len(test)) == (360, 40)
    held = set(np.unique(test.labels))
    assert len(held) == 4 and not held & set(np.unique(train.labels))
    assert all((test.labels == c).sum() == 10 for c in held)
    assert np.array_equal(load_dataset(cfg, split="test").labels, test.labels)  # fixed: the same subjects every time
