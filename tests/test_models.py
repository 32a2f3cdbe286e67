import numpy as np
import pytest
import tensorflow as tf

from gantrain.config import validate
from gantrain.errors import UserError
from gantrain.registry import MODELS
from gantrain.run import build_networks


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
    nets = build_networks(cfg, (28, 28, 1), 10)
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
    nets = build_networks(cfg, shape, 0)
    z = tf.random.normal([2, nets.latent_dim])
    images = nets.generator(z, training=False)
    assert tuple(images.shape) == (2, *shape)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh output
    assert tuple(nets.discriminator(images, training=False).shape) == (2, 1)


def test_dcgan_tutorial_parameter_count():
    # The TensorFlow DCGAN tutorial's generator has 2,330,944 parameters and its discriminator 212,865.
    nets = build_networks(_cfg("dcgan"), (28, 28, 1), 10)
    assert _count(nets.generator) == 2_330_944
    assert _count(nets.discriminator) == 212_865


@pytest.mark.parametrize("size, match", [([48, 64], "square"), (30, "not divisible")])
def test_dcgan_refuses_shapes_it_cannot_make(size, match):
    with pytest.raises(UserError, match=match):
        _cfg("dcgan", "image_folder", size=size)


def test_every_family_builds_and_runs_tiny():
    # Registry-wide contract: every family builds for MNIST shapes and maps z -> images -> logits.
    for name in MODELS.names():
        cfg = _cfg(name)
        nets = build_networks(cfg, (28, 28, 1), 10)
        images = nets.generator(tf.random.normal([3, nets.latent_dim]), training=True)
        assert tuple(images.shape) == (3, 28, 28, 1), name
        logits = nets.discriminator(images, training=True)
        assert tuple(logits.shape) == (3, 1), name
        assert np.all(np.isfinite(logits.numpy())), name
