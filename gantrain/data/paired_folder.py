"""The ``paired_folder`` loader: (input, target) image pairs for pix2pix, as a :class:`PairedSource`.

Two layouts, under ``root`` or under ``root/<split>`` when root has split folders (``train/``,
``test/``; ``val/`` stands for the test split when there is no ``test/``, as in the pix2pix datasets):

* ``folders``: ``A/x.png`` pairs with ``B/x.png``, matched by file name without its extension.
* ``side_by_side``: each file is A | B in one image, split at the middle column (the pix2pix
  datasets: facades, maps, edges2shoes, ...).

``direction: a2b`` makes A the input and B the target, ``b2a`` the reverse. Every image is decoded
once by :func:`image_folder.load_image` (any mode and size; the shorter side is resized and the
middle cropped), in a thread pool. The helpers here (listing, decoding with ``on_error``) are
shared with ``unpaired_folders``.
"""

from __future__ import annotations

import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gantrain.data.image_folder import EXTENSIONS, load_image
from gantrain.data.pairs import PairedSource
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

ROLES = ("source", "target")
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val")}
SHOWN = 3  # names shown of a longer list in an error message
IMAGE_SIZE = Field(256, "output size: one number (square) or [height, width]; images are resized (shorter side) and centre-cropped", "size", min=1, max=4096)
ON_ERROR = Field("fail", "unreadable image files: fail (stop with the file name) or skip (count and warn)", "str", choices=("fail", "skip"))

SCHEMA = {
    "root": Field(None, "folder of the pairs (A/ and B/, or side-by-side images), optionally split into train/ and test/ (or val/)", "path"),
    "layout": Field("folders", "folders: A/x.png pairs with B/x.png (same name, any extension); side_by_side: each image is A | B, split at the middle column (the pix2pix datasets)", "str", choices=("folders", "side_by_side")),
    "direction": Field("a2b", "a2b: A (folder A/, or the left half) is the input, B the target; b2a: the reverse", "str", choices=("a2b", "b2a")),
    "split": Field("train", "train or test: root/<split> when root has split folders (val/ stands for a missing test/), else root itself", "str", choices=("train", "test")),
    "image_size": IMAGE_SIZE,
    "channels": Field(3, "1 = grey, 3 = RGB, for the target (and the input unless input_channels is set)", "int", choices=(1, 3)),
    "input_channels": Field(None, "the input's channels when they differ from the target's (1 = grey, 3 = RGB)", "int", choices=(1, 3), nullable=True),
    "on_error": ON_ERROR,
    "jitter": Field(False, "pix2pix random jitter: resize to 286/256 of the size, random crop back and random left-right mirroring, the same on both sides of a pair", "bool"),
}


# ---------------------------------------------------------------------------------------------
# Helpers shared with unpaired_folders
# ---------------------------------------------------------------------------------------------
def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files left out)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS)


def no_images(key: str, folder: Path) -> UserError:
    return UserError(f"{key}: no images in {folder} (looked for {', '.join(sorted(EXTENSIONS))} files directly in it)")


def first_few(names) -> str:
    names = list(names)
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def unreadable(path, err) -> UserError:
    return UserError(f"{path}: cannot read image ({err}); fix or remove it, or set data.on_error: skip")


