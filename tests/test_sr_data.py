"""Super-resolution data: (LR, HR) pairs made from any image source, real LR folders, bicubic, modcrop.

Resampling is checked against Pillow's bicubic on float images (Keys' cubic, a = -0.5, half-pixel
centres, antialiased when shrinking), crops by finding them in the source images (noise, so every
window is unique), and symmetries by which of the 8 symmetries of the square maps the crop back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from gantrain.data.source import ImageSource
from gantrain.data.sr_pairs import SRPairs, bicubic_downscale, bicubic_upscale, load_sr_folders, modcrop, sr_pairs
from tests.conftest import user_error

RNG = np.random.default_rng(0)
ALL_SYMMETRIES = {(k, flipped) for k in range(4) for flipped in (False, True)}


def noise(*shape) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def source(images: np.ndarray, description: str = "noise") -> ImageSource:
    return ImageSource(images, np.full(len(images), -1, np.int32), description=description)


def unit(images) -> np.ndarray:
    return np.asarray(images).astype(np.float32) / 127.5 - 1.0


def to_u8(images) -> np.ndarray:
    """[-1, 1] back to the uint8 grid; exact for images that came from uint8."""
    return np.rint((np.asarray(images, np.float64) + 1.0) * 127.5).astype(np.uint8)


def pil_bicubic(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's bicubic resize of each channel of float (B, H, W, C), clipped to [-1, 1]: the independent reference."""
    out = np.empty((len(images), height, width, images.shape[-1]), np.float32)
    for b, image in enumerate(images):
        for c in range(images.shape[-1]):
            resized = Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F").resize((width, height), Image.Resampling.BICUBIC)
            out[b, ..., c] = np.asarray(resized)
    return np.clip(out, -1.0, 1.0)


def batches(pairs, batch_size=4, seed=0, start=0, count=1) -> list[dict]:
    it = iter(pairs.pipeline(batch_size, seed, start))
    return [{k: v.numpy() for k, v in next(it).items()} for _ in range(count)]


def find(crop: np.ndarray, images) -> list[tuple]:
    """Every (image index, (k, flipped), top, left) with rot90(fliplr?(crop), k) == images[i][top:, left:] window."""
    found = []
    for k in range(4):
        for flipped in (False, True):
            cand = np.rot90(crop[:, ::-1] if flipped else crop, k)
            for i, image in enumerate(images):
                if cand.shape[0] > image.shape[0] or cand.shape[1] > image.shape[1]:
                    continue
                windows = sliding_window_view(image, cand.shape[:2], axis=(0, 1))  # (rows, cols, C, h, w)
                hits = np.argwhere(np.all(windows == cand.transpose(2, 0, 1), axis=(2, 3, 4)))
                found += [(i, (k, flipped), int(top), int(left)) for top, left in hits]
    return found


def where_each(hr_batch, images) -> list[tuple]:
    """The one place (image, symmetry, top, left) of each HR crop of a batch in ``images``."""
    out = []
    for crop in to_u8(hr_batch):
        found = find(crop, images)
        assert len(found) == 1, f"HR crop found {len(found)} times in the source images: {found}"
        out.append(found[0])
    return out


