"""sgan_mlp: Salimans et al.'s MNIST networks (weight norm with data-dependent init, Gaussian noise, feature matching)."""

import numpy as np
import pytest
import tensorflow as tf

from gantrain import checkpoint as ckpt_lib
from gantrain.config import validate
from gantrain.losses import bce_d_loss, class_cross_entropy
from gantrain.models.sgan_mlp import FEATURES, WeightNormDense
from gantrain.run import build_model

TINY = {"latent_dim": 4, "g_widths": [6], "d_widths": [8, 5]}


def _model(shape=(28, 28, 1), classes=10, **params):
    cfg = validate({"model": {"family": "sgan_mlp", **params}, "data": {"loader": "mnist", "batch_size": 4}})
    return build_model(cfg, shape, classes)


def _wn_layers(net):
    return [layer for layer in net.layers if isinstance(layer, WeightNormDense)]


def _images(n, seed):
    return tf.random.stateless_uniform([n, 28, 28, 1], seed=[seed, 0], minval=-1, maxval=1)


def test_weight_norm_dense_is_g_times_x_dot_unit_v_plus_b():
    rng = np.random.default_rng(0)
    layer = WeightNormDense(3, activation="relu", data_init=False)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    layer.build((None, 4))
    v, g, b = rng.normal(size=(4, 3)), rng.uniform(0.5, 2, size=3), rng.normal(size=3)
    layer.kernel.assign(v.astype(np.float32)), layer.scale.assign(g.astype(np.float32)), layer.bias.assign(b.astype(np.float32))
    expected = g * (x @ (v / np.sqrt((v ** 2).sum(axis=0)))) + b  # each unit's v normalised over its inputs
    for training in (False, True):  # data_init off: training changes nothing
        np.testing.assert_allclose(layer(x, training=training).numpy(), np.maximum(expected, 0), rtol=1e-5, atol=1e-6)
    assert (expected < 0).any()  # the ReLU was exercised


