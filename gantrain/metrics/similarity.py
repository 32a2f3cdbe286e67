"""Per-image similarity of a translation to its reference: L1, PSNR and SSIM, as pure functions.

Images are float arrays in [-1, 1] (what the networks produce), (N, H, W, C); every measure is taken
on the [0, 1] scale (x / 2 + 0.5), so L1 is a fraction of the full range, PSNR uses a peak of 1
(``10 log10(1 / MSE)``), and SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, as ``tf.image.ssim`` and scikit-image's ``structural_similarity(...,
gaussian_weights=True, use_sample_covariance=False)``. Each returns one value per image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _unit(x) -> np.ndarray:
    return np.clip(np.asarray(x, np.float64) / 2.0 + 0.5, 0.0, 1.0)


def l1(x, y) -> np.ndarray:
    """Mean absolute difference per image, on the [0, 1] scale."""
    return np.abs(_unit(x) - _unit(y)).mean(axis=(1, 2, 3))


def psnr(x, y, cap: float = 100.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image in dB (peak 1); identical images get ``cap``."""
    mse = ((_unit(x) - _unit(y)) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return np.minimum(cap, 10.0 * np.log10(1.0 / mse))


def ssim(x, y) -> np.ndarray:
    """Structural similarity per image (mean over the window positions and channels)."""
    side = min(np.shape(x)[1:3])
    window = min(11, side if side % 2 else side - 1)  # the window must fit the image
    a, b = tf.constant(_unit(x), tf.float32), tf.constant(_unit(y), tf.float32)
    return tf.image.ssim(a, b, max_val=1.0, filter_size=window, filter_sigma=1.5).numpy().astype(np.float64)
