"""Per-image similarity of a translation to its reference: L1, PSNR and SSIM, as pure functions.

Images are float arrays in [-1, 1] (what the networks produce), (N, H, W, C); every measure is taken
on the [0, 1] scale (x / 2 + 0.5), so L1 is a fraction of the full range, PSNR uses a peak of 1
(``10 log10(1 / MSE)``), and SSIM is Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, as ``tf.image.ssim`` and scikit-image's ``structural_similarity(...,
gaussian_weights=True, use_sample_covariance=False)``. Each returns one value per image.

:func:`sr_psnr` and :func:`sr_ssim` are the super-resolution literature's protocol instead: on the
luminance Y (:func:`y_channel`) of 8-bit-rounded images, 0..255 scale, with a border removed.
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


# ---------------------------------------------------------------------------------------------
# Super-resolution measures, as the SR literature reports them (SRGAN, EDSR, ...): PSNR and SSIM on
# the luminance Y of 8-bit images, peak 255, with a border of ``scale`` pixels removed on every side
# (the border cannot be reconstructed from the LR image and most methods get it wrong in the same
# way). Y is ITU-R BT.601 as MATLAB's rgb2ycbcr: Y = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B
# in [0, 1], so Y lies in [16, 235]. The images are rounded to 8 bits first (what a saved PNG holds);
# Y itself is kept as a float, as BasicSR's ``to_y_channel`` does (MATLAB on uint8 input would round
# Y too: at most half a grey level, a few hundredths of a dB).

# BT.601 "studio swing" luma on 0..255 inputs: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
BT601_Y = (65.481, 128.553, 24.966)
SR_PEAK = 255.0
# Wang et al.'s ssim_index.m as SR papers run it: 11x11 Gaussian, sigma 1.5, K1, K2, 'valid' window.
SR_SSIM_WINDOW, SR_SSIM_SIGMA, SR_SSIM_K1, SR_SSIM_K2 = 11, 1.5, 0.01, 0.03


def y_channel(images, eight_bit: bool = False) -> np.ndarray:
    """Luminance of images in [-1, 1], on the 0..255 scale.

    Args:
        images: RGB ``(N, H, W, 3)`` or grey ``(N, H, W, 1)``, in [-1, 1] (clipped).
        eight_bit: round the 0..255 pixel values to integers before the conversion, as saving the
            image as an 8-bit PNG would.

    Returns:
        float64 ``(N, H, W, 1)``: for RGB the BT.601 Y in [16, 235]; for grey the grey value itself in
        [0, 255]. Grey images are scored as they are: the SR literature converts only colour images to
        YCbCr, and squeezing grey into 16..235 would only scale every error by 219 / 255.
    """
    pixels = _unit(images) * 255.0
    if eight_bit:
        pixels = np.round(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, 3) or (N, H, W, 1), got shape {pixels.shape}")
    if pixels.shape[-1] == 1:
        return pixels
    return 16.0 + (pixels @ np.asarray(BT601_Y) / 255.0)[..., None]


def _sr_luma_pair(sr, hr, border: int) -> tuple[np.ndarray, np.ndarray]:
    """8-bit Y of both image batches with ``border`` pixels removed on every side."""
    if np.shape(sr) != np.shape(hr):
        raise ValueError(f"sr and hr must have the same shape, got {np.shape(sr)} and {np.shape(hr)}")
    height, width = np.shape(hr)[1:3]
    if border < 0 or 2 * border >= min(height, width):
        raise ValueError(f"border={border} leaves nothing of {height}x{width} images")
    crop = (slice(None), slice(border, height - border), slice(border, width - border))
    return y_channel(sr, eight_bit=True)[crop], y_channel(hr, eight_bit=True)[crop]


def sr_psnr(sr, hr, border: int, cap: float = 100.0) -> np.ndarray:
    """PSNR per image in dB, as SR papers report it (8-bit Y, peak 255, ``border`` pixels removed).

    Args:
        sr, hr: super-resolved and reference images, same shape (N, H, W, 3 or 1), in [-1, 1].
        border: pixels removed on every side; the SR literature uses the scale factor.
        cap: upper bound, given to identical images (infinite PSNR) as :func:`psnr` does, so that
            means over a test set stay finite.

    Returns:
        float64 (N,).
    """
    a, b = _sr_luma_pair(sr, hr, border)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return np.minimum(cap, 10.0 * np.log10(SR_PEAK**2 / mse))


def _gaussian_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (N, H, W, 1) over H and W (as MATLAB's filter2(w, x, 'valid'))."""
    n = len(taps)
    rows = sum(t * x[:, k:x.shape[1] - n + 1 + k] for k, t in enumerate(taps))
    return sum(t * rows[:, :, k:rows.shape[2] - n + 1 + k] for k, t in enumerate(taps))


def sr_ssim(sr, hr, border: int) -> np.ndarray:
    """SSIM per image, as SR papers report it (Wang et al. 2004 on 8-bit Y, ``border`` pixels removed).

    The mean of the SSIM map over the window positions that fit inside the cropped image, with an
    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03 and data range 255 — MATLAB's
    ``ssim_index.m``, and scikit-image's ``structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)``. Computed in float64.

    Args:
        sr, hr: super-resolved and reference images, same shape (N, H, W, 3 or 1), in [-1, 1].
        border: pixels removed on every side (the scale factor); at least 11 x 11 must remain.

    Returns:
        float64 (N,).
    """
    a, b = _sr_luma_pair(sr, hr, border)
    if min(a.shape[1:3]) < SR_SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SR_SSIM_WINDOW}x{SR_SSIM_WINDOW} pixels after removing the border, "
                         f"got {a.shape[1]}x{a.shape[2]}")
    r = SR_SSIM_WINDOW // 2
    taps = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * SR_SSIM_SIGMA**2))
    taps /= taps.sum()
    mu_a, mu_b = _gaussian_valid(a, taps), _gaussian_valid(b, taps)
    var_a = _gaussian_valid(a * a, taps) - mu_a**2
    var_b = _gaussian_valid(b * b, taps) - mu_b**2
    cov = _gaussian_valid(a * b, taps) - mu_a * mu_b
    c1, c2 = (SR_SSIM_K1 * SR_PEAK) ** 2, (SR_SSIM_K2 * SR_PEAK) ** 2
    ssim_map = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(axis=(1, 2, 3))
