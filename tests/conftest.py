"""Shared fixtures: real data from ../shared/data and a tiny, fast config."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    assert (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(), f"real MNIST expected in {MNIST_DIR} (see README, offline data)"
    return MNIST_DIR


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
