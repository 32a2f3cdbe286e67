"""Folders of images: ``root/*.png`` (unlabeled) or ``root/<class>/*.png`` (one label per subfolder).

Images are decoded with Pillow in a thread pool (PNG, JPEG, PGM/PPM, BMP, GIF, TIFF, WebP), converted
to grey or RGB, brought to ``image_size`` (``resize``: ``center_crop`` scales the shorter side to fit
and cuts the rest; ``pad`` scales the longer side to fit and fills the rest by repeating the edge
pixels), then kept in memory as uint8, so each file is decoded once per run rather than once per epoch.

``channels: auto`` is 1 when every image of the folder is grey by its Pillow mode (read from the
file headers only), else 3. It is decided on the whole folder, before any holdout, so the training
and held-out splits agree; the number a run trains with is what its meta.json records, and
sampling, evaluation and resume read it there.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gantrain.data.holdout import holdout_split
from gantrain.data.source import ImageSource
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

RESIZES = ("center_crop", "pad")
# Pillow modes of single-channel images: bilevel, 8-bit, 8-bit with alpha, 32-bit and 16-bit integer.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
EXTENSIONS = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

SCHEMA = {
    "root": Field(None, "folder of images, or of one subfolder of images per class", "path"),
    "image_size": Field(64, "output size: one number (square) or [height, width]", "size", min=1, max=4096),
    "channels": Field(3, "1 = grey, 3 = RGB (images are converted), auto = 1 when every image of the folder is grey (by its mode, read "
                      "from the file headers), else 3; a run records the number it used in meta.json", "int", choices=(1, 3, "auto")),
    "resize": Field("center_crop", "how images are brought to image_size: center_crop (scale the shorter side to fit, cut the rest off) or "
                    "pad (scale the longer side to fit, fill the rest by repeating the edge pixels: keeps whole portraits); the same "
                    "for training and held-out images", "str", choices=RESIZES),
    "labels": Field("auto", "auto: class subfolders give labels when present; none: ignore subfolders", "str", choices=("auto", "none")),
    "on_error": Field("fail", "unreadable image files: fail (stop with the file name) or skip (count and warn)", "str", choices=("fail", "skip")),
    "classes": Field(None, "only these class subfolders, in this order (e.g. [horse, deer]); default: every subfolder with images", "str_list", nullable=True),
    "holdout": Field(0.0, "fraction held out as the test split (the same images whatever the seed): training uses the rest, evaluation and grids the held-out part", "float", min=0, max=0.9),
    "holdout_by": Field("image", "image: that fraction of each class's images; class: that fraction of the classes, whole (e.g. face subjects never seen in training)", "str", choices=("image", "class")),
}


def list_images(root: Path, labels: str, only: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """Image files and their class indices; classes are the sorted subfolder names (or ``only``, in its order)."""
    if not root.is_dir():
        raise UserError(f"data.root: {root} is not a folder")
    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)

    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if only:
        missing = [name for name in only if not (root / name).is_dir()]
        if missing:
            have = ", ".join(d.name for d in subdirs) or "none"
            raise UserError(f"data.classes: no subfolder {missing[0]!r} in {root} (subfolders: {have})")
        empty = [name for name in only if not images_in(root / name)]
        if empty:
            raise UserError(f"data.classes: {root / empty[0]} holds no images")
        subdirs = [root / name for name in only]
    classes = [d for d in subdirs if images_in(d)] if labels == "auto" or only else []
    if classes:
        files, ids = [], []
        for i, folder in enumerate(classes):
            found = images_in(folder)
            files += found
            ids += [i] * len(found)
        return files, ids, [d.name for d in classes]
    files = images_in(root)
    if labels == "none":
        files += [p for d in subdirs for p in images_in(d)]
    if not files:
        raise UserError(f"data.root: no images in {root} (looked for {', '.join(sorted(EXTENSIONS))} there and in its subfolders)")
    return files, [-1] * len(files), []


def load_image(path: Path, size: tuple[int, int], channels: int, resize: str = "center_crop") -> np.ndarray:
    """Decode, convert to grey (``channels`` 1) or RGB (3) and bring to ``size`` (height, width) by ``resize``.

    Returns:
        uint8 (height, width, channels).
    """
    with Image.open(path) as img:
        img = eight_bit(img).convert("L" if channels == 1 else "RGB")
        arr = padded(img, size) if resize == "pad" else center_cropped(img, size)
    return arr[..., None] if channels == 1 else arr


def _resampler(scale: float) -> Image.Resampling:
    # Bicubic to enlarge; Lanczos to shrink, which filters out what the smaller grid cannot hold.
    return Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS


def center_cropped(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Scale so the shorter side fits ``size`` (height, width), then cut the middle out."""
    height, width = size
    scale = max(height / img.height, width / img.width)
    new = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    if new != img.size:
        img = img.resize(new, _resampler(scale))
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return np.asarray(img.crop((left, top, left + width, top + height)), dtype=np.uint8)


