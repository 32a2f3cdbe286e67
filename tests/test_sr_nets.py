"""The super-resolution networks (models/super_resolution.py): SRResNet, the SRGAN discriminator, check_sr_shape.

Shapes at every scale from one built model on two input sizes; the pixel shuffle against a numpy
loop over TF's depth_to_space formula; both networks against a forward pass written here from raw
ops and the models' own weights (which pins the wiring: skips, order of BN and activations,
strides); weight counts against counts by hand from the paper's layer list; the size checks.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from gantrain.models.super_resolution import (PixelShuffle, check_sr_shape, srgan_discriminator, srresnet_generator,
                                              upsampling_factors)


def _random(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _of_type(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def _depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """TF's NHWC depth_to_space, element by element: out[h*r + i, w*r + j, c] = in[h, w, (i*r + j)*C + c]."""
    n, h, w, depth = x.shape
    c_out = depth // (r * r)
    out = np.zeros((n, h * r, w * r, c_out), x.dtype)
    for hh in range(h):
        for ww in range(w):
            for i in range(r):
                for j in range(r):
                    for c in range(c_out):
                        out[:, hh * r + i, ww * r + j, c] = x[:, hh, ww, (i * r + j) * c_out + c]
    return out


# -- shapes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, channels", [(2, 3), (3, 1), (4, 3), (8, 1)])
def test_one_generator_takes_any_size_at_every_scale(scale, channels):
    g = srresnet_generator(channels, scale, width=4, blocks=1)
    for shape in [(1, 5, 7, channels), (2, 6, 4, channels)]:  # non-square, two sizes, one model
        sr = g(_random(shape, seed=scale), training=False).numpy()
        assert sr.shape == (shape[0], shape[1] * scale, shape[2] * scale, channels)
        assert np.abs(sr).max() < 1.0  # tanh
    shuffles = _of_type(g, PixelShuffle)
    assert [s.factor for s in shuffles] == upsampling_factors(scale) == {2: [2], 3: [3], 4: [2, 2], 8: [2, 2, 2]}[scale]
    # the conv before each shuffle widens to r*r*width, so the shuffle returns width channels
    assert [s.input.shape[-1] for s in shuffles] == [f * f * 4 for f in upsampling_factors(scale)]
    assert all(s.output.shape[-1] == 4 for s in shuffles)


def test_bad_scale_and_widths_raise():
    with pytest.raises(ValueError, match="scale must be one of 2, 3, 4, 8; got 5"):
        srresnet_generator(3, 5)
    with pytest.raises(ValueError, match="blocks >= 0"):
        srresnet_generator(3, 2, blocks=-1)


# -- pixel shuffle ---------------------------------------------------------------------------------
@pytest.mark.parametrize("r, c_out", [(2, 3), (3, 2)])
def test_pixel_shuffle_is_tf_depth_to_space(r, c_out):
    x = _random((2, 3, 4, r * r * c_out), seed=r)
    images = keras.Input((None, None, r * r * c_out))
    model = keras.Model(images, PixelShuffle(r)(images))  # unknown H and W
    np.testing.assert_array_equal(model(x).numpy(), _depth_to_space(x, r))
    y = x[:, :2, :3]  # another size through the same model
    np.testing.assert_array_equal(model(y).numpy(), _depth_to_space(y, r))
    assert model.output.shape == (None, None, None, c_out)
    assert PixelShuffle(r).compute_output_shape((None, 5, 6, r * r * c_out)) == (None, 5 * r, 6 * r, c_out)
    assert PixelShuffle.from_config(PixelShuffle(r).get_config()).factor == r


# -- the networks against a forward pass written here -----------------------------------------------
def _conv(x, layer, strides=1):
    y = tf.nn.conv2d(x, layer.kernel.numpy(), strides, "SAME").numpy()
    return y + layer.bias.numpy() if layer.use_bias else y


def _bn(x, layer):  # inference mode: moving statistics
    gamma, beta, mean, var = (w.numpy() for w in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance))
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _prelu(x, layer):
    return np.where(x > 0, x, layer.alpha.numpy() * x)


