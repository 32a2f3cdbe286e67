"""Dataset loaders on the real data in ../shared/data, their error messages, and the tf.data pipeline.

The repository is checked out next to ``shared/`` (here and in CI), so the real datasets are
always at ``<repo>/../shared/data``. A test that needs them fails (never skips) when they are missing.
No test downloads anything: the download function is replaced wherever a loader could reach it.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import gantrain.data.cifar10 as cifar10_module
import gantrain.data.mnist as mnist_module
from gantrain.config import validate
from gantrain.data import ImageSource, load_dataset, make_pipeline
from gantrain.data.download import DownloadError
from gantrain.data.idx import read_idx
from gantrain.errors import UserError
from tests.conftest import MNIST_DIR, MNIST_HELP

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def shared(name: str) -> Path:
    """A folder of the shared real data; fail (not skip) when it is missing: CI always has it."""
    if name == "mnist":  # found like every other test finds it (tests/conftest.py)
        if MNIST_DIR is None:
            pytest.fail(MNIST_HELP, pytrace=False)
        return MNIST_DIR
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.fail(
            f"real test data missing: {path} is not a folder. The repository must be checked out next to "
            f"shared/ (so that ../shared/data/{name} exists); see shared/data/README.md",
            pytrace=False,
        )
    return path


def data_cfg(**data) -> dict:
    """A resolved ``data`` section, obtained the way the trainer gets it: by validating a config."""
    return validate({"model": {"family": "gan"}, "data": data})["data"]


def no_download(*args, **kwargs):
    raise DownloadError("no network")


@pytest.fixture(autouse=True)
def _never_download(monkeypatch, tmp_path):
    """No test may reach the network: any loader that falls through to the download fails offline."""
    monkeypatch.setattr(mnist_module, "fetch", no_download)
    monkeypatch.setattr(cifar10_module, "fetch", no_download)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for var in ("GANTRAIN_MNIST_ROOT", "GANTRAIN_FASHION_MNIST_ROOT", "GANTRAIN_CIFAR10_ROOT"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------------------------
# MNIST from the four real IDX .gz files
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_train() -> ImageSource:
    return load_dataset(data_cfg(loader="mnist", root=str(shared("mnist")), batch_size=32))


def test_mnist_train(mnist_train):
    src = mnist_train
    assert len(src) == 60000
    assert src.images.shape == (60000, 28, 28, 1)
    assert src.images.dtype == np.uint8
    assert src.image_shape == (28, 28, 1)
    assert src.labels.dtype == np.int32
    assert src.labels.min() == 0 and src.labels.max() == 9
    assert np.bincount(src.labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert src.num_classes == 10 and src.class_names == [str(i) for i in range(10)]
    # real digits: dark background, bright strokes, the full byte range used
    assert src.images.min() == 0 and src.images.max() == 255
    assert 30 < src.images.mean() < 36  # MNIST's well-known mean pixel is 33.3
    assert src.images[:, 0, 0, 0].max() == 0  # the corner pixel is background in every image


def test_mnist_test_split():
    cfg = data_cfg(loader="mnist", root=str(shared("mnist")), split="test")
    src = load_dataset(cfg)
    assert src.images.shape == (10000, 28, 28, 1)
    assert len(src.labels) == 10000
    assert sorted(set(src.labels.tolist())) == list(range(10))
    # the split argument overrides the config
    assert len(load_dataset(data_cfg(loader="mnist", root=str(shared("mnist"))), "test")) == 10000


def test_mnist_root_from_environment(monkeypatch):
    monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(shared("mnist")))
    src = load_dataset(data_cfg(loader="mnist"), "test")
    assert len(src) == 10000 and src.image_shape == (28, 28, 1)


def test_mnist_root_from_config_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(tmp_path / "not-there"))
    src = load_dataset(data_cfg(loader="mnist", root=str(shared("mnist"))), "test")
    assert len(src) == 10000


def test_sources_record_the_resolved_folder_they_were_read_from(monkeypatch, tmp_path):
    # The real-feature cache keys on this: the same config can read another folder through a variable.
    mnist = shared("mnist")
    assert load_dataset(data_cfg(loader="mnist", root=str(mnist)), "test").location == str(mnist.resolve())
    link = tmp_path / "mnist-link"
    link.symlink_to(mnist)
    monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(link))
    assert load_dataset(data_cfg(loader="mnist"), "test").location == str(mnist.resolve())
    for cls in ("cat", "dog"):
        solid(tmp_path / "cifar" / cls / "0.png", "RGB", (32, 32), (10, 20, 30))
    monkeypatch.setenv("GANTRAIN_CIFAR10_ROOT", str(tmp_path / "cifar"))
    assert load_dataset(data_cfg(loader="cifar10")).location == str((tmp_path / "cifar").resolve())
    src = load_dataset(data_cfg(loader="image_folder", root=str(tmp_path / "cifar"), image_size=8))
    assert src.location == str((tmp_path / "cifar").resolve())


@pytest.mark.parametrize("loader, root", [("mnist", "mnist"), ("fashion_mnist", "mnist"), ("cifar10", None)])
def test_unknown_split_is_refused_naming_the_valid_ones(loader, root):
    cfg = data_cfg(loader=loader, root=str(shared(root)) if root else None)
    with pytest.raises(UserError, match=r"split 'tset': valid splits are train, test"):
        load_dataset(cfg, "tset")


def test_mnist_environment_root_missing(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(missing))
    with pytest.raises(UserError) as info:
        load_dataset(data_cfg(loader="mnist"))
    msg = str(info.value)
    assert "GANTRAIN_MNIST_ROOT" in msg and str(missing) in msg


def test_mnist_config_root_missing(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(UserError) as info:
        load_dataset(data_cfg(loader="mnist", root=str(missing)))
    msg = str(info.value)
    assert "data.root" in msg and str(missing) in msg


def test_mnist_offline_without_files_says_how_to_fix(monkeypatch, tmp_path):
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise DownloadError("no network")

    monkeypatch.setattr(mnist_module, "fetch", offline)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UserError) as info:
        load_dataset(data_cfg(loader="mnist"))
    msg = str(info.value)
    assert calls, "the loader should have tried the (patched) download"
    assert "data.root" in msg
    assert "GANTRAIN_MNIST_ROOT" in msg
    assert "no network" in msg


def test_cifar10_offline_without_files_says_how_to_fix():
    with pytest.raises(UserError) as info:
        load_dataset(data_cfg(loader="cifar10"))
    msg = str(info.value)
    assert "data.root" in msg and "GANTRAIN_CIFAR10_ROOT" in msg


# ---------------------------------------------------------------------------------------------
# IDX errors on copied or crafted files
# ---------------------------------------------------------------------------------------------
def idx_bytes(magic: int, dims: list[int], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def write_idx(path: Path, magic: int, dims: list[int], payload: bytes | None = None) -> Path:
    if payload is None:
        payload = bytes(int(np.prod(dims)))
    raw = idx_bytes(magic, dims, payload)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def copy_real(tmp_path: Path, *names: str) -> Path:
    for name in names:
        shutil.copyfile(shared("mnist") / name, tmp_path / name)
    return tmp_path


def load_test_split(folder: Path) -> ImageSource:
    return load_dataset(data_cfg(loader="mnist", root=str(folder), split="test"))


def expect_error(folder: Path, *parts: str) -> str:
    with pytest.raises(UserError) as info:
        load_test_split(folder)
    msg = str(info.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def test_idx_crafted_files_load(tmp_path):
    pixels = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, [3, 28, 28], pixels.tobytes())
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", 2049, [3], bytes([7, 0, 9]))  # uncompressed works too
    src = load_test_split(tmp_path)
    assert src.images.shape == (3, 28, 28, 1)
    assert np.array_equal(src.images.reshape(-1), pixels)
    assert src.labels.tolist() == [7, 0, 9]


def test_idx_alternative_file_names(tmp_path):
    write_idx(tmp_path / "t10k-images.idx3-ubyte", 2051, [2, 28, 28])
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", 2049, [2])
    assert len(load_test_split(tmp_path)) == 2


def test_idx_wrong_magic_number(tmp_path):
    copy_real(tmp_path, "t10k-labels-idx1-ubyte.gz")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2049, [2, 28, 28])
    expect_error(tmp_path, "t10k-images-idx3-ubyte.gz", "wrong magic number 2049", "expected 2051")


def test_idx_labels_file_in_place_of_images(tmp_path):
    # a real labels file where the images should be
    shutil.copyfile(shared("mnist") / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz")
    copy_real(tmp_path, "t10k-labels-idx1-ubyte.gz")
    expect_error(tmp_path, "t10k-images-idx3-ubyte.gz", "wrong magic number")


def test_idx_garbage_magic(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    expect_error(tmp_path, "t10k-labels-idx1-ubyte", "wrong magic number")


def test_idx_truncated_gz(tmp_path):
    real = (shared("mnist") / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(real[: len(real) // 2])
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    expect_error(tmp_path, "t10k-labels-idx1-ubyte.gz", "cannot read IDX file")


def test_idx_not_gzip_despite_name(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_bytes(2049, [3], bytes(3)))
    expect_error(tmp_path, "t10k-labels-idx1-ubyte.gz", "cannot read IDX file")


def test_idx_too_short(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    expect_error(tmp_path, "t10k-labels-idx1-ubyte", "too short")


def test_idx_header_says_more_than_file_holds(tmp_path):
    copy_real(tmp_path, "t10k-labels-idx1-ubyte.gz")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, [3, 28, 28], bytes(2 * 28 * 28))
    expect_error(tmp_path, "t10k-images-idx3-ubyte.gz", "header says [3, 28, 28]", "found 1568")


def test_idx_padded_file(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, [10000], bytes(10001))
    expect_error(tmp_path, "t10k-labels-idx1-ubyte.gz", "truncated or padded")


def test_idx_label_image_count_mismatch(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, [3, 28, 28])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, [2])
    expect_error(tmp_path, "3 images in t10k-images-idx3-ubyte.gz", "2 labels in t10k-labels-idx1-ubyte.gz")


def test_idx_real_labels_with_too_few_images(tmp_path):
    copy_real(tmp_path, "t10k-labels-idx1-ubyte.gz")
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, [5, 28, 28])
    expect_error(tmp_path, "5 images", "10000 labels")


def test_idx_missing_labels_file(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz")
    expect_error(tmp_path, str(tmp_path), "t10k-labels-idx1-ubyte.gz not found")


def test_idx_missing_images_file(tmp_path):
    copy_real(tmp_path, "t10k-labels-idx1-ubyte.gz")
    expect_error(tmp_path, "t10k-images-idx3-ubyte.gz not found")


def test_idx_train_split_needs_train_files(tmp_path):
    copy_real(tmp_path, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz not found"):
        load_dataset(data_cfg(loader="mnist", root=str(tmp_path)))


def test_read_idx_directly_rejects_wrong_dimensionality():
    with pytest.raises(UserError, match="wrong magic number 2051 for an IDX labels file"):
        read_idx(shared("mnist") / "t10k-images-idx3-ubyte.gz", 1)


# ---------------------------------------------------------------------------------------------
# image_folder on the ORL faces (grey PGM 92x112, 40 subject folders)
# ---------------------------------------------------------------------------------------------
def orl(**params) -> ImageSource:
    return load_dataset(data_cfg(loader="image_folder", root=str(shared("orl-faces")), **params))


def test_orl_native_size_grey():
    src = orl(channels=1, image_size=[112, 92])
    assert src.images.shape == (400, 112, 92, 1)
    assert src.images.dtype == np.uint8
    assert src.num_classes == 40
    assert sorted(src.class_names) == sorted(f"s{i}" for i in range(1, 41))
    assert src.class_names == sorted(src.class_names)
    assert np.bincount(src.labels).tolist() == [10] * 40
    # at native size the pixels are exactly the file's
    first_class = src.class_names[0]
    first_file = sorted((shared("orl-faces") / first_class).glob("*.pgm"))[0]
    with Image.open(first_file) as img:
        expected = np.asarray(img)
    assert expected.shape == (112, 92)
    assert np.array_equal(src.images[0, ..., 0], expected)
    assert src.labels[0] == 0


def test_orl_resized_and_centre_cropped():
    src = orl(channels=1, image_size=64)
    assert src.images.shape == (400, 64, 64, 1)
    assert np.bincount(src.labels).tolist() == [10] * 40
    assert 40 < src.images.mean() < 160  # real faces, not blank


def test_orl_as_rgb():
    src = orl(channels=3, image_size=64)
    assert src.images.shape == (400, 64, 64, 3)
    # grey sources give equal channels
    assert np.array_equal(src.images[..., 0], src.images[..., 1])
    assert np.array_equal(src.images[..., 1], src.images[..., 2])
    grey = orl(channels=1, image_size=64)
    assert np.abs(src.images[..., 0].astype(int) - grey.images[..., 0].astype(int)).max() <= 1


# ---------------------------------------------------------------------------------------------
# CIFAR-10 test split as class folders of JPEGs
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar_folder() -> ImageSource:
    return load_dataset(data_cfg(loader="image_folder", root=str(shared("cifar10-jpeg-test")), image_size=32, channels=3))


def test_cifar_as_image_folder(cifar_folder):
    src = cifar_folder
    assert src.images.shape == (10000, 32, 32, 3)
    assert src.images.dtype == np.uint8
    assert src.num_classes == 10
    assert src.class_names == CIFAR_CLASSES
    assert np.bincount(src.labels).tolist() == [1000] * 10
    assert src.labels.dtype == np.int32
    # colour images: channels differ
    assert not np.array_equal(src.images[..., 0], src.images[..., 2])


def test_cifar10_loader_with_root_matches_image_folder(cifar_folder):
    src = load_dataset(data_cfg(loader="cifar10", root=str(shared("cifar10-jpeg-test"))))
    assert src.images.shape == (10000, 32, 32, 3)
    assert src.class_names == CIFAR_CLASSES
    assert np.bincount(src.labels).tolist() == [1000] * 10
    assert np.array_equal(src.images, cifar_folder.images)
    assert np.array_equal(src.labels, cifar_folder.labels)


# ---------------------------------------------------------------------------------------------
# image_folder edge cases on crafted folders
# ---------------------------------------------------------------------------------------------
def folder(root: Path, **params) -> ImageSource:
    params.setdefault("image_size", 16)
    return load_dataset(data_cfg(loader="image_folder", root=str(root), **params))


def solid(path: Path, mode: str, size: tuple[int, int], colour) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        folder(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(UserError) as info:
        folder(tmp_path)
    assert "no images" in str(info.value) and str(tmp_path) in str(info.value)


def test_folder_with_only_text(tmp_path):
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("nor this")
    with pytest.raises(UserError, match="no images"):
        folder(tmp_path)


def test_corrupt_image_fails_naming_the_file(tmp_path):
    solid(tmp_path / "a" / "good.png", "L", (8, 8), 10)
    bad = tmp_path / "a" / "bad.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(UserError) as info:
        folder(tmp_path, on_error="fail")
    msg = str(info.value)
    assert str(bad) in msg and "on_error" in msg


def test_truncated_image_fails_naming_the_file(tmp_path):
    good = solid(tmp_path / "good.png", "RGB", (32, 32), (1, 2, 3))
    data = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "noise.png")
    raw = (tmp_path / "noise.png").read_bytes()
    (tmp_path / "noise.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="noise.png"):
        folder(tmp_path)
    assert good.exists()


def test_corrupt_image_skipped(tmp_path, capsys):
    for i in range(3):
        solid(tmp_path / "cls" / f"ok{i}.png", "L", (8, 8), 50 * i)
    (tmp_path / "cls" / "bad.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    (tmp_path / "cls" / "empty.jpg").write_bytes(b"")
    src = folder(tmp_path, on_error="skip", channels=1, image_size=8)
    assert len(src) == 3
    assert sorted(src.images[:, 0, 0, 0].tolist()) == [0, 50, 100]
    assert "skipped 2" in capsys.readouterr().err


def test_all_images_corrupt_with_skip(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="none of the 1 image files"):
        folder(tmp_path, on_error="skip")


def test_mixed_sizes_and_modes_rgb(tmp_path):
    solid(tmp_path / "a_rgba.png", "RGBA", (40, 50), (255, 0, 0, 255))
    solid(tmp_path / "b_grey.png", "L", (20, 30), 100)
    Image.new("RGB", (70, 30), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "c_palette.gif")
    solid(tmp_path / "d_rgb.jpg", "RGB", (33, 33), (0, 200, 0))
    solid(tmp_path / "e_bmp.BMP", "RGB", (5, 9), (10, 20, 30))  # upper-case extension, upscaled
    src = folder(tmp_path, channels=3, image_size=[16, 24])
    assert src.images.shape == (5, 16, 24, 3)
    centres = src.images[:, 8, 12, :].astype(int)
    expected = [(255, 0, 0), (100, 100, 100), (0, 0, 255), (0, 200, 0), (10, 20, 30)]
    assert np.abs(centres - np.array(expected)).max() <= 3, centres
    assert src.labels.tolist() == [-1] * 5


def test_mixed_sizes_and_modes_grey(tmp_path):
    solid(tmp_path / "a_rgba.png", "RGBA", (40, 50), (255, 255, 255, 255))
    solid(tmp_path / "b_grey.png", "L", (20, 30), 100)
    Image.new("RGB", (70, 30), (0, 0, 0)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "c_palette.gif")
    src = folder(tmp_path, channels=1, image_size=12)
    assert src.images.shape == (3, 12, 12, 1)
    assert np.abs(src.images[:, 6, 6, 0].astype(int) - np.array([255, 100, 0])).max() <= 2


def test_sixteen_bit_grey_png_keeps_its_brightness(tmp_path):
    """A 16-bit grey PNG at half brightness must load as ~128, not saturate to white."""
    half = np.full((20, 20), 128 * 257, dtype=np.uint16)  # 32896 / 65535 = 0.502
    Image.fromarray(half).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")  # really a 16-bit file
    src = folder(tmp_path, channels=1, image_size=20)
    assert abs(int(src.images[0, 10, 10, 0]) - 128) <= 1, src.images[0, 10, 10, 0]


def test_centre_crop_keeps_the_middle(tmp_path):
    # 30 wide x 10 high: left third black, middle white, right third black -> square crop is white
    arr = np.zeros((10, 30), dtype=np.uint8)
    arr[:, 10:20] = 255
    Image.fromarray(arr).save(tmp_path / "bars.png")
    src = folder(tmp_path, channels=1, image_size=10)
    assert src.images.shape == (1, 10, 10, 1)
    assert src.images[0, :, 2:8, 0].min() >= 250


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(4):
        solid(tmp_path / f"img{i}.png", "RGB", (10, 10), (i, i, i))
    src = folder(tmp_path)
    assert len(src) == 4
    assert src.labels.tolist() == [-1, -1, -1, -1]
    assert src.num_classes == 0 and src.class_names == []


def test_class_folders_give_labels(tmp_path):
    for cls, n in (("zebra", 2), ("ant", 3)):
        for i in range(n):
            solid(tmp_path / cls / f"{i}.png", "L", (8, 8), 0)
    (tmp_path / "empty_class").mkdir()
    solid(tmp_path / ".hidden" / "x.png", "L", (8, 8), 0)
    src = folder(tmp_path)
    assert src.class_names == ["ant", "zebra"]
    assert src.labels.tolist() == [0, 0, 0, 1, 1]


def test_labels_none_reads_subfolders_unlabelled(tmp_path):
    solid(tmp_path / "a" / "1.png", "L", (8, 8), 0)
    solid(tmp_path / "b" / "2.png", "L", (8, 8), 0)
    solid(tmp_path / "3.png", "L", (8, 8), 0)
    src = folder(tmp_path, labels="none")
    assert len(src) == 3
    assert src.labels.tolist() == [-1, -1, -1] and src.num_classes == 0


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------
def synthetic(n: int) -> ImageSource:
    """Image i is filled with the value i and labelled i, so a batch reveals its indices."""
    images = np.repeat(np.arange(n, dtype=np.uint8), 2 * 2).reshape(n, 2, 2, 1)
    return ImageSource(images, np.arange(n, dtype=np.int32), [], f"synthetic {n}")


def batches(source: ImageSource, batch: int, seed: int, count: int, start: int = 0):
    it = iter(make_pipeline(source, batch, seed, start_batch=start))
    return [(lambda batch: (batch["image"].numpy(), batch["label"].numpy()))(next(it)) for _ in range(count)]


def label_stream(source, batch, seed, count, start=0):
    return [b[1].tolist() for b in batches(source, batch, seed, count, start)]


def test_pipeline_batches_are_keyed_by_data_role(mnist_train):
    batch = next(iter(make_pipeline(mnist_train, 4, seed=0)))
    assert set(batch) == {"image", "label"} and batch["image"].shape == (4, 28, 28, 1) and batch["label"].dtype == tf.int32
    assert mnist_train.roles == ("image", "label")
    assert ImageSource(np.zeros((2, 1, 1, 1), np.uint8), np.full(2, -1, np.int32)).roles == ("image",)


def test_pipeline_on_mnist(mnist_train):
    x, y = batches(mnist_train, 32, seed=0, count=1)[0]
    assert x.dtype == np.float32 and x.shape == (32, 28, 28, 1)
    assert y.dtype == np.int32 and y.shape == (32,)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.min() == -1.0 and x.max() == 1.0  # background and full strokes
    assert set(y.tolist()) <= set(range(10))
    # each image is a source image mapped x / 127.5 - 1
    as_bytes = np.rint((x + 1.0) * 127.5).astype(np.uint8)
    assert np.allclose(as_bytes.astype(np.float32) / 127.5 - 1.0, x, atol=1e-6)
    source_set = {img.tobytes() for img in mnist_train.images[np.isin(mnist_train.labels, y)]}
    assert all(img.tobytes() in source_set for img in as_bytes)


def test_pipeline_same_seed_same_batches(mnist_train):
    a = batches(mnist_train, 16, seed=3, count=2)
    b = batches(mnist_train, 16, seed=3, count=2)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_pipeline_different_seed_different_batches(mnist_train):
    (xa, _), = batches(mnist_train, 16, seed=3, count=1)
    (xb, _), = batches(mnist_train, 16, seed=4, count=1)
    assert not np.array_equal(xa, xb)


def test_pipeline_images_match_labels():
    src = synthetic(10)
    for x, y in batches(src, 4, seed=0, count=6):
        assert x.shape == (4, 2, 2, 1)
        assert np.allclose(x[:, 0, 0, 0], y.astype(np.float32) / 127.5 - 1.0)


@pytest.mark.parametrize("start", range(0, 9))
def test_pipeline_resume_at_any_batch(start):
    """Batches k, k+1, ... of the stream from 0, also across epoch boundaries (10 images, batch 4)."""
    src = synthetic(10)
    full = label_stream(src, 4, seed=5, count=12)
    resumed = label_stream(src, 4, seed=5, count=3, start=start)
    assert resumed == full[start : start + 3]


def test_pipeline_resume_images_too():
    src = synthetic(10)
    full = batches(src, 4, seed=2, count=6)
    resumed = batches(src, 4, seed=2, count=3, start=3)
    for (xf, yf), (xr, yr) in zip(full[3:], resumed):
        assert np.array_equal(xf, xr) and np.array_equal(yf, yr)


def test_pipeline_batches_are_full_across_epoch_boundary():
    src = synthetic(10)
    stream = [i for b in label_stream(src, 4, seed=0, count=10) for i in b]
    assert len(stream) == 40
    for epoch in range(4):  # the flat stream is consecutive permutations of the 10 images
        assert sorted(stream[10 * epoch : 10 * (epoch + 1)]) == list(range(10))


def test_pipeline_every_example_once_per_epoch():
    src = synthetic(12)
    stream = label_stream(src, 4, seed=7, count=9)  # three epochs of three batches
    epochs = [sorted(sum(stream[3 * e : 3 * (e + 1)], [])) for e in range(3)]
    assert all(e == list(range(12)) for e in epochs)
    first = sum(stream[0:3], [])
    second = sum(stream[3:6], [])
    assert first != list(range(12)), "the data should be shuffled"
    assert first != second, "each epoch should have its own order"


def test_pipeline_every_example_once_in_first_epoch_at_mnist_scale(mnist_train):
    """A whole first epoch at MNIST size (60000 = 1875 x 32, index-labelled): each example exactly once."""
    n, batch = len(mnist_train), 32
    ds = make_pipeline(ImageSource(np.zeros((n, 1, 1, 1), np.uint8), np.arange(n, dtype=np.int32)), batch, seed=11)
    seen = np.concatenate([batch_["label"].numpy() for batch_ in ds.take(n // batch)])
    assert len(seen) == n
    assert np.array_equal(np.sort(seen), np.arange(n))


def test_tests_find_mnist_in_the_env_then_shared_then_the_keras_cache(tmp_path, monkeypatch):
    """Review item 17: a clone elsewhere than next to shared/ can still run the tests."""
    import tests.conftest as conftest
    from gantrain.data.mnist import read_idx_pair

    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "no_shared")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the converted IDX folder is written here
    assert conftest.locate_mnist() is None  # nothing anywhere (KERAS_HOME is an empty tmp folder here)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), "y_train": np.array([1, 2, 3], np.uint8),
              "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), "y_test": np.array([4, 5], np.uint8)}
    (tmp_path / "keras_home" / "datasets").mkdir(parents=True)
    np.savez(tmp_path / "keras_home" / "datasets" / "mnist.npz", **arrays)
    found = conftest.locate_mnist()
    for split, (x, y) in {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}.items():
        images, labels = read_idx_pair(found, split)
        np.testing.assert_array_equal(images, arrays[x])
        np.testing.assert_array_equal(labels, arrays[y])
    monkeypatch.setattr(conftest, "SHARED_DATA", SHARED_DATA)  # ../shared/data/mnist comes before the cache
    assert conftest.locate_mnist() == SHARED_DATA / "mnist"
    monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(found))  # and the environment variable before both
    assert conftest.locate_mnist() == found
