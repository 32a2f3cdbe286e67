"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images before D.

With little data, D memorises the real set; augmenting *both* real and generated images (in D's
and G's steps alike) regularises D without leaking augmentations into G's outputs, because every
operation here is differentiable in the images. Randomness comes from explicit stateless seeds, so
a resumed run augments exactly as an uninterrupted one.

Policies: ``color`` (brightness, saturation, contrast), ``translation`` (shift by up to 1/8 of the
size, zero fill), ``cutout`` (a zeroed square of half the size). Images are in [-1, 1] and stay
there: colour jitter is clipped (the official code does not clip; clipping keeps D's inputs in the
range real images have), and zero fill is mid-grey.
"""

from __future__ import annotations

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def _uniform(seed, shape, lo=0.0, hi=1.0):
    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi)


def color(x, seed):
    b = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    x = x + _uniform(seeds[0], [b, 1, 1, 1], -0.5, 0.5)  # brightness, as the official code on [-1, 1] images
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * _uniform(seeds[1], [b, 1, 1, 1], 0.0, 2.0) + mean  # saturation
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * _uniform(seeds[2], [b, 1, 1, 1], 0.5, 1.5) + mean  # contrast
    return tf.clip_by_value(x, -1.0, 1.0)


def translation(x, seed, ratio: float = 0.125):
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    sh, sw = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32), tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    dy = tf.random.stateless_uniform([b, 1, 1], seed=seeds[0], minval=-sh, maxval=sh + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([b, 1, 1], seed=seeds[1], minval=-sw, maxval=sw + 1, dtype=tf.int32)
    # Gather each output pixel from (y - dy, x - dx); out-of-range sources become zero (mid-grey is 0 in [-1, 1]).
    ys = tf.range(h)[None, :, None] - dy
    xs = tf.range(w)[None, None, :] - dx
    valid = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = tf.clip_by_value(ys, 0, h - 1), tf.clip_by_value(xs, 0, w - 1)
    batch_idx = tf.broadcast_to(tf.range(b)[:, None, None], tf.shape(valid))
    idx = tf.stack([batch_idx, tf.broadcast_to(ys, tf.shape(valid)), tf.broadcast_to(xs, tf.shape(valid))], axis=-1)
    return tf.gather_nd(x, idx) * tf.cast(valid, x.dtype)[..., None]


def cutout(x, seed, ratio: float = 0.5):
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ch, cw = tf.cast(tf.cast(h, tf.float32) * ratio + 0.5, tf.int32), tf.cast(tf.cast(w, tf.float32) * ratio + 0.5, tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    cy = tf.random.stateless_uniform([b, 1, 1], seed=seeds[0], minval=0, maxval=h + (1 - ch % 2), dtype=tf.int32)
    cx = tf.random.stateless_uniform([b, 1, 1], seed=seeds[1], minval=0, maxval=w + (1 - cw % 2), dtype=tf.int32)
    ys, xs = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
    inside = (tf.abs(ys - cy) < ch // 2 + ch % 2) & (tf.abs(xs - cx) < cw // 2 + cw % 2)
    return x * (1.0 - tf.cast(inside, x.dtype))[..., None]


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x, policies, seed) -> tf.Tensor:
    """Apply ``policies`` in order; ``seed`` is a stateless seed of shape (2,)."""
    if not policies:
        return x
    seeds = tf.random.experimental.stateless_split(seed, len(policies))
    for i, name in enumerate(policies):
        x = _OPS[name](x, seeds[i])
    return x
