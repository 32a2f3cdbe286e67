"""Shared fixtures: real data from ../shared/data and a tiny, fast config."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import gantrain.models  # noqa: E402,F401  (registers the families)
from gantrain.errors import UserError  # noqa: E402
from gantrain.registry import MODELS  # noqa: E402

# The families that draw images from noise (one G and one D on "image" batches): the GAN contract
# tests run on each; the image-to-image families have theirs in tests/test_translation_families.py.
NOISE_FAMILIES = sorted(name for name in MODELS.names() if "image" in MODELS.get(name).roles)

# The registry-wide tests build every noise family for MNIST's 28x28x1 (test_models, test_registry,
# test_tricks, test_spectral_norm). A family whose defaults cannot make that size gets small
# parameters that can there: the book's 64x64 DCGAN-anime upsamples 2**len(g_widths) times.
# sgan_mlp gets tiny widths and its Gaussian noise off (as dropout is off for sgan there): a test that
# expects one step to lower a loss cannot hold with random noise in D.
MNIST_PARAMS = {"dcgan_anime": {"g_dense": 8, "g_widths": [8, 4], "d_widths": [4, 4, 4], "d_dense": 8},
                "sgan_mlp": {"latent_dim": 4, "g_widths": [8], "d_widths": [8, 4], "input_noise": 0.0, "hidden_noise": 0.0}}

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_HELP = ("the tests need real MNIST: set GANTRAIN_MNIST_ROOT to a folder holding its four IDX files "
              f"({', '.join(f + '.gz' for f in IDX_FILES)}), or check the repository out next to shared/ "
              "(../shared/data/mnist), or download it once into the Keras cache: "
              "python -c 'import keras; keras.datasets.mnist.load_data()'")


def _has_idx(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in IDX_FILES)


def _idx_from_keras_cache(npz: Path) -> Path:
    """The Keras cache holds mnist.npz; the loaders' tests read IDX folders, so write one once."""
    import gzip
    import tempfile

    import numpy as np

    out = Path(tempfile.gettempdir()) / f"gantrain-test-mnist-{npz.stat().st_size}-{int(npz.stat().st_mtime)}"
    if _has_idx(out):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with np.load(npz, allow_pickle=False) as f:
        arrays = {"train-images-idx3-ubyte": f["x_train"], "train-labels-idx1-ubyte": f["y_train"],
                  "t10k-images-idx3-ubyte": f["x_test"], "t10k-labels-idx1-ubyte": f["y_test"]}
    for name, a in arrays.items():
        header = (2051 if a.ndim == 3 else 2049).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
        tmp = out / f".{name}.gz.tmp"
        with gzip.open(tmp, "wb") as g:
            g.write(header + a.astype("uint8").tobytes())
        tmp.replace(out / f"{name}.gz")
    return out


def locate_mnist() -> Path | None:
    """Where the tests read MNIST: $GANTRAIN_MNIST_ROOT, then ../shared/data/mnist, then the Keras cache."""
    env = os.environ.get("GANTRAIN_MNIST_ROOT")
    if env:
        return Path(env).expanduser() if _has_idx(Path(env).expanduser()) else None
    if _has_idx(SHARED_DATA / "mnist"):
        return SHARED_DATA / "mnist"
    npz = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets" / "mnist.npz"
    return _idx_from_keras_cache(npz) if npz.is_file() else None


# Decided once, before any test changes the environment (some tests unset GANTRAIN_MNIST_ROOT).
MNIST_DIR = locate_mnist()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if MNIST_DIR is None:
        pytest.fail(MNIST_HELP, pytrace=False)
    return MNIST_DIR


def user_error(call, *parts: str) -> str:
    """The UserError ``call()`` raises: one line, holding every part."""
    with pytest.raises(UserError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def image_and_label(batch: dict):
    """The image and label roles of a pipeline batch (batches are keyed by data role, data/source.py)."""
    return batch["image"], batch["label"]


def tiny_config(mnist_dir: Path, **train) -> dict:
    """A DCGAN a few hundred parameters wide: a step takes milliseconds on a CPU."""
    return {
        "name": "tiny",
        "seed": 3,
        "model": {"family": "dcgan", "latent_dim": 8, "g_widths": [8, 4], "d_widths": [4]},
        "data": {"loader": "mnist", "root": str(mnist_dir), "batch_size": 16},
        "train": {"steps": 6, **train},
        "log": {"every": 2, "sample_every": 3, "checkpoint_every": 3, "num_samples": 4},
    }
