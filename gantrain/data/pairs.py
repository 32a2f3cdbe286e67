"""Sources for image-to-image translation: paired, unpaired and derived pairs, with pix2pix jitter.

* :class:`PairedSource` (pix2pix): aligned ``inputs`` and ``targets``, batched as
  ``{"source", "target"}``; the channels may differ (grey input, RGB target).
* :class:`UnpairedSource` (CycleGAN): two domains of any sizes, batched as
  ``{"domain_a", "domain_b"}``, each shuffled on its own; an epoch is the larger domain.
* :func:`derive_pairs`: pairs from any :class:`ImageSource`: the target is the image, the source is
  computed from it in the tf.data pipeline (grey, Sobel or Canny edges, blur, downscale).

Every stream is a pure function of ``(seed, batch index)``, as :func:`source.shuffled_indices`
is, and so is the random jitter (Isola et al. 2017, section 6.2: resize 256 -> 286, random crop
back, random mirroring), drawn from a stateless seed folded with the batch index: a run resumed
at batch ``k`` sees the batches, crops and flips of the uninterrupted run. Images are float32 in
[-1, 1] in every batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from gantrain.data.source import ImageSource, Source, shuffled_indices, to_unit_range
from gantrain.errors import UserError

# pix2pix jitter: 256 -> 286, the same ratio at every size (nearest integer).
JITTER_SCALE = 286 / 256
# ITU-R BT.601 luma, the weights of Pillow's convert("L") and tf.image.rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)
# Canny's thresholds as fractions of each image's largest gradient magnitude.
CANNY_LOW, CANNY_HIGH = 0.1, 0.2
# how -> (what factor means, its default); None: the derivation takes no factor.
DERIVATIONS = {
    "grey": None,
    "sobel": None,
    "canny": ("Gaussian sigma in pixels before the gradient", 1.0),
    "blur": ("Gaussian sigma in pixels", 2.0),
    "downscale": ("downscaling factor", 4.0),
}
# Salts that keep the jitter draws of a pair and of each domain apart from each other.
_PAIR_SALT, _DOMAIN_A_SALT, _DOMAIN_B_SALT = 1, 2, 3


def _check_images(name: str, images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"{name} must be non-empty uint8 (N, H, W, C), got {images.dtype} {images.shape}")


def numbered(batches: tf.data.Dataset, start_batch: int) -> tf.data.Dataset:
    """``(batch index, batch)`` pairs: the index seeds the batch's stateless random draws."""
    return tf.data.Dataset.zip(tf.data.Dataset.range(start_batch, 2**62), batches)


