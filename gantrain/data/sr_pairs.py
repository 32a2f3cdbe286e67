"""(LR, HR) pairs for super-resolution, batched as ``{"lr", "hr"}``, float32 in [-1, 1].

* :class:`SRPairs` (:func:`sr_pairs`): any :class:`ImageSource` (folder, CIFAR-10, faces) becomes
  pairs as SRGAN trains (Ledig et al. 2017): per example a random HR crop of ``hr_size``, a random
  symmetry of the square, and LR = the crop downscaled by ``scale`` (bicubic, antialiased). LR is
  computed from the augmented crop, so both sides line up by construction.
* :class:`SRFolderPairs` (:func:`load_sr_folders`): real LR images the user has, matched to their
  HR images by file name. Pairs may differ in size from each other; crops are aligned: the HR
  offset is drawn on the scale grid and the LR offset is the HR offset / scale.

Held-out images (``examples``) are never cropped at random nor augmented: each is the whole image,
cropped at the bottom and right to a multiple of the scale (:func:`modcrop`, as SR papers evaluate).

Every batch is a pure function of ``(seed, batch index)``, as in :mod:`gantrain.data.pairs`: the
order comes from :func:`shuffled_indices`, the crop offsets and symmetries from stateless draws
seeded by :func:`pairs.batch_seed`, so a run resumed at batch ``k`` sees the uninterrupted run's
batches. Sizes are written height x width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from gantrain.data.image_folder import eight_bit
from gantrain.data.paired_folder import decode_all, first_few, image_files, kept, no_images, unreadable
from gantrain.data.pairs import _finish, batch_seed, numbered
from gantrain.data.source import ImageSource, Source, shuffled_indices, to_unit_range
from gantrain.errors import UserError

SCALES = (2, 3, 4, 8)
ROLES = ("lr", "hr")
# Keeps these draws apart from the translation sources' (pairs.py uses salts 1-3).
_SR_SALT = 4


# ---------------------------------------------------------------------------------------------
# Resampling and cropping
# ---------------------------------------------------------------------------------------------
def _height_width(images):
    """(H, W) of a channels-last image or batch: static ints where known, else scalar tensors."""
    height, width = images.shape[-3], images.shape[-2]
    if height is None or width is None:
        dynamic = tf.shape(images)
        height, width = dynamic[-3] if height is None else height, dynamic[-2] if width is None else width
    return height, width


def bicubic_downscale(hr: tf.Tensor, scale: int) -> tf.Tensor:
    """The LR image of an HR image, as the SR literature makes it (bicubic with antialiasing).

    Args:
        hr: float (B, H, W, C) in [-1, 1], H and W multiples of ``scale`` (see :func:`modcrop`).
        scale: the integer downscaling factor.

    Returns:
        float32 (B, H / scale, W / scale, C): Keys' cubic (a = -0.5, the kernel of PIL and MATLAB),
        stretched by ``scale`` so that it averages away what the LR grid cannot hold, clipped to
        [-1, 1] (the cubic's lobes overshoot at sharp edges).
    """
    height, width = _height_width(hr)
    if isinstance(height, int) and (height % scale or width % scale):
        raise ValueError(f"bicubic_downscale: {height}x{width} is not a multiple of scale {scale}; modcrop first")
    lr = tf.image.resize(hr, (height // scale, width // scale), method="bicubic", antialias=True)
    return tf.clip_by_value(lr, -1.0, 1.0)


def bicubic_upscale(lr: tf.Tensor, scale: int) -> tf.Tensor:
    """The baseline every SR result is compared with: bicubic up by ``scale``, clipped to [-1, 1].

    Args:
        lr: float (B, h, w, C) in [-1, 1].
        scale: the integer upscaling factor.

    Returns:
        float32 (B, h * scale, w * scale, C), Keys' cubic (a = -0.5) at half-pixel centres.
    """
    height, width = _height_width(lr)
    # Antialiasing only widens the kernel when shrinking, so upscaling is plain bicubic either way;
    # asking for it selects TF's exactly evaluated kernel (scale_and_translate) instead of the
    # legacy ResizeBicubic, whose 1024-entry weight table is off by up to 1e-3 at x3.
    up = tf.image.resize(lr, (height * scale, width * scale), method="bicubic", antialias=True)
    return tf.clip_by_value(up, -1.0, 1.0)


def modcrop(images, scale: int):
    """Crop H and W down to multiples of ``scale``, keeping the top-left (MATLAB's modcrop, as SR papers evaluate).

    ``images``: a channels-last NumPy array or tensor, one image (H, W, C) or a batch (B, H, W, C).
    """
    height, width = _height_width(images)
    return images[..., : height - height % scale, : width - width % scale, :]


def random_crops(images: tf.Tensor, size: tuple[int, int], tops: tf.Tensor, lefts: tf.Tensor) -> tf.Tensor:
    """Per-example (h, w) = ``size`` windows of (B, H, W, C) ``images`` at rows ``tops``, columns ``lefts`` (B,)."""
    height, width = size
    rows = tops[:, None] + tf.range(height)[None, :]
    cols = lefts[:, None] + tf.range(width)[None, :]
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


def draw_offsets(uniform: tf.Tensor, room) -> tf.Tensor:
    """Integer offsets in [0, room] (room: a number or one per example) from uniform [0, 1) draws."""
    room = tf.cast(room, tf.int32)
    return tf.minimum(tf.cast(uniform * tf.cast(room + 1, tf.float32), tf.int32), room)


def random_symmetries(images: list[tf.Tensor], uniform: tf.Tensor, square: bool) -> list[tf.Tensor]:
    """The same random symmetry per example on every (B, H_i, W_i, C_i) tensor of ``images``.

    EDSR's augmentation (Lim et al. 2017): a left-right flip, an up-down flip and a transpose, each
    with probability 1/2 from ``uniform`` (3, B); together they make the 8 symmetries of the square
    (the 90-degree rotations are a transpose and a flip). Non-square crops cannot be transposed, so
    they get the flips and the 180-degree rotation (both flips) only.
    """
    hflip, vflip, transpose = (uniform[i][:, None, None, None] < 0.5 for i in range(3))
    out = []
    for x in images:
        x = tf.where(hflip, tf.reverse(x, [2]), x)
        x = tf.where(vflip, tf.reverse(x, [1]), x)
        if square:
            x = tf.where(transpose, tf.transpose(x, [0, 2, 1, 3]), x)
        out.append(x)
    return out


# ---------------------------------------------------------------------------------------------
# Validation: what a config can get wrong, as one-line UserErrors
# ---------------------------------------------------------------------------------------------
def check_scale(scale) -> int:
    """``scale`` as an int; a UserError unless it is one of :data:`SCALES`."""
    if isinstance(scale, bool) or scale not in SCALES:
        raise UserError(f"model.scale {scale!r} is not supported: use one of {', '.join(map(str, SCALES))}")
    return int(scale)


def _shown(size: tuple[int, int]) -> str:
    return str(size[0]) if size[0] == size[1] else f"[{size[0]}, {size[1]}]"


def check_hr_size(hr_size, scale: int) -> tuple[int, int] | None:
    """``hr_size`` (a number for a square, or [height, width]) as (h, w), or None; a UserError when a side
    is not a positive multiple of ``scale`` (the LR crop must have whole pixels)."""
    if hr_size is None:
        return None
    sides = [hr_size, hr_size] if isinstance(hr_size, (int, np.integer)) else hr_size
    if (not isinstance(sides, (list, tuple)) or len(sides) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sides)):
        raise UserError(f"data.hr_size {hr_size!r} is not a crop size: use a positive number (square) or [height, width], multiples of model.scale {scale}")
    size = (int(sides[0]), int(sides[1]))
    for side in size:
        if side % scale:
            lower = side - side % scale
            fits = f"{lower} or {lower + scale}" if lower else str(scale)
            which = "" if size[0] == size[1] else f": {side}"
            raise UserError(f"data.hr_size {_shown(size)}{which} is not a multiple of model.scale {scale}: use {fits}")
    return size


def check_image_size(height: int, width: int, scale: int, hr_size: tuple[int, int] | None, what: str) -> None:
    """A UserError when ``what`` (the H x W image(s) it names) is smaller than ``scale`` or than the crop."""
    if min(height, width) < scale:
        raise UserError(f"model.scale {scale} is larger than {what}: each side needs at least {scale} pixels; use a smaller model.scale or larger images")
    if hr_size is not None and (hr_size[0] > height or hr_size[1] > width):
        fit = (min(hr_size[0], height - height % scale), min(hr_size[1], width - width % scale))
        fit_shown = str(min(fit)) if hr_size[0] == hr_size[1] else f"[{fit[0]}, {fit[1]}]"
        raise UserError(f"data.hr_size {_shown(hr_size)} is larger than {what}; use at most {fit_shown} (a multiple of model.scale {scale}), or larger images")


def _examples_dict(lr, hr) -> dict:
    return {"lr": np.asarray(lr, np.float32), "hr": np.asarray(hr, np.float32)}


# ---------------------------------------------------------------------------------------------
# LR computed from HR
# ---------------------------------------------------------------------------------------------
@dataclass
class SRPairs(Source):
    """(bicubic LR, HR) pairs over an image source; LR is computed from the HR crop in the pipeline."""

    base: ImageSource  # uint8 images, all the same size
    scale: int
    hr_size: tuple | None  # (h, w) of the random training crops; None: the whole (modcropped) image
    augment: bool = True  # random flips, and 90-degree rotations when the crop is square
    description: str = ""
    location: str = ""
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        self.scale = check_scale(self.scale)
        self.hr_size = check_hr_size(self.hr_size, self.scale)
        height, width, _ = self.base.image_shape
        check_image_size(height, width, self.scale, self.hr_size, f"the {height}x{width} images of {self.base.description or 'the data'}")
        self.description = self.description or f"{self.base.description}, x{self.scale} bicubic LR -> HR"
        self.location = self.location or self.base.location

    @property
    def roles(self) -> tuple[str, ...]:
        return ROLES

    @property
    def image_shape(self) -> tuple:
        """(h, w, C) of the HR crop, or of the modcropped whole image when ``hr_size`` is None."""
        height, width, channels = self.base.image_shape
        if self.hr_size is not None:
            return (*self.hr_size, channels)
        return (height - height % self.scale, width - width % self.scale, channels)

    @property
    def input_shape(self) -> tuple:
        """What the generator reads: the LR crop."""
        height, width, channels = self.image_shape
        return (height // self.scale, width // self.scale, channels)

    def __len__(self) -> int:
        return len(self.base)

    def examples(self, indices) -> dict:
        """The whole images at ``indices``, modcropped, never cropped at random or augmented (held-out
        evaluation, fixed sample grids): float32 [-1, 1] arrays, ``lr`` (N, h, w, C) and ``hr`` (N, H, W, C)."""
        hr = to_unit_range(modcrop(self.base.images[np.asarray(indices)], self.scale))
        return _examples_dict(bicubic_downscale(hr, self.scale), hr)

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Crop (uint8, before converting: less to convert), then the symmetry, then LR from the moved crop."""
        images, scale, augment = tf.constant(self.base.images), self.scale, self.augment
        height, width, _ = self.base.image_shape
        crop_h, crop_w, _ = self.image_shape
        # Without hr_size the "crop" is the top-left modcrop: no room to move.
        room_h, room_w = (height - crop_h, width - crop_w) if self.hr_size is not None else (0, 0)

        def make(batch_index, idx):
            # Five draws per example whether or not augment is on, so switching it keeps the crops.
            draws = tf.random.stateless_uniform([5, tf.size(idx)], seed=batch_seed(seed, batch_index, _SR_SALT))
            tops, lefts = draw_offsets(draws[0], room_h), draw_offsets(draws[1], room_w)
            hr = to_unit_range(random_crops(tf.gather(images, idx), (crop_h, crop_w), tops, lefts))
            if augment:
                (hr,) = random_symmetries([hr], draws[2:], crop_h == crop_w)
            return {"lr": bicubic_downscale(hr, scale), "hr": hr}

        return _finish(numbered(shuffled_indices(len(self), batch_size, seed, start_batch), start_batch), make)


def sr_pairs(source: ImageSource, scale: int, hr_size=None, augment: bool = True) -> SRPairs:
    """(LR, HR) pairs over ``source``'s images, validated (UserError on a bad scale, a crop that is not a
    multiple of the scale or larger than the images); ``hr_size``: a number (square) or (h, w)."""
    return SRPairs(source, scale, hr_size, augment)


# ---------------------------------------------------------------------------------------------
# Real LR images: paired folders
# ---------------------------------------------------------------------------------------------
@dataclass
class SRFolderPairs(Source):
    """(LR, HR) pairs read from files; each pair has its own size, kept as lists of uint8 arrays."""

    lr_images: list  # uint8 (h_i, w_i, C)
    hr_images: list  # uint8 (h_i * scale, w_i * scale, C), modcropped
    scale: int
    hr_size: tuple | None = None  # (h, w) of the training crops; None only when all pairs have one size
    augment: bool = True
    names: list = field(default_factory=list)  # the HR file of each pair, for messages
    description: str = ""
    location: str = ""
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        self.scale = check_scale(self.scale)
        self.hr_size = check_hr_size(self.hr_size, self.scale)
        if not self.hr_images or len(self.lr_images) != len(self.hr_images):
            raise ValueError(f"{len(self.lr_images)} LR and {len(self.hr_images)} HR images: need the same, non-zero count")
        self.names = self.names or [f"pair {i}" for i in range(len(self.hr_images))]
        for lr, hr, name in zip(self.lr_images, self.hr_images, self.names):
            if lr.dtype != np.uint8 or hr.dtype != np.uint8 or lr.ndim != 3 or hr.shape != (lr.shape[0] * self.scale, lr.shape[1] * self.scale, lr.shape[2]):
                raise ValueError(f"{name}: LR {lr.dtype} {lr.shape} and HR {hr.dtype} {hr.shape} are not uint8 (h, w, C) and (h * {self.scale}, w * {self.scale}, C)")
            check_image_size(hr.shape[0], hr.shape[1], self.scale, self.hr_size, f"the {hr.shape[0]}x{hr.shape[1]} HR image {name}")

    @property
    def roles(self) -> tuple[str, ...]:
        return ROLES

    def _common_size(self) -> tuple[int, int] | None:
        sizes = {hr.shape[:2] for hr in self.hr_images}
        return sizes.pop() if len(sizes) == 1 else None

    @property
    def image_shape(self) -> tuple:
        """(h, w, C) of the HR crop; without ``hr_size``, the HR images' size, (None, None, C) when they differ."""
        size = self.hr_size or self._common_size() or (None, None)
        return (*size, self.hr_images[0].shape[2])

    @property
    def input_shape(self) -> tuple:
        height, width, channels = self.image_shape
        return (None if height is None else height // self.scale, None if width is None else width // self.scale, channels)

    def __len__(self) -> int:
        return len(self.hr_images)

    def examples(self, indices) -> dict:
        """The whole pairs at ``indices``, uncropped and unaugmented: lists of float32 [-1, 1] arrays
        ``lr`` (h_i, w_i, C) and ``hr`` (h_i * scale, w_i * scale, C)."""
        def unit(image):
            return image.astype(np.float32) / 127.5 - 1.0

        indices = np.asarray(indices).tolist()
        return {"lr": [unit(self.lr_images[i]) for i in indices], "hr": [unit(self.hr_images[i]) for i in indices]}

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Aligned random crops: the LR offset is drawn in LR pixels, the HR offset is ``scale`` times it.

        The offsets are stateless TF draws; only the slicing runs in NumPy (the images stay Python
        lists of different sizes, not one tensor), so batches stay a pure function of (seed, batch index).
        """
        size = self.hr_size or self._common_size()
        if size is None:
            sizes = {f"{hr.shape[0]}x{hr.shape[1]}" for hr in self.hr_images}
            raise UserError(f"data.hr_size is not set but the HR images of {self.description or 'the folders'} have different sizes ({first_few(sorted(sizes))}); "
                            f"set data.hr_size to train on crops (a multiple of model.scale {self.scale})")
        scale, channels, augment = self.scale, self.hr_images[0].shape[2], self.augment
        crop_h, crop_w = size
        lr_h, lr_w = crop_h // scale, crop_w // scale
        lr_images, hr_images = self.lr_images, self.hr_images
        room_rows = tf.constant([lr.shape[0] - lr_h for lr in lr_images], tf.int32)
        room_cols = tf.constant([lr.shape[1] - lr_w for lr in lr_images], tf.int32)

        def cut(idx, tops, lefts):
            lr = np.stack([lr_images[i][t : t + lr_h, l : l + lr_w] for i, t, l in zip(idx, tops, lefts)])
            hr = np.stack([hr_images[i][t * scale : t * scale + crop_h, l * scale : l * scale + crop_w] for i, t, l in zip(idx, tops, lefts)])
            return lr, hr

        def make(batch_index, idx):
            n = tf.size(idx)
            draws = tf.random.stateless_uniform([5, n], seed=batch_seed(seed, batch_index, _SR_SALT))
            tops = draw_offsets(draws[0], tf.gather(room_rows, idx))
            lefts = draw_offsets(draws[1], tf.gather(room_cols, idx))
            lr, hr = tf.numpy_function(cut, [idx, tops, lefts], [tf.uint8, tf.uint8], stateful=False)
            lr = tf.ensure_shape(lr, (batch_size, lr_h, lr_w, channels))
            hr = tf.ensure_shape(hr, (batch_size, crop_h, crop_w, channels))
            lr, hr = to_unit_range(lr), to_unit_range(hr)
            if augment:
                lr, hr = random_symmetries([lr, hr], draws[2:], crop_h == crop_w)
            return {"lr": lr, "hr": hr}

        return _finish(numbered(shuffled_indices(len(self), batch_size, seed, start_batch), start_batch), make)


def read_whole(path: Path, channels: int, on_error: str) -> np.ndarray | None:
    """One image file, whole, as uint8 (H, W, channels): any mode (grey, RGB, RGBA, 16-bit) converted;
    None for an unreadable file under ``on_error: skip``."""
    try:
        with Image.open(path) as img:
            # eight_bit first: Pillow's convert() would clip 16-bit values at 255.
            arr = np.asarray(eight_bit(img).convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        if on_error == "fail":
            raise unreadable(path, err) from None
        return None
    return arr[..., None] if channels == 1 else arr


def _by_stem(folder: Path, key: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"{key}: {folder} is not a folder")
    files: dict[str, Path] = {}
    for path in image_files(folder):
        if path.stem in files:
            raise UserError(f"{key}: {files[path.stem].name} and {path.name} in {folder} have the same name; HR and LR files are matched by name without extension, so keep one")
        files[path.stem] = path
    if not files:
        raise no_images(key, folder)
    return files


def matched_sr_files(hr_dir: Path, lr_dir: Path) -> list[tuple[Path, Path]]:
    """(HR file, LR file) pairs matched by file name without extension (``hr/x.png`` <-> ``lr/x.jpg``); listing only."""
    hr, lr = _by_stem(hr_dir, "data.hr_dir"), _by_stem(lr_dir, "data.lr_dir")
    only_hr, only_lr = sorted(set(hr) - set(lr)), sorted(set(lr) - set(hr))
    if only_hr or only_lr:
        raise UserError(f"data.lr_dir: unmatched files: {len(only_hr)} HR image(s) in {hr_dir} have no namesake in {lr_dir} ({first_few(hr[s].name for s in only_hr) or 'none'}) "
                        f"and {len(only_lr)} LR image(s) none in {hr_dir} ({first_few(lr[s].name for s in only_lr) or 'none'}); HR and LR files are matched by name without extension: rename or remove them")
    return [(hr[stem], lr[stem]) for stem in sorted(hr)]


def load_sr_folders(hr_dir, lr_dir, scale: int, channels: int, on_error: str = "fail", hr_size=None, augment: bool = True) -> SRFolderPairs:
    """(LR, HR) pairs from ``lr_dir`` and ``hr_dir``, matched by file name without extension.

    Each HR image is modcropped, and its LR image must then be exactly 1/``scale`` of it (else a
    UserError naming the file and both sizes). ``channels``: 1 (grey) or 3 (RGB), whatever the files'
    modes. Unreadable files stop the load (``on_error: fail``) or are skipped, their pairs counted in
    a warning (``skip``). ``hr_size``: the training crop, a number (square) or (h, w); needed for
    training batches when the pairs differ in size.
    """
    scale = check_scale(scale)
    if channels not in (1, 3):
        raise UserError(f"data.channels {channels!r}: use 1 (grey) or 3 (RGB)")
    if on_error not in ("fail", "skip"):
        raise UserError(f"data.on_error {on_error!r}: use fail or skip")
    hr_dir, lr_dir = Path(hr_dir), Path(lr_dir)
    pairs = matched_sr_files(hr_dir, lr_dir)

    def read(pair):
        hr_path, lr_path = pair
        hr, lr = read_whole(hr_path, channels, on_error), read_whole(lr_path, channels, on_error)
        if hr is None or lr is None:
            return None
        height, width = hr.shape[:2]
        check_image_size(height, width, scale, None, f"the {height}x{width} HR image {hr_path}")
        hr = np.ascontiguousarray(modcrop(hr, scale))
        want = (hr.shape[0] // scale, hr.shape[1] // scale)
        if lr.shape[:2] != want:
            cropped = f" (cropped to {hr.shape[0]}x{hr.shape[1]}, a multiple of model.scale {scale})" if hr.shape[:2] != (height, width) else ""
            raise UserError(f"{lr_path}: the LR image is {lr.shape[0]}x{lr.shape[1]} but its HR image {hr_path.name} is {height}x{width}{cropped}, "
                            f"so at model.scale {scale} the LR must be {want[0]}x{want[1]} (height x width); check model.scale or fix the file")
        return lr, hr

    decoded = decode_all(read, pairs)
    keep = kept(decoded, "pairs", hr_dir, "data.hr_dir")
    description = f"sr folders {hr_dir} | {lr_dir} ({len(keep)} pairs, x{scale})"
    return SRFolderPairs([decoded[i][0] for i in keep], [decoded[i][1] for i in keep], scale, hr_size, augment,
                         names=[str(pairs[i][0]) for i in keep], description=description,
                         location=f"{hr_dir.resolve()}|{lr_dir.resolve()}")
