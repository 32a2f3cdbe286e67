import numpy as np
import pytest
import tensorflow as tf

from gantrain.config import validate
from gantrain.data import ImageSource, make_pipeline
from gantrain.data.labels import labeled_subset
from gantrain.losses import get_loss
from gantrain.optimizers import build_optimizer
from gantrain.trainer import GANTrainer
from gantrain.errors import UserError
from gantrain.registry import MODELS
from gantrain.run import build_model
from tests.conftest import MNIST_PARAMS, NOISE_FAMILIES


def _count(model, trainable=None):
    if trainable is None:
        variables = model.weights
    else:
        variables = model.trainable_weights if trainable else model.non_trainable_weights
    return int(sum(np.prod(v.shape) for v in variables))


def _cfg(family, loader="mnist", **model):
    data = {"loader": loader, "batch_size": 4}
    if loader == "image_folder":
        data.update(root="/nonexistent", image_size=model.pop("size", 64), channels=model.pop("channels", 3))
    return validate({"model": {"family": family, **model}, "data": data})


def test_mlp_gan_parameter_counts_match_reference():
    cfg = _cfg("gan")
    nets = build_model(cfg, (28, 28, 1), 10)
    assert _count(nets.generator) == 1_493_520
    assert _count(nets.generator, trainable=True) == 1_489_936
    assert _count(nets.discriminator) == 533_505
    assert _count(nets.discriminator, trainable=True) == 533_505


@pytest.mark.parametrize("shape, g_widths, d_widths", [
    ((28, 28, 1), [256, 128, 64], [64, 128]),
    ((32, 32, 3), [32, 16, 8], [8, 16]),
    ((64, 64, 3), [32, 16, 8, 4], [4, 8, 16]),
])
def test_dcgan_shapes(shape, g_widths, d_widths):
    loader = "mnist" if shape[0] == 28 else "image_folder"
    cfg = _cfg("dcgan", loader, g_widths=g_widths, d_widths=d_widths, **({} if loader == "mnist" else {"size": shape[0], "channels": shape[2]}))
    nets = build_model(cfg, shape, 0)
    z = tf.random.normal([2, nets.latent_dim])
    images = nets.generator(z, training=False)
    assert tuple(images.shape) == (2, *shape)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh output
    assert tuple(nets.discriminator(images, training=False).shape) == (2, 1)


def test_dcgan_tutorial_parameter_count():
    # The TensorFlow DCGAN tutorial's generator has 2,330,944 parameters and its discriminator 212,865.
    nets = build_model(_cfg("dcgan"), (28, 28, 1), 10)
    assert _count(nets.generator) == 2_330_944
    assert _count(nets.discriminator) == 212_865


def test_dcgan_nearest_upsampling_is_a_nearest_resize_then_a_same_convolution():
    # Independent forward of G's last block: repeat each pixel 2x2 (nearest neighbour), then the
    # 5x5 "same" convolution with the layer's kernel and tanh; it must equal G's output. The
    # transposed-convolution generator has the same parameter count, so only numbers tell them apart.
    nets = build_model(_cfg("dcgan", g_widths=[8, 4, 2], d_widths=[4], g_upsample="nearest"), (28, 28, 1), 0)
    g = nets.generator
    assert not [layer for layer in g.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose)]
    last_conv = g.layers[-1]
    feeding = tf.keras.Model(g.input, g.layers[-3].output)  # the activation before the last upsampling
    z = tf.random.normal([3, nets.latent_dim], seed=1)
    x = feeding(z, training=False).numpy()
    assert x.shape == (3, 14, 14, 2)
    upsampled = x.repeat(2, axis=1).repeat(2, axis=2)
    kernel = last_conv.kernel.numpy()
    padded = np.pad(upsampled, ((0, 0), (2, 2), (2, 2), (0, 0)))
    expected = np.zeros((3, 28, 28, 1), np.float32)
    for i in range(5):
        for j in range(5):
            expected += np.einsum("bhwc,co->bhwo", padded[:, i:i + 28, j:j + 28], kernel[i, j])
    np.testing.assert_allclose(g(z, training=False).numpy(), np.tanh(expected), atol=1e-5)


def test_dcgan_chen_networks_match_the_paper_layer_by_layer():
    # Chen et al. appendix C.1 without the codes, counted by hand (no bias before a batch norm; BN
    # keeps 4 numbers a unit). G: FC 100->1024 (102,400) + BN (4,096); FC 1024->7*7*128 (6,422,528)
    # + BN (25,088); 4x4 up-conv 128->64 (131,072) + BN (256); 4x4 up-conv 64->1 with bias (1,025).
    nets = build_model(_cfg("dcgan", arch="chen", d_norm="batch"), (28, 28, 1), 0)
    assert _count(nets.generator) == 102_400 + 4_096 + 6_422_528 + 25_088 + 131_072 + 256 + 1_025 == 6_686_465
    # D: 4x4 conv 1->64 with bias (1,088); 4x4 conv 64->128 (131,072) + BN (512); FC 6272->1024
    # (6,422,528) + BN (4,096); logit FC 1024->1 (1,025).
    assert _count(nets.discriminator) == 1_088 + 131_072 + 512 + 6_422_528 + 4_096 + 1_025 == 6_560_321
    images = nets.generator(tf.random.normal([2, 100]), training=False)
    assert images.shape == (2, 28, 28, 1) and nets.discriminator(images, training=False).shape == (2, 1)


