"""CIFAR-10 (32x32x3, 10 classes): a local image folder of class subfolders, or the Keras download.

The download is the official Python-pickle archive. It is read straight from the .tar.gz with an
unpickler that only admits NumPy arrays, so a tampered cache cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from gantrain.data.download import DownloadError, fetch
from gantrain.data.image_folder import list_images, load_folder
from gantrain.data.source import ImageSource
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ENV = "GANTRAIN_CIFAR10_ROOT"
SCHEMA = {
    "root": Field(None, f"image folder with one subfolder per class; default: ${ENV}, then the Keras cache/download", "path", nullable=True),
    "split": Field("train", "train or test (the downloaded archive only; a root folder is used as it is)", "str", choices=("train", "test")),
    "on_error": Field("fail", "unreadable image files in root: fail or skip", "str", choices=("fail", "skip")),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")
        return super().find_class(module, name)


def read_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    batches = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    if split not in batches:  # never read the test batch for a misspelt split
        raise UserError(f"split {split!r}: valid splits are {', '.join(batches)}")
    names = batches[split]
    xs, ys = [], []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in names:
                raw = tar.extractfile(f"cifar-10-batches-py/{name}").read()
                batch = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
                xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                ys.append(np.asarray(batch[b"labels"], dtype=np.int32))
    except (OSError, KeyError, EOFError, tarfile.TarError, pickle.UnpicklingError) as err:
        raise UserError(f"{path}: not a valid CIFAR-10 python archive ({err}); delete it to download again") from None
    return np.concatenate(xs), np.concatenate(ys)


class Cifar10:
    def image_shape(self, params: dict) -> tuple:
        return (32, 32, 3)

    def has_splits(self, params: dict) -> bool:
        """Only the downloaded archive has train/test splits; a root folder is one set of images."""
        return not (params.get("root") or os.environ.get(ENV))

    def check(self, params: dict) -> tuple[str, ...]:
        """A configured folder must exist and hold images (``gantrain validate``); nothing is decoded. The roles provided."""
        root = params.get("root") or os.environ.get(ENV)
        if root:
            _, _, classes = list_images(Path(root).expanduser(), "auto")
            return ("image", "label") if len(classes) >= 2 else ("image",)
        return ("image", "label")

    def load(self, params: dict, split: str | None = None) -> ImageSource:
        split = split or params["split"]
        root = params.get("root") or os.environ.get(ENV)
        if root:
            return load_folder(Path(root).expanduser(), (32, 32), 3, "auto", params["on_error"])
        try:
            path = fetch("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "datasets")
        except DownloadError as err:
            raise UserError(
                f"cifar10: no local files and the download failed ({err}). Offline, point at an image folder with "
                f"one subfolder per class via data.root: PATH, --set data.root=PATH or {ENV}=PATH"
            ) from None
        images, labels = read_archive(path, split)
        return ImageSource(images, labels, list(CLASSES), f"cifar10 {split}", str(Path(path).resolve()))


DATASETS.register("cifar10", description="CIFAR-10 32x32x3, 10 classes (class-folder images or Keras download)", schema=SCHEMA)(Cifar10())
