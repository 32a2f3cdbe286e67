"""Data sources and the resumable tf.data pipelines over them.

A loader returns a :class:`Source`: what ``fit`` needs from any dataset (its data roles, size,
shapes, classes) and an endless stream of batches keyed by role. The stream's order is a pure
function of ``(seed, position)``, so resuming at batch ``k`` needs no iterator state in the
checkpoint, only ``k``.

:class:`ImageSource` is the source of the image datasets: uint8 images (N, H, W, C) and int32
labels (N,) (-1 where there is no label), batched as ``{"image": float32 in [-1, 1], "label": int32}``;
epoch ``e`` is the permutation drawn from ``stateless_uniform(seed=[seed, e])``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf


class Source(abc.ABC):
    """What the trainer and the loop read from a dataset, whatever its roles.

    ``roles``: the keys of every batch (``image``, ``label``, ``domain_a``, ...); ``image_shape``:
    the shape of the images the family's generators make; ``description``: names the data in
    messages; ``location``: where it was read from (caches key on it).
    """

    class_names: list
    description: str
    location: str

    @property
    @abc.abstractmethod
    def roles(self) -> tuple[str, ...]:
        """The data roles every batch holds."""

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple:
        """(H, W, C) of the images the networks are built for."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Examples per epoch (what ``train.epochs`` counts)."""

    @abc.abstractmethod
    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Endless batches (dicts keyed by role) from batch number ``start_batch`` of the stream."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_labeled(self) -> int:
        return 0


@dataclass
class ImageSource(Source):
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int32 (N,), -1 = unlabeled
    class_names: list[str] = field(default_factory=list)
    description: str = ""
    # Where the images were read from (resolved folder or archive path): the same data config can
    # name other files through an environment variable, so caches key on this, not on the config.
    location: str = ""

    @property
    def roles(self) -> tuple[str, ...]:
        """The data roles this source provides per example: an image, and a class label when it has classes."""
        return ("image", "label") if self.num_classes >= 2 else ("image",)

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    @property
    def num_labeled(self) -> int:
        return int((self.labels >= 0).sum())

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def pipeline(self, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
        """Endless shuffled batches, starting at batch number ``start_batch`` of the stream.

        Batches run across epoch boundaries (no partial or dropped batches), so every batch is full
        and the stream position is simply ``batch index * batch_size`` examples.
        """
        n = len(self)
        images = tf.constant(self.images)
        labels = tf.constant(self.labels.astype(np.int32))

        def gather(idx):
            return {"image": to_unit_range(tf.gather(images, idx)), "label": tf.gather(labels, idx)}

        return shuffled_indices(n, batch_size, seed, start_batch).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1), matching a tanh generator."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], clipping anything outside."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_pipeline(source: Source, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
    """The source's endless batches from batch number ``start_batch`` (see :meth:`Source.pipeline`)."""
    return source.pipeline(batch_size, seed, start_batch)


def shuffled_indices(n: int, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
    """Batches of example indices over endless epochs, from batch ``start_batch``: a pure function of the arguments.

    Epoch ``e`` is the permutation ``argsort(stateless_uniform([n], seed=[seed, e]))``; batches run
    across epoch boundaries, so none is partial.
    """
    start = start_batch * batch_size
    first_epoch, offset = divmod(start, n)

    def epoch_order(epoch):
        keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

    indices = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch_order).skip(offset)
    return indices.batch(batch_size, drop_remainder=True)
