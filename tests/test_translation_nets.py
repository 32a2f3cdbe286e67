"""The image-to-image networks (models/translation.py) and the image history buffer (models/image_pool.py).

Networks: output shapes at 32, 64, 256 and 32x64, a clear error for sizes they cannot take, the
papers' layer widths and the reference code's parameter counts, the PatchGAN's receptive field
measured by gradients, the U-Net's skips, dropout as G's noise, fully convolutional builds.
ImagePool: against a plain-Python copy of the reference algorithm fed the same draws, eagerly,
in tf.function and under XLA; its resume through tf.train.Checkpoint.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from gantrain.models.image_pool import ImagePool
from gantrain.models.translation import (ReflectionPad2D, check_patchgan_shape, check_resnet_shape, check_unet_shape,
                                         patchgan_discriminator, patchgan_output_size, patchgan_receptive_field,
                                         resnet_generator, unet_generator)


def _random(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _weight_count(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _of_type(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


# -- shapes and sizes --------------------------------------------------------------------------------
@pytest.mark.parametrize("h, w, depth, logits", [(32, 32, 5, (2, 2)), (64, 64, 6, (6, 6)), (32, 64, 5, (2, 6)), (256, 256, 8, (30, 30))])
def test_output_shapes(h, w, depth, logits):
    x = _random((1, h, w, 3))
    unet = unet_generator((h, w, 3), 2, ngf=2)
    assert len(_of_type(unet, layers.Conv2D)) == depth  # the default depth: log2 of the smaller side, at most 8
    assert unet(x, training=True).shape == (1, h, w, 2)
    assert resnet_generator((h, w, 3), 1, ngf=2, blocks=1)(x).shape == (1, h, w, 1)
    assert patchgan_discriminator((h, w, 3), ndf=2)(x).shape == (1, *logits, 1)
    assert patchgan_discriminator((h, w, 3), ndf=2, condition_channels=1)([x, x[..., :1]]).shape == (1, *logits, 1)
    assert (patchgan_output_size(h), patchgan_output_size(w)) == logits


def test_impossible_sizes_raise_one_line_with_what_would_work():
    with pytest.raises(ValueError, match=r"multiples of 32; got 48x48 \(height 48: nearest 32 or 64; .*depth 4 or less"):
        unet_generator((48, 48, 3), 3)
    with pytest.raises(ValueError, match=r"multiples of 64; got 96x64 \(height 96: nearest 64 or 128; or depth 5"):
        unet_generator((96, 64, 3), 3, depth=6)
    with pytest.raises(ValueError, match="give depth explicitly"):
        unet_generator((None, None, 3), 3)
    with pytest.raises(ValueError, match="multiples of 4 and at least 8; got 30x32 \\(nearest for 30: 28 or 32\\)"):
        resnet_generator((30, 32, 3), 3)
    with pytest.raises(ValueError, match="at least 24; got 16x32"):
        patchgan_discriminator((16, 32, 3))
    with pytest.raises(ValueError, match="norm must be one of batch, instance, none"):
        unet_generator((32, 32, 3), 3, norm="layer")
    assert check_unet_shape((64, 128, 3)) is None and check_unet_shape((None, 96, 1), depth=5) is None
    assert check_resnet_shape((8, 12, 3)) is None and check_patchgan_shape((24, 40, 3)) is None
    for message in (check_unet_shape((48, 48, 3)), check_resnet_shape((6, 6, 1)), check_patchgan_shape((8, 8, 1))):
        assert message and "\n" not in message


def test_layer_widths_and_weight_counts_are_the_papers_and_the_reference_codes():
    # pix2pix's 256x256 U-Net at ngf 2 = the paper's widths / 32: encoder C64-C128-C256-C512 x 5,
    # decoder inputs (after each concatenation) "CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128".
    unet = unet_generator((256, 256, 3), 3, ngf=2)
    assert [c.filters for c in _of_type(unet, layers.Conv2D)] == [2, 4, 8, 16, 16, 16, 16, 16]
    decoder_inputs = [c.input.shape[-1] for c in _of_type(unet, layers.Conv2DTranspose)]
    assert decoder_inputs == [n // 32 for n in (512, 1024, 1024, 1024, 1024, 512, 256, 128)]
    assert len(_of_type(unet, layers.Dropout)) == 3
    # Full size: the reference's printed totals (pytorch-CycleGAN-and-pix2pix): unet_256 54.414 M,
    # where we add biases to the two convs no norm follows (64 + 512); resnet_9blocks 11.378 M, less
    # the 5,248 biases instance norm cancels; the basic D 2.765 M (2.769 M for pix2pix's 3 + 3 channels).
    assert _weight_count(unet_generator((None, None, 3), 3, depth=8)) == 54_413_955 + 64 + 512
    assert round(54_413_955 / 1e6, 3) == 54.414
    resnet = resnet_generator((None, None, 3), 3)
    assert _weight_count(resnet) == 11_372_931 and round((11_372_931 + 5_248) / 1e6, 3) == 11.378
    assert _weight_count(patchgan_discriminator((None, None, 3))) == 2_765_633
    assert _weight_count(patchgan_discriminator((None, None, 3), condition_channels=3)) == 2_768_705


# -- PatchGAN receptive field ----------------------------------------------------------------------
@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patchgan_receptive_field_measured_by_gradients(n_layers):
    d = patchgan_discriminator((128, 128, 3), ndf=2, n_layers=n_layers, norm="none")
    x = tf.constant(_random((2, 128, 128, 3), seed=n_layers))
    o = patchgan_output_size(128, n_layers) // 2
    with tf.GradientTape() as tape:
        tape.watch(x)
        centre = tf.reduce_sum(d(x)[:, o, o, 0])
    seen = np.abs(tape.gradient(centre, x).numpy()).sum(axis=(0, 3)) > 0
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    field = patchgan_receptive_field(n_layers)
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (field, field)
    assert seen[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # the whole square, not just its corners
    if n_layers == 3:
        assert field == 70 and rows[0] == cols[0] == 8 * o - 23  # padding 1 at each of the five convs


def test_patchgan_batch_norm_at_inference_keeps_the_field():
    # In training mode batch norm's statistics see every pixel; with moving statistics it is per pixel.
    d = patchgan_discriminator((96, 96, 1), ndf=2, norm="batch")
    x = tf.constant(_random((1, 96, 96, 1)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        centre = d(x, training=False)[0, 5, 5, 0]
    seen = np.abs(tape.gradient(centre, x).numpy()[0, :, :, 0]) > 0
    assert seen.any(axis=1).sum() == seen.any(axis=0).sum() == 70


# -- U-Net ---------------------------------------------------------------------------------------------
def test_unet_skips_carry_the_image_past_a_zeroed_bottleneck():
    g = unet_generator((32, 32, 1), 1, ngf=4, norm="none", dropout=0.0)
    bottleneck = _of_type(g, layers.Conv2D)[-1]
    bottleneck.set_weights([np.zeros_like(w) for w in bottleneck.get_weights()])
    x = _random((1, 32, 32, 1))
    bumped = x.copy()
    bumped[0, 9, 22, 0] += 1.0
    assert np.all(g(x).numpy() == g(tf.zeros_like(x)).numpy()) is np.False_  # the output still depends on the image
    change = np.abs(g(bumped).numpy() - g(x).numpy())[0, :, :, 0]
    assert change[9, 22] > 0  # and the pixel's own location responds to it


def test_unet_dropout_is_the_noise_in_training_only():
    g = unet_generator((32, 32, 3), 3, ngf=2)
    x = _random((1, 32, 32, 3))
    assert not np.allclose(g(x, training=True), g(x, training=True))
    np.testing.assert_array_equal(g(x, training=False), g(x, training=False))


def _copy_conv_weights(source, target):
    convs = (layers.Conv2D, layers.Conv2DTranspose)
    pairs = list(zip([c for c in source.layers if type(c) in convs], [c for c in target.layers if type(c) in convs], strict=True))
    for a, b in pairs:
        b.set_weights(a.get_weights())


def test_batch_norm_at_batch_one_is_instance_norm():
    batch = unet_generator((32, 32, 3), 3, ngf=4, norm="batch", dropout=0.0)
    instance = unet_generator((32, 32, 3), 3, ngf=4, norm="instance", dropout=0.0)
    _copy_conv_weights(batch, instance)
    x = _random((1, 32, 32, 3))
    np.testing.assert_allclose(batch(x, training=True), instance(x, training=True), atol=1e-5)


# -- ResNet generator and reflection padding -------------------------------------------------------
def test_reflection_padding_is_numpys_reflect_and_serialises():
    x = _random((2, 5, 7, 3))
    pad = ReflectionPad2D((2, 3))
    np.testing.assert_array_equal(pad(x), np.pad(x, [(0, 0), (2, 2), (3, 3), (0, 0)], mode="reflect"))
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(pad))
    assert again.padding == (2, 3)
    assert pad.compute_output_shape((None, None, 7, 3)) == (None, None, 13, 3)


def test_resnet_generator_clones_as_the_ema_copy_does():
    g = resnet_generator((32, 32, 3), 3, ngf=2, blocks=2)
    copy = keras.models.clone_model(g)
    copy.set_weights(g.get_weights())
    x = _random((1, 32, 32, 3))
    np.testing.assert_array_equal(g(x), copy(x))


@pytest.mark.parametrize("build", [
    lambda shape: resnet_generator(shape, 3, ngf=2, blocks=2),
    lambda shape: unet_generator(shape, 3, ngf=2, depth=5, dropout=0.0),
    lambda shape: patchgan_discriminator(shape, ndf=2, norm="instance"),
], ids=["resnet", "unet", "patchgan"])
def test_fully_convolutional(build):
    small = build((32, 32, 3))
    open_size = build((None, None, 3))
    open_size.set_weights(small.get_weights())  # the weights of a 32x32 build fit any size
    x = _random((1, 32, 32, 3))
    np.testing.assert_allclose(open_size(x), small(x), atol=1e-6)
    for h, w in ((64, 64), (32, 96)):
        out = open_size(_random((1, h, w, 3)))
        assert out.shape[1:3] == ((h, w) if out.shape[-1] == 3 else (patchgan_output_size(h), patchgan_output_size(w)))


# -- ImagePool --------------------------------------------------------------------------------------
class ReferencePool:
    """pytorch-CycleGAN-and-pix2pix util/image_pool.py, with its random draws handed in."""

    def __init__(self, pool_size):
        self.pool_size, self.images = pool_size, []

    def query(self, images, coins, slots):
        if self.pool_size == 0:
            return images
        returned, from_this_batch = [], 0
        for k, image in enumerate(images):
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif coins[k] > 0.5:
                tmp = self.images[slots[k]]
                from_this_batch += any(tmp is other for other in images[:k])
                self.images[slots[k]] = image
                returned.append(tmp)
            else:
                returned.append(image)
        self.from_this_batch = from_this_batch
        return np.stack(returned)


def _batches(sizes, shape=(2, 3, 1), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, *shape)).astype(np.float32) for n in sizes]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_image_pool_matches_the_reference_algorithm(mode):
    pool, ref = ImagePool((2, 3, 1), capacity=3), ReferencePool(3)
    query = {"eager": pool.query, "function": tf.function(pool.query), "xla": tf.function(pool.query, jit_compile=True)}[mode]
    drew_own_batch = 0
    for step, batch in enumerate(_batches([2, 1, 5, 4, 6, 1, 3, 6, 2, 5] * 2)):
        seed = tf.constant([step, 11], tf.int64)
        coins, slots = (t.numpy() for t in pool.draws(len(batch), seed))
        expected = ref.query(list(batch), coins, slots)
        np.testing.assert_array_equal(query(tf.constant(batch), seed), expected)
        np.testing.assert_array_equal(pool.buffer.numpy(), np.stack(ref.images + [np.zeros_like(batch[0])] * (3 - len(ref.images))))
        assert int(pool.count) == len(ref.images)
        drew_own_batch += getattr(ref, "from_this_batch", 0)
    assert drew_own_batch > 0  # the run covers an image drawing one stored earlier in its own batch


def test_image_pool_fills_first_and_returns_the_inputs():
    pool = ImagePool((4, 4, 3), capacity=5)
    first, second = _batches([3, 2], shape=(4, 4, 3))
    for step, batch in enumerate((first, second)):
        np.testing.assert_array_equal(pool.query(batch, tf.constant([step, 0])), batch)
    np.testing.assert_array_equal(pool.buffer.numpy(), np.concatenate([first, second]))
    assert int(pool.count) == 5
    coins, _ = pool.draws(4000, tf.constant([1, 2]))
    assert set(coins.numpy()) == {0, 1} and 0.47 < float(np.mean(coins.numpy())) < 0.53  # a swap with probability 1/2


def test_image_pool_capacity_zero_passes_through_and_precision_is_float32():
    batch = _batches([3], shape=(2, 2, 1))[0]
    np.testing.assert_array_equal(ImagePool((2, 2, 1), capacity=0).query(batch, tf.constant([0, 0])), batch)
    pool = ImagePool((2, 2, 1), capacity=4)
    half = pool.query(tf.constant(batch, tf.float16), tf.constant([0, 0]))
    assert half.dtype == tf.float16 and pool.buffer.dtype == tf.float32
    assert pool.variables == [pool.buffer, pool.count] and not pool.trainable_variables


def test_image_pool_resumes_exactly_from_a_checkpoint(tmp_path):
    batches = _batches([2, 3, 1, 4, 2, 3, 4, 1], seed=3)
    seeds = [tf.constant([s, 5]) for s in range(len(batches))]
    straight = ImagePool((2, 3, 1), capacity=4)
    outputs = [straight.query(b, s).numpy() for b, s in zip(batches, seeds)]

    first = ImagePool((2, 3, 1), capacity=4)
    for b, s in zip(batches[:4], seeds[:4]):
        first.query(b, s)
    path = tf.train.Checkpoint(pool=first.variables).write(str(tmp_path / "pool"))
    resumed = ImagePool((2, 3, 1), capacity=4)
    tf.train.Checkpoint(pool=resumed.variables).read(path).assert_consumed()
    for b, s, expected in zip(batches[4:], seeds[4:], outputs[4:]):
        np.testing.assert_array_equal(resumed.query(b, s), expected)
    np.testing.assert_array_equal(resumed.buffer.numpy(), straight.buffer.numpy())
    assert int(resumed.count) == int(straight.count) == 4
