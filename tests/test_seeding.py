"""Building a model from a config seeds only what the run owns (review item 10)."""

import random

import numpy as np
import tensorflow as tf

from gantrain.config import validate
from gantrain.run import build_model
from tests.conftest import tiny_config


def _draws():
    return random.random(), float(np.random.random()), float(tf.random.uniform([]).numpy())


def test_build_model_leaves_the_callers_global_generators_alone(mnist_dir):
    cfg = validate(tiny_config(mnist_dir))
    random.seed(11), np.random.seed(11), tf.random.set_seed(11)
    expected = _draws()
    random.seed(11), np.random.seed(11), tf.random.set_seed(11)
    build_model(cfg, (28, 28, 1), 0)
    assert _draws() == expected


def test_build_model_is_still_reproducible_from_the_config_seed(mnist_dir):
    cfg = validate(tiny_config(mnist_dir))
    random.seed(1)
    a = build_model(cfg, (28, 28, 1), 0)
    random.seed(2)  # whatever the caller did before, the weights come from cfg["seed"]
    b = build_model(cfg, (28, 28, 1), 0)
    for x, y in zip(a.generator.weights + a.discriminator.weights, b.generator.weights + b.discriminator.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    other = build_model(validate({**tiny_config(mnist_dir), "seed": 4}), (28, 28, 1), 0)
    assert not np.array_equal(other.generator.weights[0].numpy(), a.generator.weights[0].numpy())


def test_deterministic_fit_leaves_op_determinism_as_it_found_it(tmp_path, mnist_dir):
    """Left enabled, every later unseeded random op of the caller raised 'Random ops require a seed'."""
    import gantrain
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()
    gantrain.fit(tiny_config(mnist_dir, deterministic=True, steps=1), run_dir=tmp_path / "r", progress=False)
    assert not tf_config.is_op_determinism_enabled()
    tf.random.set_seed(None)
    tf.random.normal([2])  # an unseeded op works again