def test_data_dependent_init_once_and_it_survives_a_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    layer = WeightNormDense(6, init_scale=0.7)
    first = (rng.normal(size=(32, 5)) * [1, 2, 3, 4, 5] + [3, -1, 0, 2, 7]).astype(np.float32)
    layer.build((None, 5))
    assert layer(first, training=False).numpy().std(axis=0).min() > 0 and float(layer.initialized.numpy()) == 0.0  # inference: no init
    step = tf.function(lambda x: layer(x, training=True))  # as in training: traced
    pre = step(first).numpy().astype(np.float64)
    np.testing.assert_allclose(pre.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(pre.std(axis=0), 0.7, rtol=1e-5)
    v = layer.kernel.numpy().astype(np.float64)
    t = first @ (v / np.linalg.norm(v, axis=0))
    np.testing.assert_allclose(layer.scale.numpy(), 0.7 / t.std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.bias.numpy(), -t.mean(axis=0) * 0.7 / t.std(axis=0), rtol=1e-5, atol=1e-6)
    g, b = layer.scale.numpy().copy(), layer.bias.numpy().copy()
    second = step(first[:8] * 3 + 1).numpy()
    np.testing.assert_array_equal(layer.scale.numpy(), g)
    np.testing.assert_array_equal(layer.bias.numpy(), b)
    assert abs(second.mean(axis=0)).max() > 0.1  # not normalised again

    # Through a whole D and the training checkpoint: a restored D is initialised and stays so.
    model = _model(**TINY)
    D = model.discriminator
    assert all(float(l.initialized.numpy()) == 0.0 for l in _wn_layers(D))  # building does not initialise
    D(_images(16, 1), training=True)
    saved = {l.name: (l.scale.numpy().copy(), l.bias.numpy().copy()) for l in _wn_layers(D)}
    step_var = tf.Variable(7, dtype=tf.int64)
    prefix = ckpt_lib.make_checkpoint(step_var, discriminator=D.variables).save(str(tmp_path / "ckpt"))
    fresh = _model(**TINY).discriminator
    ckpt_lib.make_checkpoint(tf.Variable(0, dtype=tf.int64), discriminator=fresh.variables).restore(prefix).assert_consumed()
    fresh(_images(16, 2), training=True)  # a resumed run's first batch
    for a, l in zip(_wn_layers(D), _wn_layers(fresh)):
        assert float(l.initialized.numpy()) == 1.0
        np.testing.assert_array_equal(l.scale.numpy(), saved[a.name][0])
        np.testing.assert_array_equal(l.bias.numpy(), saved[a.name][1])


def test_trainable_variables_and_parameter_counts_match_the_reference():
    model = _model()
    D, G = model.discriminator, model.generator
    layers = _wn_layers(D)
    assert [l.units for l in layers] == [1000, 500, 250, 250, 250, 10]
    # nn.DenseLayer: theta and b trained; weight_scale trained only with train_scale=True (the head).
    for l in layers:
        assert l.kernel.trainable and l.bias.trainable and not l.initialized.trainable
        assert l.scale.trainable == (l.name == "class_logits"), l.name
    count = lambda variables: int(sum(np.prod(v.shape) for v in variables))  # noqa: E731
    # Reference D (theta + weight_scale + b per layer):
    #   784*1000 + 2*1000 = 786,000;  1000*500 + 2*500 = 501,000;  500*250 + 2*250 = 125,500;
    #   250*250 + 2*250 = 63,000 (twice);  250*10 + 2*10 = 2,520;  total 1,541,020, of which the
    #   frozen hidden weight_scales are 1000 + 500 + 250 + 250 + 250 = 2,250 -> 1,538,770 trained.
    assert count(D.trainable_weights) == 1_538_770
    assert count(D.weights) == 1_541_020 + 6  # + one `initialized` flag per weight-normalised layer
    # Reference G: 100*500 (no bias) + BN b, mean, var 3*500; 500*500 + 3*500; l2normalize'd
    # 500*784 + W_scale 784 + b 784: 696,568, of which the 2*500*2 = 2,000 BN averages are not trained.
    assert count(G.weights) == 696_568 and count(G.trainable_weights) == 694_568
    images = G(tf.random.normal([3, model.latent_dim]), training=False)
    assert tuple(images.shape) == (3, 28, 28, 1) and float(tf.reduce_max(tf.abs(images))) < 1.0


def test_feature_matching_uses_the_last_hidden_relu_before_its_noise():
    # Without input noise and with one hidden layer, only the noise between that layer and the head
    # is random: features taken before it repeat exactly, the logits do not.
    model = _model(latent_dim=4, g_widths=[6], d_widths=[8], input_noise=0.0, hidden_noise=0.5)
    model.enable_features()  # as adversarial_plan calls it
    x = _images(16, 3)
    a, b = model.discriminate(x, None, training=True), model.discriminate(x, None, training=True)
    np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
    assert not np.allclose(a["class_logits"].numpy(), b["class_logits"].numpy())
    # The default network: features are ReLU outputs (noise after the ReLU would make some negative).
    model = _model(**TINY)
    model.enable_features()
    features = model.discriminate(_images(16, 4), None, training=True)["features"].numpy()
    assert features.shape == (16, 5) and features.min() == 0.0
    assert model.discriminator.get_layer(FEATURES).units == TINY["d_widths"][-1]


def test_gaussian_noise_only_in_training():
    D = _model(**TINY).discriminator
    x = _images(8, 5)
    first = D(x, training=False).numpy()
    assert float(_wn_layers(D)[0].initialized.numpy()) == 0.0
    np.testing.assert_array_equal(D(x, training=False).numpy(), first)
    a, b = D(x, training=True).numpy(), D(x, training=True).numpy()  # the first of these initialises
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(D(x, training=False).numpy(), D(x, training=False).numpy())


def test_d_loss_is_twice_the_reference_loss():
    rng = np.random.default_rng(6)
    lab, unl, fake = (rng.normal(size=(5, 10)) * 3 for _ in range(3))
    labels = rng.integers(0, 10, size=5)
    lse = lambda l: np.log(np.exp(l).sum(axis=1))  # noqa: E731
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    # train_mnist_feature_matching.py: loss_lab + loss_unl
    loss_lab = -lab[np.arange(5), labels].mean() + lse(lab).mean()
    loss_unl = -0.5 * lse(unl).mean() + 0.5 * softplus(lse(unl)).mean() + 0.5 * softplus(lse(fake)).mean()
    weight = _model(**TINY).supervised_weight
    lse_tf = lambda l: tf.reduce_logsumexp(tf.constant(l, tf.float32), axis=-1, keepdims=True)  # noqa: E731
    ours = bce_d_loss(lse_tf(unl), lse_tf(fake)) + weight * class_cross_entropy(tf.constant(labels), tf.constant(lab, tf.float32))
    assert float(ours) == pytest.approx(2 * (loss_lab + loss_unl), rel=1e-5)


_MIRRORED = r'''
import json, sys
import numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from gantrain.models.sgan_mlp import WeightNormDense
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = WeightNormDense(3)
    layer.build((None, 4))
x = np.random.default_rng(7).normal(size=(8, 4)).astype(np.float32)
x[4:] = x[4:] * 3 + 2  # the second replica's slice has other moments than the first's
batches = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
tf.function(lambda b: strategy.run(lambda xs: layer(xs, training=True), args=(b,)))(next(iter(batches)))
v = layer.kernel.numpy().astype(np.float64)
t = x @ (v / np.linalg.norm(v, axis=0))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "expected": (1 / t.std(axis=0)).tolist(),
                  "scales": [np.asarray(s).tolist() for s in strategy.experimental_local_results(layer.scale.value)]}))
'''


def test_data_dependent_init_under_mirrored_strategy_uses_the_global_batch():
    # Logical devices must be set before TensorFlow starts: a subprocess, as tests/test_distribute.py.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", _MIRRORED], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    (r,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert r["replicas"] == 2
    for scale in r["scales"]:  # every replica: g from the moments of all 8 rows, not of its own 4
        np.testing.assert_allclose(scale, r["expected"], rtol=1e-5)