def read_image(path: Path, size: tuple[int, int], channels: int, on_error: str) -> np.ndarray | None:
    """One image as uint8 (H, W, C); None for an unreadable file under ``on_error: skip``."""
    try:
        return load_image(path, size, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        if on_error == "fail":
            raise unreadable(path, err) from None
        return None


def decode_all(read, items: list) -> list:
    """``read(item)`` for every item, in a thread pool (Pillow releases the GIL while decoding)."""
    with ThreadPoolExecutor(min(32, (os.cpu_count() or 1) * 4)) as pool:
        return list(pool.map(read, items))


def kept(decoded: list, noun: str, where: Path, key: str) -> list[int]:
    """Indices of the items (``noun``: pairs, images) that decoded; warns of the skipped ones, fails when none is left."""
    keep = [i for i, item in enumerate(decoded) if item is not None]
    if len(keep) < len(decoded):
        print(f"warning: skipped {len(decoded) - len(keep)} of {len(decoded)} {noun} under {where}: an image file could not be read (data.on_error: skip)", file=sys.stderr)
    if not keep:
        raise UserError(f"{key}: none of the {len(decoded)} {noun} under {where} could be read (data.on_error: skip); check the files")
    return keep


def split_folder(root: Path, split: str) -> Path:
    """``root/<split>`` when root has split folders (``val`` for a missing ``test``), else root."""
    if not root.is_dir():
        raise UserError(f"data.root: {root} is not a folder")
    present = [name for name in ("train", "test", "val") if (root / name).is_dir()]
    if not present:
        return root
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    wanted = " or ".join(f"{name}/" for name in SPLIT_FOLDERS[split])
    raise UserError(f"data.split: {root} has the split folder(s) {', '.join(present)} but no {wanted}; choose another data.split or add the folder")


def has_split_folders(root: Path) -> bool:
    return (root / "train").is_dir() and any((root / name).is_dir() for name in SPLIT_FOLDERS["test"])


# ---------------------------------------------------------------------------------------------
# The two layouts
# ---------------------------------------------------------------------------------------------
def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in image_files(folder):
        if path.stem in files:
            raise UserError(f"data.root: {files[path.stem].name} and {path.name} in {folder} have the same name; pairs are matched by name without extension, so keep one")
        files[path.stem] = path
    return files


def matched_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(A file, B file) pairs of ``folder/A`` and ``folder/B`` by file name without extension; only listing, no decoding."""
    a_dir, b_dir = folder / "A", folder / "B"
    for sub in (a_dir, b_dir):
        if not sub.is_dir():
            raise UserError(f"data.root: {sub} is not a folder (layout folders reads A/x.png and B/x.png pairs under {folder}); for A | B images in one file set data.layout: side_by_side")
    a, b = _by_stem(a_dir), _by_stem(b_dir)
    for sub, files in ((a_dir, a), (b_dir, b)):
        if not files:
            raise no_images("data.root", sub)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise UserError(f"data.root: unmatched pairs under {folder}: {len(only_a)} file(s) in A/ have no namesake in B/ ({first_few(a[s].name for s in only_a) or 'none'}) "
                        f"and {len(only_b)} in B/ none in A/ ({first_few(b[s].name for s in only_b) or 'none'}); pairs are matched by name without extension: rename or remove them")
    return [(a[stem], b[stem]) for stem in sorted(a)]


def _as_file(img: Image.Image) -> io.BytesIO:
    """An in-memory lossless copy (TIFF keeps every Pillow mode), so load_image decodes a half as a file."""
    out = io.BytesIO()
    img.save(out, format="TIFF")
    out.seek(0)
    return out


def read_side_by_side(path: Path, size: tuple[int, int], channels: tuple[int, int], on_error: str):
    """(left half, right half) of one A | B image, each fitted to ``size``; None if unreadable under skip."""
    try:
        with Image.open(path) as img:
            img.load()
            width, height = img.size
            if width % 2 == 0:
                halves = [_as_file(img.crop(box)) for box in ((0, 0, width // 2, height), (width // 2, 0, width, height))]
                return tuple(load_image(half, size, c) for half, c in zip(halves, channels))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        if on_error == "fail":
            raise unreadable(path, err) from None
        return None
    raise UserError(f"{path}: {width} pixels wide, which cannot be split into input | target halves of equal width; crop one column or remove it (data.layout: side_by_side)")


class PairedFolder:
    def image_shape(self, params: dict) -> tuple:
        """The target's shape (what the generator makes)."""
        return (*params["image_size"], params["channels"])

    def has_splits(self, params: dict) -> bool:
        root = Path(params["root"])
        return root.is_dir() and has_split_folders(root)

    def check(self, params: dict) -> tuple[str, ...]:
        """The folders of the split (and of the test split, when there is one) exist and hold images, and for
        layout folders every name has its pair: listing only, nothing decoded."""
        for split in dict.fromkeys([params["split"], *(["test"] if self.has_splits(params) else [])]):
            self._items(params, split)
        return ROLES

    def _items(self, params: dict, split: str) -> tuple[Path, list]:
        """The split's folder and its (A, B) file pairs or side-by-side files."""
        folder = split_folder(Path(params["root"]), split)
        if params["layout"] == "folders":
            return folder, matched_pairs(folder)
        files = image_files(folder)
        if not files:
            raise no_images("data.root", folder)
        return folder, files

    def load(self, params: dict, split: str | None = None) -> PairedSource:
        folder, items = self._items(params, split or params["split"])
        size, on_error = tuple(params["image_size"]), params["on_error"]
        target_channels = params["channels"]
        input_channels = params["input_channels"] or target_channels
        a2b = params["direction"] == "a2b"
        channels_ab = (input_channels, target_channels) if a2b else (target_channels, input_channels)
        if params["layout"] == "folders":
            def read(pair):
                a, b = (read_image(path, size, c, on_error) for path, c in zip(pair, channels_ab))
                return None if a is None or b is None else (a, b)
        else:
            def read(path):
                return read_side_by_side(path, size, channels_ab, on_error)

        decoded = decode_all(read, items)
        keep = kept(decoded, "pairs", folder, "data.root")
        a = np.stack([decoded[i][0] for i in keep])
        b = np.stack([decoded[i][1] for i in keep])
        inputs, targets = (a, b) if a2b else (b, a)
        description = f"paired_folder {folder} ({len(keep)} pairs, {params['layout']}, {params['direction']})"
        return PairedSource(inputs, targets, description, str(folder.resolve()), jitter=params["jitter"])


DATASETS.register("paired_folder", description="(input, target) image pairs: A/ and B/ folders with matching names, or side-by-side A | B images (pix2pix)", schema=SCHEMA)(PairedFolder())
