"""MNIST and Fashion-MNIST from their four IDX files.

Where the files are looked for, in order: ``data.root``; the environment variable
(``GANTRAIN_MNIST_ROOT`` / ``GANTRAIN_FASHION_MNIST_ROOT``); the Debian package folder
(Fashion-MNIST only); the Keras cache (``~/.keras/datasets``); and finally a Keras download,
which needs the internet. Offline with no files, the error says how to point at local ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gantrain.data.download import DownloadError, fetch
from gantrain.data.idx import read_idx
from gantrain.data.source import ImageSource
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SCHEMA = {
    "root": Field(None, "folder with the four IDX files (.gz or not); default: $GANTRAIN_<NAME>_ROOT, then the Keras cache/download", "path", nullable=True),
    "split": Field("train", "train or test", "str", choices=("train", "test")),
}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_stem, lbl_stem = _FILES[split]
    img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
    if img_path is None or lbl_path is None:
        missing = img_stem if img_path is None else lbl_stem
        raise UserError(f"{folder}: {missing}.gz not found (need the {split} images and labels IDX files)")
    images, labels = read_idx(img_path, 3), read_idx(lbl_path, 1)
    if len(images) != len(labels):
        raise UserError(f"{folder}: {len(images)} images in {img_path.name} but {len(labels)} labels in {lbl_path.name}")
    return images, labels


class IdxDataset:
    def __init__(self, name: str, env: str, keras_module: str, class_names: list[str], extra_dirs: tuple = ()):
        self.name, self.env, self.keras_module = name, env, keras_module
        self.class_names, self.extra_dirs = class_names, extra_dirs

    def image_shape(self, params: dict) -> tuple:
        return (28, 28, 1)

    def has_splits(self, params: dict) -> bool:
        return True

    def load(self, params: dict, split: str | None = None) -> ImageSource:
        split = split or params["split"]
        if split not in _FILES:
            raise UserError(f"split {split!r}: valid splits are {', '.join(_FILES)}")
        images, labels, location = self._arrays(params, split)
        return ImageSource(images[..., None].astype(np.uint8), labels.astype(np.int32), list(self.class_names), f"{self.name} {split}", location)

    def check(self, params: dict) -> tuple[str, ...]:
        """Cheap checks of the configured files (``gantrain validate``), without reading them; the roles provided."""
        split = params["split"]
        for root, name in ((params.get("root"), "data.root"), (os.environ.get(self.env), f"${self.env}")):
            if root:
                root = Path(root).expanduser()
                if not root.is_dir():
                    raise UserError(f"{name}: {root} is not a folder; it should hold the four {self.name} IDX .gz files")
                for stem in _FILES[split]:
                    if _find(root, stem) is None:
                        raise UserError(f"{root}: {stem}.gz not found (need the {split} images and labels IDX files)")
                break
        return ("image", "label")

    def _arrays(self, params: dict, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(images, labels, resolved folder or file they came from)."""
        if params.get("root"):
            root = Path(params["root"])
            if not root.is_dir():
                raise UserError(f"data.root: {root} is not a folder; it should hold the four {self.name} IDX .gz files")
            return (*read_idx_pair(root, split), str(root.resolve()))
        if os.environ.get(self.env):
            root = Path(os.environ[self.env]).expanduser()
            if not root.is_dir():
                raise UserError(f"${self.env}={root} is not a folder; it should hold the four {self.name} IDX .gz files")
            return (*read_idx_pair(root, split), str(root.resolve()))
        for folder in self.extra_dirs:
            if _find(Path(folder), _FILES[split][0]):
                return (*read_idx_pair(Path(folder), split), str(Path(folder).resolve()))
        return self._keras(split)

    def _keras(self, split: str) -> tuple[np.ndarray, np.ndarray, str]:
        """The Keras cache, downloading into it when online. Read without unpickling anything."""
        try:
            if self.name == "mnist":
                path = fetch("mnist.npz", _ORIGIN + "mnist.npz", "datasets")
                with np.load(path, allow_pickle=False) as f:
                    prefix = "x_train" if split == "train" else "x_test"
                    return f[prefix], f[prefix.replace("x_", "y_")], str(Path(path).resolve())
            folder = None
            for stem in _FILES[split]:
                folder = fetch(stem + ".gz", _ORIGIN + "fashion-mnist/" + stem + ".gz", "datasets/fashion-mnist").parent
            return (*read_idx_pair(folder, split), str(Path(folder).resolve()))
        except DownloadError as err:
            raise UserError(
                f"{self.name}: no local files and the download failed ({err}). "
                f"Offline, point at a folder holding the four IDX .gz files with data.root: PATH in the config, "
                f"--set data.root=PATH, or the environment variable {self.env}=PATH"
            ) from None


_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


DATASETS.register("mnist", description="MNIST digits 28x28x1, 10 classes (IDX files or Keras download)", schema=SCHEMA)(
    IdxDataset("mnist", "GANTRAIN_MNIST_ROOT", "mnist", [str(i) for i in range(10)])
)
DATASETS.register("fashion_mnist", description="Fashion-MNIST 28x28x1, 10 classes (IDX files, Debian package or Keras download)", schema=SCHEMA)(
    IdxDataset(
        "fashion_mnist",
        "GANTRAIN_FASHION_MNIST_ROOT",
        "fashion_mnist",
        ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"],
        extra_dirs=("/usr/share/datasets/fashion-mnist",),
    )
)
