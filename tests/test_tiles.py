"""Tiled inference (gantrain.tiles): exact where it can be, a documented feathered window, bounded grid."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gantrain.tiles import tile_boxes, tile_count, tile_starts, tiled


def _image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (h, w, c)).astype(np.float32)


def _conv_net(convs: int, kernel: int, scale: int, channels=3, width=4, seed=0):
    """Random-weight fully convolutional net: ``convs`` zero-padded convs, then sub-pixel upsampling."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((None, None, channels))
    for _ in range(convs):
        x = keras.layers.Conv2D(width, kernel, padding="same", activation="tanh")(x)
    x = keras.layers.Conv2D(2 * scale * scale, 1, bias_initializer="random_normal")(x)
    if scale > 1:
        x = keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, scale))(x)
    net = keras.Model(inputs, x)
    run = tf.function(lambda t: net(t, training=False))
    return lambda batch: run(tf.constant(batch)).numpy()


def _counting(fn):
    calls = []

    def counted(batch):
        calls.append(batch.shape)
        return fn(batch)

    return counted, calls


def test_an_image_that_fits_in_one_tile_is_exactly_the_untiled_result():
    net = _conv_net(convs=2, kernel=3, scale=2)
    image = _image(20, 13)
    counted, calls = _counting(net)
    out = tiled(counted, image, scale=2, tile=32, overlap=8)
    assert out.shape == (40, 26, 2) and out.dtype == np.float32
    assert np.array_equal(out, net(image[None])[0])
    assert calls == [(1, 20, 13, 3)] and tile_count(20, 13, 32, 8) == 1


def _pointwise_numpy(batch, scale=3):
    # An elementwise map (colour mixing + tanh), then nearest upscaling: every output pixel depends on
    # one input pixel only, so tiles cannot change it and blending equal values changes nothing.
    mix = np.array([[0.5, -1.0], [0.25, 0.7], [-0.6, 0.1]])
    y = np.tanh(batch.astype(np.float64) @ mix + [0.1, -0.2])
    return y.repeat(scale, axis=1).repeat(scale, axis=2)


def test_a_pointwise_network_is_unchanged_by_tiling_over_many_tiles():
    image = _image(150, 97, seed=1)
    counted, calls = _counting(_pointwise_numpy)
    out = tiled(counted, image, scale=3, tile=24, overlap=8)
    np.testing.assert_allclose(out, _pointwise_numpy(image[None])[0], rtol=0, atol=2e-7)
    assert len(calls) == tile_count(150, 97, 24, 8) == 9 * 6
    assert set(calls) == {(1, 24, 24, 3)}  # every tile full size: one shape to trace
    # The same with a Keras 1x1-conv network (scale 1, a same-size translator).
    net = _conv_net(convs=1, kernel=1, scale=1, seed=3)
    np.testing.assert_allclose(tiled(net, image, scale=1, tile=24, overlap=8), net(image[None])[0], rtol=0, atol=1e-6)


def _zero_padded_box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean with zero padding, on (1, H, W, C): receptive-field radius 1 (as 'same' conv padding)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    return sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def _numpy_net(batch):
    # Two box filters with a nonlinearity between (radius r = 2), then nearest x2 upscaling.
    y = _zero_padded_box3(np.sin(3 * _zero_padded_box3(batch.astype(np.float64))))
    return y.repeat(2, axis=1).repeat(2, axis=2)


@pytest.mark.parametrize("overlap, margin", [(8, None), (5, 2)])
def test_a_network_of_radius_r_is_exact_when_inner_tile_edges_get_zero_weight_within_r(overlap, margin):
    # Receptive-field radius r = 2 (two 3x3 layers). A tile's output within r of an inner edge saw
    # zero padding instead of the neighbouring pixels, so it differs from the untiled output; farther
    # in, it is exact. The window gives zero weight within ``margin`` >= r of an inner edge (default
    # overlap // 4 = 2 for overlap 8; explicitly 2 with overlap 5 = 2r + 1, the least overlap that
    # works), and 2 * margin <= overlap guarantees a positive total weight from such tiles at every
    # pixel. So each output pixel is a weighted mean of exact values: equal up to float32 rounding.
    image = _image(70, 53, seed=2)
    np.testing.assert_allclose(tiled(_numpy_net, image, 2, tile=20, overlap=overlap, margin=margin),
                               _numpy_net(image[None])[0], rtol=0, atol=1e-6)
    net = _conv_net(convs=2, kernel=3, scale=2, seed=4)
    np.testing.assert_allclose(tiled(net, image, 2, tile=20, overlap=overlap, margin=margin),
                               net(image[None])[0], rtol=0, atol=1e-5)