def padded(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Scale so the longer side fits ``size`` (height, width), then pad the other side symmetrically
    (the odd pixel at the bottom or right) by repeating the edge pixels.

    Edge replication, not a constant: a GAN learns whatever every training image shares, so constant
    bars would become part of the faces it draws (and of the real statistics FID compares against);
    repeated edge pixels continue the background instead of adding a frame.
    """
    height, width = size
    scale = min(height / img.height, width / img.width)
    new = (min(width, max(1, round(img.width * scale))), min(height, max(1, round(img.height * scale))))
    if new != img.size:
        img = img.resize(new, _resampler(scale))
    arr = np.asarray(img, dtype=np.uint8)
    top, left = (height - new[1]) // 2, (width - new[0]) // 2
    pads = [(top, height - new[1] - top), (left, width - new[0] - left)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pads, mode="edge")


def folder_channels(files: list[Path], on_error: str) -> int:
    """1 when every image in ``files`` is grey by its Pillow mode (headers only: nothing is decoded), else 3.

    Unreadable files are an error with ``on_error`` fail, and ignored with skip (the loader skips them too).
    """
    key = tuple((str(p), *_stamp(p)) for p in files)
    return _folder_channels(key, on_error)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


# Cached by (path, mtime, size) of every file: validate, fit and eval ask more than once per run, and
# opening 50,000 headers takes seconds; a changed or added file changes the key.
@functools.lru_cache(maxsize=16)
def _folder_channels(key: tuple, on_error: str) -> int:
    for path, *_ in key:
        try:
            with Image.open(path) as img:
                mode = img.mode
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            if on_error == "fail":
                raise UserError(f"{path}: cannot read image ({err}); fix or remove it, or set data.on_error: skip") from None
            continue
        if mode not in GREY_MODES:
            return 3
    return 1


def eight_bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer images (16-bit PNG, some PGM) scaled to 8 bits: Pillow's convert() would clip them at 255."""
    if not img.mode.startswith("I"):
        return img
    arr = np.asarray(img, dtype=np.uint32)
    return Image.fromarray((arr // 257 if arr.max() > 255 else arr).astype(np.uint8))


def load_folder(root: Path, size: tuple[int, int], channels: int | str, labels: str, on_error: str, only: list[str] | None = None,
                resize: str = "center_crop") -> ImageSource:
    """Every image under ``root`` (see :func:`list_images`) decoded into memory; ``channels`` 1, 3 or "auto"."""
    files, ids, class_names = list_images(root, labels, only)
    if channels == "auto":
        channels = folder_channels(files, on_error)

    def decode(path: Path):
        try:
            return load_image(path, size, channels, resize)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            if on_error == "fail":
                raise UserError(f"{path}: cannot read image ({err}); fix or remove it, or set data.on_error: skip") from None
            return None

    workers = min(32, (os.cpu_count() or 1) * 4)
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(decode, files))
    keep = [i for i, img in enumerate(decoded) if img is not None]
    skipped = len(files) - len(keep)
    if skipped:
        print(f"warning: skipped {skipped} unreadable image file(s) under {root} (data.on_error: skip)", file=sys.stderr)
    if not keep:
        raise UserError(f"data.root: none of the {len(files)} image files under {root} could be read")
    images = np.stack([decoded[i] for i in keep])
    label_arr = np.asarray([ids[i] for i in keep], dtype=np.int32)
    return ImageSource(images, label_arr, class_names, f"{root} ({len(keep)} images)", str(root.resolve()))


def resolve_channels(params: dict) -> int:
    """``data.channels`` as a number: ``auto`` is decided from the headers of the folder's images."""
    if params["channels"] != "auto":
        return params["channels"]
    files, _, _ = list_images(Path(params["root"]), params["labels"], params["classes"])
    return folder_channels(files, params["on_error"])


class ImageFolder:
    def image_shape(self, params: dict) -> tuple:
        try:
            channels = resolve_channels(params)
        except UserError:
            # channels: auto with the folder gone or unreadable. Validation only checks the family
            # against this shape; training fails in load() with the folder's own message, and a
            # finished run is rebuilt from its meta.json, so sampling and eval work without the data.
            channels = 3
        return (*params["image_size"], channels)

    def has_splits(self, params: dict) -> bool:
        return params["holdout"] > 0

    def check(self, params: dict) -> tuple[str, ...]:
        """The folder must exist and hold images (``gantrain validate``); nothing is decoded. The roles
        provided: class subfolders give labels."""
        _, _, classes = list_images(Path(params["root"]), params["labels"], params["classes"])
        return ("image", "label") if len(classes) >= 2 else ("image",)

    def load(self, params: dict, split: str | None = None) -> ImageSource:
        # channels: auto is resolved on the whole folder, before the holdout, so both splits agree.
        source = load_folder(Path(params["root"]), tuple(params["image_size"]), params["channels"], params["labels"], params["on_error"],
                             params["classes"], params["resize"])
        if params["holdout"] > 0:
            source = holdout_split(source, params["holdout"], params["holdout_by"], split or "train")
        return source


DATASETS.register("image_folder", description="any folder of PNG/JPEG/PGM/BMP images, optional class subfolders", schema=SCHEMA)(ImageFolder())