def _leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def _randomise(model, seed):
    """Non-trivial BN statistics, offsets, PReLU slopes and biases, so every term shows in the output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c), rng.normal(0, 0.3, c), rng.uniform(0.5, 2, c)])
        elif isinstance(layer, (layers.PReLU,)) or getattr(layer, "bias", None) is not None:
            layer.set_weights([w + rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])


def test_generator_matches_the_papers_network_written_out():
    g = srresnet_generator(3, 4, width=4, blocks=2)
    _randomise(g, seed=1)
    convs, bns, prelus = _of_type(g, layers.Conv2D), _of_type(g, layers.BatchNormalization), _of_type(g, layers.PReLU)
    assert (len(convs), len(bns), len(prelus)) == (1 + 2 * 2 + 1 + 2 + 1, 2 * 2 + 1, 1 + 2 + 2)
    x = _random((2, 5, 6, 3), seed=2)

    head = _prelu(_conv(x, convs[0]), prelus[0])
    h = head
    for b in range(2):
        y = _prelu(_bn(_conv(h, convs[1 + 2 * b]), bns[2 * b]), prelus[1 + b])
        h = h + _bn(_conv(y, convs[2 + 2 * b]), bns[2 * b + 1])
    h = head + _bn(_conv(h, convs[5]), bns[4])  # the global skip from the first PReLU
    for k in range(2):
        h = _prelu(_depth_to_space(_conv(h, convs[6 + k]), 2), prelus[3 + k])
    expected = np.tanh(_conv(h, convs[8]))

    np.testing.assert_allclose(g(x, training=False).numpy(), expected, atol=2e-5)
    assert [c.kernel_size for c in convs] == [(9, 9)] + [(3, 3)] * 7 + [(9, 9)]
    # no bias before batch norm, where its mean subtraction cancels it
    assert [c.use_bias for c in convs] == [True, False, False, False, False, False, True, True, True]


def test_discriminator_matches_the_papers_network_written_out():
    d = srgan_discriminator(3, width=2, dense=8)
    _randomise(d, seed=3)
    convs, bns, denses = _of_type(d, layers.Conv2D), _of_type(d, layers.BatchNormalization), _of_type(d, layers.Dense)
    x = _random((2, 20, 17, 3), seed=4)
    h = x
    for i, stride in enumerate((1, 2, 1, 2, 1, 2, 1, 2)):
        h = _conv(h, convs[i], stride)
        h = _leaky(_bn(h, bns[i - 1]) if i else h)
    h = _leaky(h.mean(axis=(1, 2)) @ denses[0].kernel.numpy() + denses[0].bias.numpy())
    expected = h @ denses[1].kernel.numpy() + denses[1].bias.numpy()
    np.testing.assert_allclose(d(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert [c.filters for c in convs] == [2, 2, 4, 4, 8, 8, 16, 16]
    assert len(bns) == 7 and [c.use_bias for c in convs] == [True] + [False] * 7


def test_discriminator_one_logit_per_image_and_its_spatial_reduction():
    d = srgan_discriminator(1, width=2, dense=4)
    assert d(_random((2, 16, 16, 1)), training=False).shape == (2, 1)
    assert d(_random((3, 40, 24, 1)), training=False).shape == (3, 1)
    # each stride-2 conv takes a side n to ceil(n / 2): 40 -> 20 -> 10 -> 5 -> 3, 24 -> 12 -> 6 -> 3 -> 2
    convs = _of_type(d, layers.Conv2D)
    probe = keras.Model(d.input, [c.output for c in convs])
    shapes = [tuple(o.shape[1:3]) for o in probe(_random((1, 40, 24, 1)))]
    assert shapes == [(40, 24), (20, 12), (20, 12), (10, 6), (10, 6), (5, 3), (5, 3), (3, 2)]
    assert tuple(probe(_random((1, 16, 16, 1)))[-1].shape[1:3]) == (1, 1)


# -- weight counts ---------------------------------------------------------------------------------
def _conv_weights(k, c_in, c_out, bias):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_srresnet_weight_count_by_hand():
    g = srresnet_generator(3, 4)  # the paper's: width 64, 16 blocks, x4, RGB
    bn, prelu = 4 * 64, 64  # gamma, beta, moving mean, moving variance; one slope per channel
    block = 2 * _conv_weights(3, 64, 64, False) + 2 * bn + prelu
    up = _conv_weights(3, 64, 256, True) + prelu
    total = (_conv_weights(9, 3, 64, True) + prelu + 16 * block + _conv_weights(3, 64, 64, False) + bn
             + 2 * up + _conv_weights(9, 64, 3, True))
    moving = 2 * 64 * (16 * 2 + 1)
    assert g.count_params() == total == 1_552_771
    assert sum(int(np.prod(v.shape)) for v in g.trainable_variables) == total - moving == 1_548_547
    assert round(total / 1e6, 1) == 1.6 and round((total - moving) / 1e6, 2) == 1.55  # "1.5 M" (EDSR, table 1)


def test_srgan_discriminator_weight_count_by_hand():
    d = srgan_discriminator(3)
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    convs = sum(_conv_weights(3, c_in, c_out, i == 0) for i, (c_in, c_out) in enumerate(zip([3] + widths, widths)))
    bns = sum(4 * c for c in widths[1:])
    dense = 512 * 1024 + 1024 + 1024 + 1
    assert d.count_params() == convs + bns + dense == 5_217_281


def test_prelu_slopes_start_at_a_quarter_one_per_channel():
    g = srresnet_generator(1, 3, width=4, blocks=2)
    prelus = _of_type(g, layers.PReLU)
    assert len(prelus) == 1 + 2 + 1
    for p in prelus:
        assert p.alpha.shape == (1, 1, 4)  # shared over height and width
        np.testing.assert_array_equal(p.alpha.numpy(), 0.25)


# -- size checks ----------------------------------------------------------------------------------
def test_check_sr_shape():
    assert check_sr_shape((32, 32, 3), 4) is None
    assert check_sr_shape((96, 48, 1), 3) is None
    assert check_sr_shape((None, None, 3), 8) is None
    assert check_sr_shape((8, 8, 3), 4, discriminator=False) is None
    assert check_sr_shape((30, 32, 3), 4) == (
        "the LR image is the HR image divided by the scale 4, so HR height and width must be multiples of 4; "
        "got 30x32 (height 30: nearest 28 or 32)")
    assert check_sr_shape((32, 2, 3), 3).endswith("got 32x2 (height 32: nearest 30 or 33; width 2: nearest 3)")
    assert check_sr_shape((8, 16, 3), 4) == (
        "the SRGAN discriminator halves the image 4 times, so HR height and width must be at least 16; got 8x16")
    assert check_sr_shape((32, 32, 3), 5) == "the scale must be one of 2, 3, 4, 8; got 5"