def save(path: Path, pixels, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(path, **kw)
    return path


# ---------------------------------------------------------------------------------------------
# Resampling and modcrop
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_down_and_up_match_pillow(scale):
    hr = unit(noise(2, 3 * 8, 2 * 24, 3))  # 24 x 48: a multiple of every scale
    lr = bicubic_downscale(tf.constant(hr), scale).numpy()
    assert lr.shape == (2, 24 // scale, 48 // scale, 3) and lr.dtype == np.float32
    np.testing.assert_allclose(lr, pil_bicubic(hr, 24 // scale, 48 // scale), atol=1e-5)
    small = RNG.uniform(-1, 1, (2, 5, 7, 3)).astype(np.float32)
    up = bicubic_upscale(tf.constant(small), scale).numpy()
    assert up.shape == (2, 5 * scale, 7 * scale, 3)
    # 1e-5: TF's legacy bicubic (a weight table) is off by 1e-3 at x3; bilinear or a = -0.75 by far more.
    np.testing.assert_allclose(up, pil_bicubic(small, 5 * scale, 7 * scale), atol=1e-5)
    assert up.min() >= -1 and up.max() <= 1


def test_bicubic_clips_its_overshoot():
    step = np.where(np.arange(8) < 4, -1.0, 1.0).astype(np.float32)
    edge = np.broadcast_to(step[None, None, :, None], (1, 4, 8, 1))
    up = bicubic_upscale(tf.constant(edge), 2).numpy()
    unclipped = tf.image.resize(edge, (8, 16), "bicubic", antialias=True).numpy()
    assert unclipped.max() > 1.01 and unclipped.min() < -1.01  # the cubic's lobes overshoot a sharp edge
    np.testing.assert_allclose(up, np.clip(unclipped, -1, 1), atol=1e-6)
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        bicubic_downscale(tf.zeros((1, 10, 8, 1)), 4)


def test_modcrop_keeps_the_top_left():
    image = noise(7, 10, 3)
    np.testing.assert_array_equal(modcrop(image, 3), image[:6, :9])
    batch = noise(2, 9, 8, 1)
    np.testing.assert_array_equal(modcrop(batch, 4), batch[:, :8, :8])
    np.testing.assert_array_equal(modcrop(tf.constant(batch), 4).numpy(), batch[:, :8, :8])
    assert modcrop(image[:6, :9], 3).shape == (6, 9, 3)


# ---------------------------------------------------------------------------------------------
# SRPairs: LR made from HR in the pipeline
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_pipeline_shapes_and_lr_is_the_antialiased_bicubic_of_hr(scale):
    pairs = sr_pairs(source(noise(5, 30, 27, 3)), scale, hr_size=24)
    assert pairs.roles == ("lr", "hr") and len(pairs) == 5
    assert pairs.image_shape == (24, 24, 3) and pairs.input_shape == (24 // scale, 24 // scale, 3)
    (batch,) = batches(pairs, batch_size=3)
    hr, lr = batch["hr"], batch["lr"]
    assert hr.shape == (3, 24, 24, 3) and lr.shape == (3, 24 // scale, 24 // scale, 3)
    assert hr.dtype == lr.dtype == np.float32
    np.testing.assert_allclose(hr, unit(to_u8(hr)), atol=1e-6)  # HR pixels are the source's, unresampled
    assert -1 <= lr.min() and lr.max() <= 1
    np.testing.assert_allclose(lr, pil_bicubic(hr, 24 // scale, 24 // scale), atol=1e-5)
    expected = np.clip(tf.image.resize(hr, lr.shape[1:3], method="bicubic", antialias=True).numpy(), -1, 1)
    np.testing.assert_allclose(lr, expected, atol=1e-6)


def test_crops_are_real_and_both_sides_get_the_same_symmetry():
    images = noise(3, 16, 16, 3)
    pairs = sr_pairs(source(images), 2, hr_size=8)
    stream = batches(pairs, batch_size=32, seed=5, count=2)
    seen, corners = set(), set()
    for batch in stream:
        for _, symmetry, top, left in where_each(batch["hr"], images):
            seen.add(symmetry)
            corners.add((top, left))
        # LR is the bicubic of the moved crop: had LR missed a flip or a rotation, this would fail.
        np.testing.assert_allclose(batch["lr"], pil_bicubic(batch["hr"], 4, 4), atol=1e-5)
    assert seen == ALL_SYMMETRIES  # flips, rotations and their products all occur
    assert len(corners) > 20  # offsets drawn per example over the 9 x 9 possible ones

    # Without augment the same draws give the same crops, all upright.
    upright = batches(sr_pairs(source(images), 2, hr_size=8, augment=False), batch_size=32, seed=5, count=2)
    for moved, still in zip(stream, upright):
        places = where_each(still["hr"], images)
        assert {symmetry for _, symmetry, _, _ in places} == {(0, False)}
        assert [(i, t, l) for i, _, t, l in places] == [(i, t, l) for i, _, t, l in where_each(moved["hr"], images)]


def test_non_square_crops_get_flips_and_half_turns_only():
    images = noise(2, 16, 16, 3)
    pairs = sr_pairs(source(images), 4, hr_size=(8, 12))
    assert pairs.image_shape == (8, 12, 3) and pairs.input_shape == (2, 3, 3)
    (batch,) = batches(pairs, batch_size=40, seed=1)
    assert batch["hr"].shape == (40, 8, 12, 3) and batch["lr"].shape == (40, 2, 3, 3)
    assert {symmetry for _, symmetry, _, _ in where_each(batch["hr"], images)} == {(0, False), (0, True), (2, False), (2, True)}
    np.testing.assert_allclose(batch["lr"], pil_bicubic(batch["hr"], 2, 3), atol=1e-5)


def test_batches_are_a_pure_function_of_seed_and_batch_index():
    pairs = sr_pairs(source(noise(5, 12, 12, 3)), 2, hr_size=6)
    stream = batches(pairs, batch_size=3, seed=7, count=4)
    again = batches(pairs, batch_size=3, seed=7, count=4)
    resumed = batches(pairs, batch_size=3, seed=7, start=2, count=2)
    other = batches(pairs, batch_size=3, seed=8, count=1)
    for a, b in zip(stream, again):
        for role in ("lr", "hr"):
            np.testing.assert_array_equal(a[role], b[role])
    for a, b in zip(stream[2:], resumed):
        for role in ("lr", "hr"):
            np.testing.assert_array_equal(a[role], b[role])
    assert not np.array_equal(stream[0]["hr"], other[0]["hr"])


def test_examples_and_whole_image_batches_are_modcropped_and_unaugmented():
    images = noise(4, 21, 30, 3)
    pairs = sr_pairs(source(images), 4, hr_size=8)
    examples = pairs.examples([2, 0])
    np.testing.assert_array_equal(examples["hr"], unit(images[[2, 0], :20, :28]))
    np.testing.assert_allclose(examples["lr"], pil_bicubic(examples["hr"], 5, 7), atol=1e-5)

    whole = sr_pairs(source(images), 4, augment=False)
    assert whole.image_shape == (20, 28, 3) and whole.input_shape == (5, 7, 3)
    (batch,) = batches(whole, batch_size=4, seed=3)
    order = [int(np.argmax([np.array_equal(to_u8(hr), image[:20, :28]) for image in images])) for hr in batch["hr"]]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_array_equal(batch["hr"], unit(images[order, :20, :28]))
    np.testing.assert_allclose(batch["lr"], pil_bicubic(batch["hr"], 5, 7), atol=1e-5)


def test_sr_pairs_errors():
    cifar_like = source(noise(2, 32, 32, 3), "cifar10 train")
    user_error(lambda: sr_pairs(cifar_like, 5), "model.scale 5 is not supported: use one of 2, 3, 4, 8")
    assert user_error(lambda: sr_pairs(cifar_like, 4, 30)) == "data.hr_size 30 is not a multiple of model.scale 4: use 28 or 32"
    user_error(lambda: sr_pairs(cifar_like, 4, 3), "data.hr_size 3 is not a multiple of model.scale 4: use 4")
    user_error(lambda: sr_pairs(cifar_like, 4, (16, 18)), "data.hr_size [16, 18]: 18 is not a multiple of model.scale 4: use 16 or 20")
    user_error(lambda: sr_pairs(cifar_like, 4, 64), "data.hr_size 64 is larger than the 32x32 images of cifar10 train; use at most 32")
    user_error(lambda: SRPairs(cifar_like, 8, (16, 40)), "data.hr_size [16, 40] is larger than the 32x32 images", "use at most [16, 32]")
    user_error(lambda: sr_pairs(cifar_like, 2, 0), "data.hr_size 0 is not a crop size")
    user_error(lambda: sr_pairs(cifar_like, 2, "big"), "is not a crop size")
    user_error(lambda: sr_pairs(source(noise(2, 4, 4, 1), "tiny"), 8), "model.scale 8 is larger than the 4x4 images of tiny")


# ---------------------------------------------------------------------------------------------
# Real LR images from paired folders
# ---------------------------------------------------------------------------------------------
def test_sr_folders_match_by_name_and_convert_any_mode(tmp_path):
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_a, lr_b, hr_c = noise(13, 10, 3), noise(4, 6, 4), noise(3, 3, 3)
    save(hr_dir / "a.png", hr_a)
    save(lr_dir / "a.jpg", noise(6, 5, 3), quality=90)  # lossy: compared with Pillow's own decoding
    hr_b = noise(8, 12)
    save(hr_dir / "b.png", hr_b)  # grey
    save(lr_dir / "b.png", lr_b)  # RGBA
    hr_c16 = RNG.integers(0, 65536, (6, 6), dtype=np.uint16)
    save(hr_dir / "c.tif", hr_c16)  # 16-bit grey
    save(lr_dir / "c.bmp", hr_c)
    pairs = load_sr_folders(hr_dir, lr_dir, 2, 3)
    assert len(pairs) == 3 and pairs.roles == ("lr", "hr")
    examples = pairs.examples([0, 1, 2])
    lr_a = np.asarray(Image.open(lr_dir / "a.jpg").convert("RGB"))
    expected_hr = [hr_a[:12], np.repeat(hr_b[..., None], 3, -1), np.repeat((hr_c16 // 257).astype(np.uint8)[..., None], 3, -1)]
    expected_lr = [lr_a, lr_b[..., :3], hr_c]
    for got, want in zip(examples["hr"] + examples["lr"], expected_hr + expected_lr):
        np.testing.assert_array_equal(got, unit(want))
    assert pairs.image_shape == (None, None, 3)  # the pairs differ in size
    user_error(lambda: pairs.pipeline(2, 0), "data.hr_size is not set", "different sizes", "set data.hr_size")

    grey = load_sr_folders(hr_dir, lr_dir, 2, 1).examples([0])
    r, g, b = (hr_a[:12, :, i].astype(np.int64) for i in range(3))
    luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16  # Pillow's integer BT.601 luma
    np.testing.assert_array_equal(grey["hr"][0], unit(luma[..., None]))


def test_sr_folder_crops_are_aligned_on_the_scale_grid_and_resumable(tmp_path):
    hr_images, lr_images = [noise(24, 32, 3), noise(20, 20, 3)], [noise(6, 8, 3), noise(5, 5, 3)]
    for name, hr, lr in zip("xy", hr_images, lr_images):
        save(tmp_path / "hr" / f"{name}.png", hr)
        save(tmp_path / "lr" / f"{name}.png", lr)
    pairs = load_sr_folders(tmp_path / "hr", tmp_path / "lr", 4, 3, hr_size=8)
    assert pairs.image_shape == (8, 8, 3) and pairs.input_shape == (2, 2, 3)
    stream = batches(pairs, batch_size=16, seed=2, count=4)
    seen, corners = set(), set()
    for batch in stream:
        assert batch["hr"].shape == (16, 8, 8, 3) and batch["lr"].shape == (16, 2, 2, 3)
        for (i, (k, flipped), top, left), lr in zip(where_each(batch["hr"], hr_images), to_u8(batch["lr"])):
            assert top % 4 == 0 and left % 4 == 0, (top, left)
            # The LR window under the HR crop, moved by the same symmetry (the inverse of the one found).
            window = np.rot90(lr_images[i][top // 4 : top // 4 + 2, left // 4 : left // 4 + 2], -k)
            np.testing.assert_array_equal(lr, window[:, ::-1] if flipped else window)
            seen.add((k, flipped))
            corners.add((i, top, left))
    assert seen == ALL_SYMMETRIES and len(corners) > 10
    resumed = batches(pairs, batch_size=16, seed=2, start=3)
    for role in ("lr", "hr"):
        np.testing.assert_array_equal(resumed[0][role], stream[3][role])


def test_sr_folders_of_one_size_batch_whole_pairs(tmp_path):
    hr_images, lr_images = [noise(8, 12, 3), noise(8, 12, 3)], [noise(4, 6, 3), noise(4, 6, 3)]
    for name, hr, lr in zip("pq", hr_images, lr_images):
        save(tmp_path / "hr" / f"{name}.png", hr)
        save(tmp_path / "lr" / f"{name}.png", lr)
    pairs = load_sr_folders(tmp_path / "hr", tmp_path / "lr", 2, 3, augment=False)
    assert pairs.image_shape == (8, 12, 3)
    (batch,) = batches(pairs, batch_size=2, seed=0)
    for lr, hr in zip(to_u8(batch["lr"]), to_u8(batch["hr"])):
        i = 0 if np.array_equal(hr, hr_images[0]) else 1
        np.testing.assert_array_equal(hr, hr_images[i])
        np.testing.assert_array_equal(lr, lr_images[i])


def test_sr_folder_errors(tmp_path, capsys):
    def folders(name, files: dict) -> tuple[Path, Path]:
        for (side, stem), pixels in files.items():
            if isinstance(pixels, bytes):
                (tmp_path / name / side).mkdir(parents=True, exist_ok=True)
                (tmp_path / name / side / stem).write_bytes(pixels)
            else:
                save(tmp_path / name / side / stem, pixels)
        return tmp_path / name / "hr", tmp_path / name / "lr"

    hr, lr = folders("unmatched", {("hr", "a.png"): noise(8, 8), ("hr", "b.png"): noise(8, 8), ("lr", "a.png"): noise(4, 4), ("lr", "c.png"): noise(4, 4)})
    user_error(lambda: load_sr_folders(hr, lr, 2, 1), "unmatched", "1 HR image(s)", "(b.png)", "1 LR image(s)", "(c.png)")

    hr, lr = folders("mismatch", {("hr", "a.png"): noise(16, 16), ("lr", "a.png"): noise(5, 4)})
    user_error(lambda: load_sr_folders(hr, lr, 4, 1), str(lr / "a.png"), "LR image is 5x4", "a.png is 16x16", "must be 4x4")
    hr, lr = folders("modcropped", {("hr", "a.png"): noise(18, 16), ("lr", "a.png"): noise(4, 4), ("hr", "b.png"): noise(18, 16), ("lr", "b.png"): noise(5, 4)})
    user_error(lambda: load_sr_folders(hr, lr, 4, 1), str(lr / "b.png"), "is 18x16 (cropped to 16x16", "must be 4x4")

    hr, lr = folders("unreadable", {("hr", "a.png"): noise(8, 8), ("lr", "a.png"): noise(4, 4), ("hr", "b.png"): noise(8, 8), ("lr", "b.png"): b"not a png"})
    user_error(lambda: load_sr_folders(hr, lr, 2, 1), str(lr / "b.png"), "cannot read image", "data.on_error: skip")
    capsys.readouterr()
    skipped = load_sr_folders(hr, lr, 2, 1, on_error="skip")
    assert len(skipped) == 1 and "skipped 1 of 2 pairs" in capsys.readouterr().err
    np.testing.assert_array_equal(skipped.examples([0])["lr"][0], unit(np.asarray(Image.open(lr / "a.png"))[..., None]))

    hr, lr = folders("small", {("hr", "a.png"): noise(16, 16), ("lr", "a.png"): noise(4, 4), ("hr", "b.png"): noise(8, 12), ("lr", "b.png"): noise(2, 3)})
    user_error(lambda: load_sr_folders(hr, lr, 4, 1, hr_size=12), f"data.hr_size 12 is larger than the 8x12 HR image {hr / 'b.png'}; use at most 8")
    user_error(lambda: load_sr_folders(hr, lr, 4, 1, hr_size=6), "data.hr_size 6 is not a multiple of model.scale 4: use 4 or 8")
    hr, lr = folders("tiny", {("hr", "a.png"): noise(3, 5), ("lr", "a.png"): noise(1, 1)})
    user_error(lambda: load_sr_folders(hr, lr, 4, 1), f"model.scale 4 is larger than the 3x5 HR image {hr / 'a.png'}")
    user_error(lambda: load_sr_folders(hr, lr, 6, 1), "model.scale 6 is not supported")
    user_error(lambda: load_sr_folders(tmp_path / "nowhere", lr, 4, 1), "data.hr_dir", "is not a folder")
    (tmp_path / "empty").mkdir()
    user_error(lambda: load_sr_folders(hr, tmp_path / "empty", 4, 1), "data.lr_dir: no images in")
