"""SR-literature PSNR / SSIM (8-bit Y of BT.601, border removed), against hand-computed values and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest

from gantrain.metrics.similarity import sr_psnr, sr_ssim, y_channel

# MATLAB rgb2ycbcr's luma row, written out again here rather than imported.
Y_ROW = np.array([65.481, 128.553, 24.966])


def _signed(u8) -> np.ndarray:
    """uint8 pixels -> the [-1, 1] floats a network would output for them."""
    return np.asarray(u8, np.float64) / 127.5 - 1.0


def _u8(shape, seed=0, low=0, high=256):
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


def test_y_channel_against_the_formula_by_hand():
    pixels = np.array([[[[255, 0, 0], [255, 255, 255], [0, 0, 0], [200, 100, 50]]]], np.uint8)
    by_hand = [16 + 65.481, 235.0, 16.0, 16 + (65.481 * 200 + 128.553 * 100 + 24.966 * 50) / 255]
    np.testing.assert_allclose(y_channel(_signed(pixels))[0, 0, :, 0], by_hand, rtol=1e-12)
    assert y_channel(_signed(pixels)).shape == (1, 1, 4, 1)
    # Grey images: the grey value itself on 0..255, not squeezed into 16..235.
    np.testing.assert_allclose(y_channel(_signed([[[[0], [37], [255]]]]))[0, 0, :, 0], [0, 37, 255], rtol=0, atol=1e-12)
    # eight_bit rounds each pixel to a grey level before the conversion: 100.4 -> 100, 100.6 -> 101.
    between = (np.array([100.4, 100.6]) / 255 * 2 - 1).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(y_channel(between, eight_bit=True)[0, 0, :, 0], [100, 101], atol=1e-12)
    np.testing.assert_allclose(y_channel(between)[0, 0, :, 0], [100.4, 100.6], atol=1e-12)


def test_identical_images_get_the_cap_and_ssim_one():
    for channels in (3, 1):
        hr = _signed(_u8((2, 24, 20, channels)))
        assert sr_psnr(hr, hr, border=2).tolist() == [100.0, 100.0]
        np.testing.assert_allclose(sr_ssim(hr, hr, border=2), [1.0, 1.0], rtol=1e-12)


def test_scores_are_taken_on_images_rounded_to_8_bits():
    hr = _signed(_u8((1, 16, 16, 1), seed=7, low=1, high=255))
    assert sr_psnr(hr + 0.3 / 127.5, hr, 2).tolist() == [100.0]  # 0.3 grey levels: the same PNG
    np.testing.assert_allclose(sr_psnr(hr + 0.6 / 127.5, hr, 2), 20 * np.log10(255 / 1), rtol=1e-12)


def test_a_constant_error_inside_the_border_gives_psnr_20_log10_of_255_over_d():
    border = 3
    hr_u8 = _u8((2, 20, 18, 1), seed=1, high=250)
    sr_u8 = hr_u8.copy()
    d = 5  # grey levels everywhere inside the border; the border itself is anything
    sr_u8[:, border:-border, border:-border] += d
    sr_u8[:, :border] = 0
    sr_u8[:, :, -border:] = 255
    np.testing.assert_allclose(sr_psnr(_signed(sr_u8), _signed(hr_u8), border), 20 * np.log10(255 / d), rtol=1e-12)
    # RGB: one grey level more in every channel moves Y by (65.481 + 128.553 + 24.966) / 255 = 219 / 255.
    hr_rgb = _u8((1, 16, 16, 3), seed=2, high=255)
    np.testing.assert_allclose(sr_psnr(_signed(hr_rgb + 1), _signed(hr_rgb), 4), 20 * np.log10(255 / (219 / 255)), rtol=1e-12)


def test_changes_only_in_the_border_do_not_change_the_scores():
    border = 4
    hr = _u8((2, 32, 28, 3), seed=3)
    sr = np.clip(hr + _u8(hr.shape, seed=4, high=21).astype(int) - 10, 0, 255).astype(np.uint8)
    other = sr.copy()
    other[:, :border] = 0
    other[:, -border:] = 255
    other[:, :, :border] = 17
    other[:, :, -border:] = 200
    for measure in (sr_psnr, sr_ssim):
        base = measure(_signed(sr), _signed(hr), border)
        np.testing.assert_array_equal(measure(_signed(other), _signed(hr), border), base)
        # ... while the first row inside the border does count (the crop is not too wide).
        inside = sr.copy()
        inside[:, border] = 0
        assert np.all(measure(_signed(inside), _signed(hr), border) < base)


def test_psnr_and_ssim_against_independent_computations_on_the_y_channel():
    from skimage.metrics import structural_similarity

    border = 3
    hr = _u8((3, 30, 26, 3), seed=5)
    sr = np.clip(hr + np.random.default_rng(6).normal(0, 12, hr.shape), 0, 255).round().astype(np.uint8)
    crop = (slice(None), slice(border, -border), slice(border, -border))
    y_sr, y_hr = (16 + (x.astype(np.float64) @ Y_ROW) / 255 for x in (sr[crop], hr[crop]))
    mse = ((y_sr - y_hr) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(sr_psnr(_signed(sr), _signed(hr), border), 10 * np.log10(255**2 / mse), rtol=1e-12)
    sk = [structural_similarity(y_sr[i], y_hr[i], data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
          for i in range(len(hr))]
    ours = sr_ssim(_signed(sr), _signed(hr), border)
    assert 0.3 < min(sk) and max(sk) < 0.99  # a case far from both ends
    np.testing.assert_allclose(ours, sk, rtol=1e-10)


def test_images_that_cannot_be_scored_raise():
    a = _signed(_u8((1, 20, 20, 3)))
    with pytest.raises(ValueError, match="same shape"):
        sr_psnr(a, a[:, :18], 2)
    with pytest.raises(ValueError, match="border=10"):
        sr_psnr(a, a, 10)
    with pytest.raises(ValueError, match="11x11"):
        sr_ssim(a, a, 5)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        y_channel(a[..., :2])