def test_without_the_zero_margin_the_edges_of_tiles_leak_into_the_result():
    # The control for the test above: a ramp starting at the very edge gives weight to pixels that
    # saw the zero padding, and the result is measurably off.
    image = _image(70, 53, seed=2)
    error = np.abs(tiled(_numpy_net, image, 2, tile=20, overlap=8, margin=0) - _numpy_net(image[None])[0]).max()
    assert error > 1e-3


def test_the_window_is_zero_then_a_linear_ramp_then_one_across_each_overlap():
    # fn outputs, for every pixel, the column where its tile starts (read from the image), so the
    # result along a row is sum_i w_i(x) * left_i: by hand, the tile's own start away from overlaps
    # and, across the overlap between starts s and s + stride, s + stride * clip((k - m + 1) /
    # (overlap - 2m + 1), 0, 1) at offset k from the right tile's start. Sizes are chosen so that every
    # overlap is a regular one (the last tile needs no shift).
    tile, overlap, margin = 20, 8, 2
    stride, ramp = tile - overlap, overlap - 2 * margin
    height, width = tile + 2 * stride, tile + 3 * stride
    image = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :, None], (height, width, 1))
    out = tiled(lambda b: np.full_like(b, b[0, 0, 0, 0]), image, 1, tile=tile, overlap=overlap)[..., 0]
    expected = np.empty(width)
    for x in range(width):
        s = min(x // stride, len(tile_starts(width, tile, overlap)) - 1) * stride  # the last tile covering x
        k = x - s
        expected[x] = s if k >= overlap or s == 0 else s - stride + stride * np.clip((k - margin + 1) / (ramp + 1), 0, 1)
    assert expected[stride + margin - 1] == 0 and expected[stride + margin] > 0  # zero margin, then rising
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=0, atol=1e-5)


@pytest.mark.parametrize("height, width, tile, overlap", [(1, 1, 8, 2), (37, 300, 32, 4), (100, 33, 33, 0), (64, 65, 32, 15)])
def test_the_tile_grid_covers_every_pixel_with_full_tiles(height, width, tile, overlap):
    boxes = tile_boxes(height, width, tile, overlap)
    covered = np.zeros((height, width), int)
    for top, left, h, w in boxes:
        assert (h, w) == (min(tile, height), min(tile, width)) and top + h <= height and left + w <= width
        covered[top:top + h, left:left + w] += 1
    assert covered.min() >= 1
    for length in (height, width):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == max(length - tile, 0)
        assert all(b - a == tile - overlap for a, b in zip(starts[:-2], starts[1:-1]))  # regular but the last
    counted, calls = _counting(lambda b: b)
    out = tiled(counted, _image(height, width, 2), 1, tile=tile, overlap=overlap)
    assert len(calls) == tile_count(height, width, tile, overlap) == len(boxes)
    np.testing.assert_allclose(out, _image(height, width, 2), rtol=0, atol=1e-6)


@pytest.mark.parametrize("tile, overlap, margin", [(32, 16, None), (8, -1, None), (0, 0, None), (32, 4, 3), (32, 4, -1), (32.0, 4, None)])
def test_bad_tile_and_overlap_raise(tile, overlap, margin):
    with pytest.raises(ValueError, match="tile|overlap|margin"):
        tiled(lambda b: b, _image(40, 40), 1, tile=tile, overlap=overlap, margin=margin)


def test_an_output_of_the_wrong_size_raises():
    with pytest.raises(ValueError, match="scale=2"):
        tiled(lambda b: b, _image(40, 40), 2, tile=16, overlap=4)