@pytest.mark.parametrize("key, value, says", [
    ("g_widths", [8, 8], "model.g_widths: sets the tutorial networks"),
    ("dropout", 0.0, "model.dropout: sets the tutorial networks"),
    ("g_norm", "instance", "model.g_norm: instance normalises over height and width"),
])
def test_dcgan_chen_refuses_what_its_networks_cannot_honour(key, value, says):
    with pytest.raises(UserError, match=says):
        _cfg("dcgan", arch="chen", **{key: value})
    _cfg("dcgan", **{key: value})  # the tutorial networks take it
    with pytest.raises(UserError, match="multiples of 4"):
        _cfg("dcgan", "image_folder", arch="chen", size=30)


def test_spectral_norm_adds_only_its_power_iteration_vectors():
    # W stays the trainable variable (W / sigma is computed, never stored), so the trainable counts
    # are the unnormalised networks'; each normalised layer adds a non-trainable u of its output size.
    nets = build_model(_cfg("dcgan", d_norm="spectral"), (28, 28, 1), 10)
    assert _count(nets.discriminator, trainable=True) == 212_865
    assert _count(nets.discriminator, trainable=False) == 64 + 128 + 1
    nets = build_model(_cfg("gan", d_norm="spectral"), (28, 28, 1), 10)
    assert _count(nets.discriminator, trainable=True) == 533_505
    assert _count(nets.discriminator, trainable=False) == 512 + 256 + 1


@pytest.mark.parametrize("size, match", [([48, 64], "square"), (30, "not divisible")])
def test_dcgan_refuses_shapes_it_cannot_make(size, match):
    with pytest.raises(UserError, match=match):
        _cfg("dcgan", "image_folder", size=size)


def _synthetic_source(n=16, classes=4):
    rng = np.random.default_rng(0)
    labels = np.arange(n, dtype=np.int32) % classes
    return ImageSource(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), labels, [str(k) for k in range(classes)])


@pytest.mark.parametrize("family", NOISE_FAMILIES)
def test_every_family_passes_the_contract(family):
    """Registry-wide: build for MNIST shapes, map latent -> images -> logits, and train one step
    (every variable gets a gradient, losses finite, both networks' weights move)."""
    cfg = _cfg(family, **MNIST_PARAMS.get(family, {}))
    source = _synthetic_source()
    model = build_model(cfg, (28, 28, 1), source.num_classes)
    rng = tf.random.Generator.from_seed(0)
    latent = model.sample_latent(rng, 3)
    images = model.generate(latent, training=True)
    assert tuple(images.shape) == (3, 28, 28, 1)
    out = model.discriminate(images, latent.get("labels"), training=True)
    assert tuple(out["logits"].shape) == (3, 1)

    trainer = GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         get_loss("non_saturating"), 8, seed=0)
    g0 = [v.numpy().copy() for v in model.generator.trainable_variables]
    d0 = [v.numpy().copy() for v in model.discriminator.trainable_variables]
    it = iter(make_pipeline(source, 8, seed=0))
    if model.uses_labeled_stream:
        metrics = trainer.train_step(it, iter(make_pipeline(labeled_subset(source), 8, seed=1)))
    else:
        metrics = trainer.train_step(it)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(g0, model.generator.trainable_variables))
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(d0, model.discriminator.trainable_variables))
    grid, rows = model.grid_latent(8, seed=1)
    assert model.generate(grid, training=False).shape[0] >= 4


def _producer(layer):
    """The layer whose output feeds ``layer`` in a functional model (None for a model input)."""
    parents = layer._inbound_nodes[0].parent_nodes
    return parents[0].operation if parents else None


def _centres_per_channel(layer) -> bool:
    """Batch norm, or instance norm (a group per channel): both subtract each channel's own mean."""
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return True
    return isinstance(layer, tf.keras.layers.GroupNormalization) and layer.groups in (-1, layer.input.shape[-1])


@pytest.mark.parametrize("family", NOISE_FAMILIES)
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_no_bias_right_before_a_norm_that_subtracts_each_channels_mean(family, norm):
    """A bias added just before such a norm cancels exactly: its true gradient is zero, so its
    computed one is rounding noise, which Adam (dividing by the gradient's own size) turns into
    full-size steps. That made three steps of ACGAN differ by 3e-5 between two CPUs' kernels."""
    params = dict(MNIST_PARAMS.get(family, {}))
    keys = MODELS.entry(family).schema
    for key in ("g_norm", "d_norm"):
        if key in keys and norm in keys[key].choices:
            params[key] = norm
    nets = build_model(_cfg(family, **params), (28, 28, 1), 10)
    checked = 0
    for net in (nets.generator, nets.discriminator):
        for layer in net.layers:
            if _centres_per_channel(layer):
                checked += 1
                producer = _producer(layer)
                assert not getattr(producer, "use_bias", False), f"{family}: {producer.name} has a bias right before {layer.name}"
    assert checked or family in ("gan", "cgan"), f"{family} has no {norm} norm to check"
