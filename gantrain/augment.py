"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images before D.

With little data, D memorises the real set; augmenting *both* real and generated images (in D's
and G's steps alike) regularises D without leaking augmentations into G's outputs, because every
operation here is differentiable in the images. Randomness comes from explicit stateless seeds, so
a resumed run augments exactly as an uninterrupted one: each policy splits its seed into one seed
per random draw, in the order the draws are made below.

The operations are those of the authors' official DiffAugment_tf.py, for NHWC images in [-1, 1]:

- ``color``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_c) * 2u + mean_c`` (mean over
  channels), contrast ``(x - mean) * (u + 0.5) + mean`` (mean over the image), one ``u ~ U[0, 1)``
  per image and op. Nothing is clipped: jittered images may leave [-1, 1], as in the official code,
  so D sees the paper's distribution and G keeps a gradient through every pixel.
- ``translation``: shift by up to ``int(size * 0.125 + 0.5)`` pixels per axis, drawn uniformly from
  ``[-shift, shift]``; output pixel ``i`` reads input pixel ``i + t``, and pixels shifted in from
  outside are 0 (mid-grey).
- ``cutout``: zero a ``int(size * 0.5 + 0.5)``-sided rectangle (14 x 14 on 28 x 28) whose rows are
  ``offset - size // 2 + [0, size)`` for ``offset ~ U_int[0, H + 1 - size % 2)``, clipped to the image.
"""

from __future__ import annotations

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def _per_image_uniform(x, seed):
    # Drawn in float32 whatever x's dtype, so a float16 batch gets the same draws as a float32 one.
    return tf.cast(tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed=seed), x.dtype)


def _official_size(n, ratio: float):
    # int(n * ratio + 0.5): the official rounding (28 * 0.5 -> 14, 27 * 0.5 -> 14, 28 * 0.125 -> 4).
    return tf.cast(tf.cast(n, tf.float32) * ratio + 0.5, tf.int32)


def color(x, seed):
    """Random brightness, saturation and contrast, one draw each per image (official DiffAugment).

    Args:
        x: images, (B, H, W, C) floats, nominally in [-1, 1].
        seed: stateless seed of shape (2,).

    Returns:
        The jittered images, same shape; affine in ``x`` for fixed draws and not clipped.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    x = x + (_per_image_uniform(x, seeds[0]) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_per_image_uniform(x, seeds[1]) * 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_per_image_uniform(x, seeds[2]) + 0.5) + mean


def _shift_axis(x, shift, axis: int):
    """``out[..., i, ...] = x[..., i + shift, ...]`` along ``axis`` (1 or 2), zero where that is outside.

    As the official code: pad one zero on each side, gather from ``clip(i + shift + 1, 0, n + 1)``.
    """
    n = tf.shape(x)[axis]
    padding = [[0, 0]] * 4
    padding[axis] = [1, 1]
    index = tf.clip_by_value(tf.range(n)[None, :] + shift[:, None] + 1, 0, n + 1)  # (B, n)
    return tf.gather(tf.pad(x, padding), index, axis=axis, batch_dims=1)


def translation(x, seed, ratio: float = 0.125):
    """Shift each image by whole pixels, up to ``int(size * ratio + 0.5)`` per axis, with zero fill.

    Args:
        x: images, (B, H, W, C).
        seed: stateless seed of shape (2,).
        ratio: the largest shift as a fraction of the side.

    Returns:
        The shifted images, same shape.
    """
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    sh, sw = _official_size(h, ratio), _official_size(w, ratio)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    dy = tf.random.stateless_uniform([b, 1, 1], seed=seeds[0], minval=-sh, maxval=sh + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([b, 1, 1], seed=seeds[1], minval=-sw, maxval=sw + 1, dtype=tf.int32)
    return _shift_axis(_shift_axis(x, tf.reshape(dy, [b]), axis=1), tf.reshape(dx, [b]), axis=2)


def cutout(x, seed, ratio: float = 0.5):
    """Zero one rectangle of ``int(size * ratio + 0.5)`` pixels per side in each image.

    Args:
        x: images, (B, H, W, C).
        seed: stateless seed of shape (2,).
        ratio: the rectangle's side as a fraction of the image's.

    Returns:
        The images with the rectangle set to 0, same shape.
    """
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    ch, cw = _official_size(h, ratio), _official_size(w, ratio)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    cy = tf.random.stateless_uniform([b, 1, 1], seed=seeds[0], minval=0, maxval=h + (1 - ch % 2), dtype=tf.int32)
    cx = tf.random.stateless_uniform([b, 1, 1], seed=seeds[1], minval=0, maxval=w + (1 - cw % 2), dtype=tf.int32)
    # The official code scatters zeros at the clipped positions offset - size // 2 + [0, size). The
    # offsets' range makes that run always overlap the image, so clipping it equals intersecting it
    # with the image: a half-open interval test per axis gives the same mask without a scatter.
    top, left = cy - ch // 2, cx - cw // 2
    ys, xs = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (1 - tf.cast(inside, x.dtype))[..., None]


def flip(x, seed):
    """Mirror each image left-right with probability 1/2 (not a DiffAugment policy: the domain
    classifiers train with it, on data where a mirror image is as likely as the image)."""
    mirrored = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(mirrored, tf.reverse(x, axis=[2]), x)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x, policies, seed) -> tf.Tensor:
    """Apply ``policies`` in order; ``seed`` is a stateless seed of shape (2,), split once per policy."""
    if not policies:
        return x
    seeds = tf.random.experimental.stateless_split(seed, len(policies))
    for i, name in enumerate(policies):
        x = _OPS[name](x, seeds[i])
    return x
