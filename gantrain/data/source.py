"""In-memory image sources and the resumable tf.data pipeline over them.

Every loader returns an :class:`ImageSource`: uint8 images (N, H, W, C) and int32 labels (N,)
(-1 where there is no label). :func:`make_pipeline` turns one into an endless stream of batches
keyed by data role, ``{"image": float32 in [-1, 1], "label": int32}``, whose order is a pure function of
``(seed, position)``: epoch ``e`` is the permutation drawn from ``stateless_uniform(seed=[seed, e])``.
Resuming at batch ``k`` therefore needs no iterator state in the checkpoint, only ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf


@dataclass
class ImageSource:
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
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1), matching a tanh generator."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], clipping anything outside."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_pipeline(source: ImageSource, batch_size: int, seed: int, start_batch: int = 0) -> tf.data.Dataset:
    """Endless shuffled batches, starting at batch number ``start_batch`` of the stream.

    Batches run across epoch boundaries (no partial or dropped batches), so every batch is full
    and the stream position is simply ``batch index * batch_size`` examples.
    """
    n = len(source)
    images = tf.constant(source.images)
    labels = tf.constant(source.labels.astype(np.int32))
    start = start_batch * batch_size
    first_epoch, offset = divmod(start, n)

    def epoch_order(epoch):
        keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

    indices = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch_order).skip(offset)

    def gather(idx):
        return {"image": to_unit_range(tf.gather(images, idx)), "label": tf.gather(labels, idx)}

    return indices.batch(batch_size, drop_remainder=True).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