def _finish(ds: tf.data.Dataset, make) -> tf.data.Dataset:
    # ``make`` branches on Python values only (jitter on or off, the derivation's name); its loops are
    # explicit tf.while_loops. AutoGraph would try to convert it anyway and warn on every run.
    return ds.map(tf.autograph.experimental.do_not_convert(make), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# Jitter
# ---------------------------------------------------------------------------------------------
def batch_seed(seed, batch_index, salt: int) -> tf.Tensor:
    """A stateless seed for one batch's random draws: a function of (seed, salt, batch index) only."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(salt, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(batch_index, tf.int64))


def random_jitter(images: list[tf.Tensor], seed: tf.Tensor) -> list[tf.Tensor]:
    """pix2pix random jitter, the same draw for every tensor of ``images`` (the sides of a pair).

    Each (B, H, W, C_i) tensor is resized (bilinear, as the pix2pix Torch code's ``image.scale``)
    to ``round(JITTER_SCALE * size)``, cropped back to (H, W) at a random offset per example and
    mirrored left-right with probability 1/2; the offsets and flips are shared across the list.
    """
    channels = [int(x.shape[-1]) for x in images]
    both = tf.concat(images, axis=-1)
    height, width = int(both.shape[1]), int(both.shape[2])
    big_h, big_w = round(height * JITTER_SCALE), round(width * JITTER_SCALE)
    both = tf.image.resize(both, (big_h, big_w), method="bilinear")
    n = tf.shape(both)[0]
    draws = tf.random.stateless_uniform([3, n], seed=seed)
    top = tf.minimum(tf.cast(draws[0] * (big_h - height + 1), tf.int32), big_h - height)
    left = tf.minimum(tf.cast(draws[1] * (big_w - width + 1), tf.int32), big_w - width)
    flip = draws[2] < 0.5
    rows = top[:, None] + tf.range(height)[None, :]
    cols = tf.where(flip[:, None], left[:, None] + tf.range(width - 1, -1, -1)[None, :], left[:, None] + tf.range(width)[None, :])
    both = tf.gather(both, rows, axis=1, batch_dims=1)
    both = tf.gather(both, cols, axis=2, batch_dims=1)
    return tf.split(both, channels, axis=-1)


# ---------------------------------------------------------------------------------------------
# Paired and unpaired sources
# ---------------------------------------------------------------------------------------------
@dataclass
class PairedSource(Source):
    """Aligned (input, target) images: ``inputs[i]`` translates to ``targets[i]``."""

    inputs: np.ndarray  # uint8 (N, H, W, C_in)
    targets: np.ndarray  # uint8 (N, H, W, C_out)
    description: str = ""
    location: str = ""
    jitter: bool = False
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        _check_images("inputs", self.inputs)
        _check_images("targets", self.targets)
        if self.inputs.shape[:3] != self.targets.shape[:3]:
            raise ValueError(f"inputs {self.inputs.shape} and targets {self.targets.shape} differ in count or size")

    @property
    def roles(self) -> tuple[str, ...]:
        return ("source", "target")

    @property
    def image_shape(self) -> tuple:
        """The targets' shape: what the generator makes."""
        return tuple(self.targets.shape[1:])

    @property
    def input_shape(self) -> tuple:
        """The inputs' shape: what the generator reads."""
        return tuple(self.inputs.shape[1:])

    def __len__(self) -> int:
        return len(self.targets)

    def examples(self, indices) -> dict:
        """The pairs at ``indices``, unjittered, as float32 [-1, 1] arrays (fixed grids, evaluation)."""
        idx = np.asarray(indices)
        return {"source": to_unit_range(self.inputs[idx]).numpy(), "target": to_unit_range(self.targets[idx]).numpy()}

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        inputs, targets, jittered = tf.constant(self.inputs), tf.constant(self.targets), self.jitter

        def make(batch_index, idx):
            pair = [to_unit_range(tf.gather(inputs, idx)), to_unit_range(tf.gather(targets, idx))]
            if jittered:
                pair = random_jitter(pair, batch_seed(seed, batch_index, _PAIR_SALT))
            return {"source": pair[0], "target": pair[1]}

        return _finish(numbered(shuffled_indices(len(self), batch_size, seed, start_batch), start_batch), make)


@dataclass
class UnpairedSource(Source):
    """Two image domains of any sizes (CycleGAN): nothing pairs ``domain_a[i]`` with ``domain_b[i]``."""

    domain_a: np.ndarray  # uint8 (N_a, H, W, C_a)
    domain_b: np.ndarray  # uint8 (N_b, H, W, C_b)
    description: str = ""
    location: str = ""
    jitter: bool = False
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        _check_images("domain_a", self.domain_a)
        _check_images("domain_b", self.domain_b)
        if self.domain_a.shape[1:3] != self.domain_b.shape[1:3]:
            raise ValueError(f"domain_a {self.domain_a.shape} and domain_b {self.domain_b.shape} differ in image size")

    @property
    def roles(self) -> tuple[str, ...]:
        return ("domain_a", "domain_b")

    @property
    def image_shape(self) -> tuple:
        """Domain B's shape (what the A -> B generator makes)."""
        return tuple(self.domain_b.shape[1:])

    @property
    def shape_a(self) -> tuple:
        return tuple(self.domain_a.shape[1:])

    def __len__(self) -> int:
        """One CycleGAN epoch: every image of the larger domain once."""
        return max(len(self.domain_a), len(self.domain_b))

    def examples(self, indices_a, indices_b=None) -> dict:
        """Images of each domain (``indices_b`` defaults to ``indices_a``), unjittered, float32 [-1, 1]."""
        idx_a = np.asarray(indices_a)
        idx_b = idx_a if indices_b is None else np.asarray(indices_b)
        return {"domain_a": to_unit_range(self.domain_a[idx_a]).numpy(), "domain_b": to_unit_range(self.domain_b[idx_b]).numpy()}

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Each domain has its own epochs (data seeds ``seed`` and ``seed + 1``) and its own jitter."""
        images_a, images_b, jittered = tf.constant(self.domain_a), tf.constant(self.domain_b), self.jitter
        order_a = shuffled_indices(len(self.domain_a), batch_size, seed, start_batch)
        order_b = shuffled_indices(len(self.domain_b), batch_size, seed + 1, start_batch)

        def make(batch_index, idx):
            a, b = to_unit_range(tf.gather(images_a, idx[0])), to_unit_range(tf.gather(images_b, idx[1]))
            if jittered:
                (a,) = random_jitter([a], batch_seed(seed, batch_index, _DOMAIN_A_SALT))
                (b,) = random_jitter([b], batch_seed(seed, batch_index, _DOMAIN_B_SALT))
            return {"domain_a": a, "domain_b": b}

        return _finish(numbered(tf.data.Dataset.zip(order_a, order_b), start_batch), make)


# ---------------------------------------------------------------------------------------------
# Derived pairs: the source computed from the image in the pipeline
# ---------------------------------------------------------------------------------------------
def _reflect_indices(n: int, radius: int) -> np.ndarray:
    """Indices of a row of ``n`` padded by ``radius`` each side, mirrored at the edges (d c b a | a b c d),
    as scipy.ndimage's default mode 'reflect'; any radius, also one larger than ``n``."""
    i = np.mod(np.arange(-radius, n + radius), 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def correlate_separable(images: tf.Tensor, along_h, along_w) -> tf.Tensor:
    """Correlate each channel of (B, H, W, C) with ``along_h`` down the rows, then ``along_w`` across the
    columns (odd lengths), mirroring the borders as scipy.ndimage.correlate1d(mode='reflect')."""
    channels = int(images.shape[-1])
    for axis, taps in ((1, along_h), (2, along_w)):
        taps = np.asarray(taps, np.float32)
        radius = len(taps) // 2
        images = tf.gather(images, _reflect_indices(int(images.shape[axis]), radius), axis=axis)
        shape = (len(taps), 1) if axis == 1 else (1, len(taps))
        kernel = np.tile(taps.reshape(*shape, 1, 1), (1, 1, channels, 1))
        images = tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding="VALID")
    return images


def gaussian_taps(sigma: float) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's 1-D kernel (truncated at 4 sigma)."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * x**2 / sigma**2)
    return taps / taps.sum()


def grey(images: tf.Tensor) -> tf.Tensor:
    """BT.601 luma of (B, H, W, 3) images (weights sum to 1, so it holds on [-1, 1] as on [0, 255]); grey images as they are."""
    if int(images.shape[-1]) == 1:
        return images
    return tf.reduce_sum(images * tf.constant(LUMA, images.dtype), axis=-1, keepdims=True)


def sobel_gradients(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(d/drow, d/dcol) by the 3x3 Sobel operator (scipy.ndimage.sobel(axis=0) and (axis=1))."""
    return correlate_separable(images, [-1, 0, 1], [1, 2, 1]), correlate_separable(images, [1, 2, 1], [-1, 0, 1])


def _per_image_max(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)


def sobel(images: tf.Tensor) -> tf.Tensor:
    """Sobel gradient magnitude of the grey image, divided by its largest value per image, in [-1, 1] (1 channel)."""
    d_row, d_col = sobel_gradients(grey(images))
    magnitude = tf.sqrt(d_row**2 + d_col**2)
    return 2.0 * magnitude / tf.maximum(_per_image_max(magnitude), 1e-12) - 1.0


def canny(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Canny edges of the grey image: 1 on an edge, -1 elsewhere (1 channel).

    Gaussian blur (``sigma``), Sobel gradients, non-maximum suppression across the gradient
    direction (quantised to 0/45/90/135 degrees; of two equal pixels across an edge only the one
    behind along the gradient is kept, so edges stay one pixel thick), then hysteresis: pixels above ``CANNY_HIGH`` x the image's largest
    magnitude start edges, which grow through 8-connected pixels above ``CANNY_LOW`` x it (iterated
    dilation until nothing changes).
    """
    blurred = correlate_separable((grey(images) + 1.0) / 2.0, gaussian_taps(sigma), gaussian_taps(sigma))
    d_row, d_col = sobel_gradients(blurred)
    magnitude = tf.sqrt(d_row**2 + d_col**2)
    height, width = int(images.shape[1]), int(images.shape[2])
    padded = tf.pad(magnitude, [[0, 0], [1, 1], [1, 1], [0, 0]])

    def neighbour(dr, dc):
        return padded[:, 1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width, :]

    # Gradient direction folded into [0, 180) degrees, in four sectors of 45 centred on 0, 45, 90, 135.
    angle = tf.math.floormod(tf.math.atan2(d_row, d_col) * (180.0 / np.pi), 180.0)
    sector = tf.math.floormod(tf.cast(tf.floor((angle + 22.5) / 45.0), tf.int32), 4)
    top = _per_image_max(magnitude)
    # Values this close count as equal, so that rounding (another device, another order of sums)
    # cannot move an edge by a pixel.
    tie = 1e-5 * top
    peak = tf.zeros_like(magnitude, tf.bool)
    for s, (dr, dc) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        # above the neighbour behind, at least the one ahead: on a tie only the pixel behind is kept
        keep = (magnitude > neighbour(-dr, -dc) + tie) & (magnitude >= neighbour(dr, dc) - tie)
        peak |= (sector == s) & keep
    weak = peak & (magnitude >= CANNY_LOW * top) & (magnitude > 0)
    strong = weak & (magnitude >= CANNY_HIGH * top)

    def grow(edges, _changed):
        grown = weak & (tf.nn.max_pool2d(tf.cast(edges, tf.float32), 3, 1, "SAME") > 0)
        return grown, tf.reduce_any(grown != edges)

    edges, _ = tf.while_loop(lambda _e, changed: changed, grow, (strong, tf.constant(True)), maximum_iterations=height * width)
    return tf.where(edges, 1.0, -1.0)


def gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Each channel blurred with a Gaussian of ``sigma`` pixels (scipy.ndimage.gaussian_filter)."""
    return correlate_separable(images, gaussian_taps(sigma), gaussian_taps(sigma))


def downscale(images: tf.Tensor, factor: float) -> tf.Tensor:
    """The super-resolution baseline input: area-downscaled by ``factor``, bicubic back to the size."""
    height, width = int(images.shape[1]), int(images.shape[2])
    small = tf.image.resize(images, (max(1, round(height / factor)), max(1, round(width / factor))), method="area")
    return tf.clip_by_value(tf.image.resize(small, (height, width), method="bicubic"), -1.0, 1.0)


def derive(images: tf.Tensor, how: str, factor: float | None = None) -> tf.Tensor:
    """The source image derived from float [-1, 1] ``images`` (B, H, W, C); see :data:`DERIVATIONS`."""
    factor = check_derivation(how, factor)
    if how == "grey":
        return grey(images)
    if how == "sobel":
        return sobel(images)
    if how == "canny":
        return canny(images, factor)
    if how == "blur":
        return gaussian_blur(images, factor)
    return downscale(images, factor)


def check_derivation(how: str, factor: float | None) -> float | None:
    """``factor``, or the derivation's default for it; a UserError for an unknown ``how`` or a bad factor."""
    if how not in DERIVATIONS:
        raise UserError(f"derived pairs: unknown derivation {how!r}; valid: {', '.join(DERIVATIONS)}")
    spec = DERIVATIONS[how]
    if spec is None:
        return None
    factor = spec[1] if factor is None else float(factor)
    low_ok = factor > 1 if how == "downscale" else factor > 0
    if not (low_ok and np.isfinite(factor)):
        bound = "> 1" if how == "downscale" else "> 0"
        raise UserError(f"derived pairs: {how} factor ({spec[0]}) must be {bound}, got {factor}")
    return factor


def derived_channels(how: str, channels: int) -> int:
    """Channels of the derived source: one for grey and edges, the image's for blur and downscale."""
    return channels if how in ("blur", "downscale") else 1


@dataclass
class DerivedPairs(Source):
    """(derived source, image) pairs over an image source; the source is computed in the pipeline."""

    base: ImageSource
    how: str
    factor: float | None = None
    jitter: bool = False
    description: str = ""
    location: str = ""
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        self.factor = check_derivation(self.how, self.factor)
        if self.how == "downscale" and min(self.base.image_shape[:2]) < self.factor:
            raise UserError(f"derived pairs: cannot downscale {self.base.image_shape[0]}x{self.base.image_shape[1]} images by {self.factor}")
        self.description = self.description or f"{self.base.description}, {self.how} -> image"
        self.location = self.location or self.base.location

    @property
    def roles(self) -> tuple[str, ...]:
        return ("source", "target")

    @property
    def image_shape(self) -> tuple:
        return self.base.image_shape

    @property
    def input_shape(self) -> tuple:
        height, width, channels = self.base.image_shape
        return (height, width, derived_channels(self.how, channels))

    def __len__(self) -> int:
        return len(self.base)

    def examples(self, indices) -> dict:
        """The pairs at ``indices``, unjittered, as float32 [-1, 1] arrays (fixed grids, evaluation)."""
        target = to_unit_range(self.base.images[np.asarray(indices)])
        return {"source": derive(target, self.how, self.factor).numpy(), "target": target.numpy()}

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Jitter (when on) moves the image first; the source is derived from the moved image, so
        both sides line up by construction and edge maps stay crisp."""
        images, how, factor, jittered = tf.constant(self.base.images), self.how, self.factor, self.jitter

        def make(batch_index, idx):
            target = to_unit_range(tf.gather(images, idx))
            if jittered:
                (target,) = random_jitter([target], batch_seed(seed, batch_index, _PAIR_SALT))
            return {"source": derive(target, how, factor), "target": target}

        return _finish(numbered(shuffled_indices(len(self), batch_size, seed, start_batch), start_batch), make)


def derive_pairs(source: ImageSource, how: str, factor: float | None = None, jitter: bool = False) -> DerivedPairs:
    """Pairs (``how`` of the image -> the image) over ``source``'s images; see :data:`DERIVATIONS`."""
    return DerivedPairs(source, how, factor, jitter)
