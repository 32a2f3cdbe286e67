"""Spectral normalisation (Miyato et al. 2018) as a reparameterisation W / sigma(W), and the
per-sample ``layer_hwc`` norm of WGAN-GP's critic (Gulrajani et al. 2017).

Every expected value is computed independently: power iteration and sigma in numpy (float64),
gradients by autodiff of the textbook formula W / (u^T W v) with u and v held constant, spectral
norms by numpy's SVD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import gantrain
from gantrain.checkpoint import find_checkpoint, make_checkpoint, restore
from gantrain.config import validate
from gantrain.models.layers import MinibatchDiscrimination, SpectralNormalization
from gantrain.optimizers import build_optimizer
from gantrain.registry import LOSSES, MODELS
from gantrain.run import build_model
from gantrain.trainer import GANTrainer, TrainOptions
from tests.conftest import MNIST_PARAMS, NOISE_FAMILIES, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _u(sn) -> np.ndarray:
    return np.ravel(sn.u.numpy()).astype(np.float64)


def _kernel(sn):
    return sn.layer.embeddings if isinstance(sn.layer, keras.layers.Embedding) else sn.layer.kernel


def _unit(x):
    return x / np.linalg.norm(x)


def _power_step(w_mat, u):
    """Miyato et al. Algorithm 1 for a kernel reshaped to (-1, out) and u in the output space."""
    v = _unit(w_mat @ u)
    return _unit(w_mat.T @ v), v


def _sigma_at(w_mat, u):
    """Inference estimate from the stored u alone: v = W u / |W u|, sigma = v^T W u = |W u| (u unit)."""
    return np.linalg.norm(w_mat @ _unit(u))


def _with_spectrum(shape, seed):
    """An initializer for a kernel of ``shape`` whose (-1, out) matrix has singular values 4, 2, 1.5,
    1, ... (random directions): far from 1, with a gap that 30 power steps close to 1e-3."""
    rng = np.random.default_rng(seed)
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    left, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    right, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
    spectrum = np.array([4.0, 2.0, 1.5, 1.0, 0.5, 0.25][:cols])
    return keras.initializers.Constant(((left * spectrum) @ right.T).reshape(shape))


def _probe(kind):
    """A wrapped layer, its input, and a function that reads the effective kernel back from the
    layer's outputs (so it sees what the layer computes)."""
    if kind == "dense":
        sn = SpectralNormalization(keras.layers.Dense(4, use_bias=False, kernel_initializer=_with_spectrum((6, 4), 11)), seed=1)
        x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
        return sn, x, lambda: sn(np.eye(6, dtype=np.float32), training=False).numpy()
    if kind == "conv":
        sn = SpectralNormalization(keras.layers.Conv2D(5, 3, use_bias=False, kernel_initializer=_with_spectrum((3, 3, 2, 5), 12)), seed=1)
        x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype(np.float32)
        # A one-hot 3x3x2 input per kernel entry: the 1x1 output is that entry's row of the kernel.
        onehots = np.eye(18, dtype=np.float32).reshape(18, 3, 3, 2)
        return sn, x, lambda: sn(onehots, training=False).numpy().reshape(3, 3, 2, 5)
    sn = SpectralNormalization(keras.layers.Embedding(7, 5, embeddings_initializer=_with_spectrum((7, 5), 13)), seed=1)
    x = np.array([0, 3, 6, 3], np.int32)
    return sn, x, lambda: sn(np.arange(7, dtype=np.int32), training=False).numpy()


@pytest.mark.parametrize("kind", ["dense", "conv", "embedding"])
def test_training_calls_drive_the_effective_kernel_to_unit_spectral_norm(kind):
    sn, x, effective = _probe(kind)
    sn(x)
    w0 = _kernel(sn).numpy().copy()
    assert np.linalg.svd(w0.reshape(-1, w0.shape[-1]), compute_uv=False)[0] == pytest.approx(4.0, rel=1e-5)
    for _ in range(30):  # one power iteration per training-mode call
        sn(x, training=True)
    np.testing.assert_array_equal(_kernel(sn).numpy(), w0)  # the trainable W is never overwritten
    eff = effective()
    top = np.linalg.svd(eff.reshape(-1, eff.shape[-1]).astype(np.float64), compute_uv=False)[0]
    assert abs(top - 1.0) < 1e-3
    # ... and the layer computes with exactly W / sigma(W, stored u).
    np.testing.assert_allclose(eff, w0 / _sigma_at(w0.reshape(-1, w0.shape[-1]).astype(np.float64), _u(sn)), rtol=1e-5, atol=1e-6)


def _textbook_gradient(w, b, x, c, u, v):
    """d/dW of sum(c * (x @ (W / (v^T W u)) + b)) with u, v constants, by autodiff of the formula."""
    w_var = tf.Variable(w.astype(np.float64))
    with tf.GradientTape() as tape:
        sigma = tf.tensordot(tf.constant(v), tf.linalg.matvec(w_var, tf.constant(u)), 1)
        y = tf.constant(x, tf.float64) @ (w_var / sigma) + b
        loss = tf.reduce_sum(tf.constant(c, tf.float64) * y)
    return tape.gradient(loss, w_var).numpy(), y.numpy()


def test_gradient_flows_through_sigma_as_in_the_paper():
    rng = np.random.default_rng(1)
    dense = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(seed=2), bias_initializer=keras.initializers.RandomNormal(seed=3))
    sn = SpectralNormalization(dense, seed=4)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    c = rng.normal(size=(4, 3)).astype(np.float32)
    sn(x)
    w, b = dense.kernel.numpy().astype(np.float64), dense.bias.numpy().astype(np.float64)

    # training=True: one power step from the stored u, then W / (v^T W u_new).
    u_new, v = _power_step(w, _u(sn))
    expected_grad, expected_y = _textbook_gradient(w, b, x, c, u_new, v)
    with tf.GradientTape() as tape:
        y = sn(x, training=True)
        loss = tf.reduce_sum(c * y)
    grad = tape.gradient(loss, dense.kernel).numpy()
    np.testing.assert_allclose(y.numpy(), expected_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_u(sn), u_new, rtol=1e-5, atol=1e-7)
    # The sigma term matters: without it the gradient would be x^T c / sigma.
    sigma = float(v @ w @ u_new)
    assert np.abs(grad - x.T @ c / sigma).max() > 1e-2

    # training=False: the stored u, not advanced; v = W u / |W u|.
    u = _u(sn)
    expected_grad, expected_y = _textbook_gradient(w, b, x, c, u, _unit(w @ u))
    with tf.GradientTape() as tape:
        y = sn(x, training=False)
        loss = tf.reduce_sum(c * y)
    np.testing.assert_allclose(tape.gradient(loss, dense.kernel).numpy(), expected_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), expected_y, rtol=1e-5, atol=1e-6)


def test_inference_uses_the_stored_u_and_leaves_it_alone():
    dense = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=5), bias_initializer="ones")
    sn = SpectralNormalization(dense, seed=6)
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(np.float32)
    sn(x)
    for _ in range(2):  # leave u part-way through the power iteration, so sigma(u) != sigma(W)
        sn(x, training=True)
    u, w = _u(sn), dense.kernel.numpy().astype(np.float64)
    sigma_u = _sigma_at(w, u)
    assert abs(sigma_u - np.linalg.svd(w, compute_uv=False)[0]) > 1e-6
    for training in (False, None):
        y = sn(x, training=training).numpy()
        np.testing.assert_allclose(y, x @ (w / sigma_u) + 1.0, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(_u(sn), u)
    np.testing.assert_array_equal(dense.kernel.numpy(), w.astype(np.float32))


def test_u_is_reproducible_and_updated_in_compiled_and_xla_calls():
    def build():
        keras.utils.set_random_seed(7)
        sn = SpectralNormalization(keras.layers.Dense(3))
        sn.build((None, 5))
        return sn

    a, b = build(), build()
    np.testing.assert_array_equal(_u(a), _u(b))  # keras.utils.set_random_seed fixes the initial u
    x = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    w = a.layer.kernel.numpy().astype(np.float64)
    expected_u, _ = _power_step(w, _u(a))
    eager = a(x, training=True).numpy()
    compiled = tf.function(lambda t: b(t, training=True), jit_compile=True)(x).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_u(b), expected_u, rtol=1e-5, atol=1e-7)


def test_mixed_precision_computes_sigma_in_float32():
    dense = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0, seed=8), dtype="mixed_float16")
    sn = SpectralNormalization(dense, seed=9, dtype="mixed_float16")
    x = np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32)
    sn(x)
    w = dense.kernel.numpy().astype(np.float64)
    expected_u, v = _power_step(w, _u(sn))
    y = sn(x, training=True)
    assert y.dtype == "float16" and sn.u.dtype == "float32" and dense.kernel.dtype == "float32"
    # float16 arithmetic would be off by ~1e-3; the power step and sigma are float32.
    np.testing.assert_allclose(_u(sn), expected_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y.numpy().astype(np.float64), x @ (w / (v @ w @ expected_u)), rtol=2e-3, atol=2e-3)


def test_serializes_and_saves_u_with_the_model(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, SpectralNormalization(keras.layers.Dense(2), seed=3)(inp))
    x = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    model(x, training=True)  # moves u away from its initial value
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    sn, sn2 = model.layers[-1], loaded.layers[-1]
    assert type(sn2) is SpectralNormalization and sn2.get_config()["seed"] == 3
    np.testing.assert_array_equal(_u(sn2), _u(sn))
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())


def _dcgan_trainer(update="alternating"):
    raw = {
        "model": {"family": "dcgan", "latent_dim": 8, "g_widths": [8, 4], "d_widths": [4], "dropout": 0.0, "d_norm": "spectral"},
        "data": {"loader": "mnist", "batch_size": 8},
        "train": {"update": update},
    }
    cfg = validate(raw)
    model = build_model(cfg, (28, 28, 1), 10)
    return GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                      LOSSES.get(cfg["loss"]["name"]), 8, seed=0, options=TrainOptions.from_config(cfg))


def test_a_generator_step_leaves_d_weights_unchanged():
    trainer = _dcgan_trainer()
    D, G = trainer.discriminator, trainer.generator
    assert any(isinstance(l, SpectralNormalization) for l in D.layers)
    d0 = [v.numpy().copy() for v in D.trainable_variables]
    g0 = [v.numpy().copy() for v in G.trainable_variables]
    latent = trainer.model.sample_latent(trainer.rng, 8)
    real = tf.random.stateless_uniform([8, 28, 28, 1], seed=[1, 2], minval=-1, maxval=1)
    trainer.update("generator", {"image": real, "label": tf.zeros([8], tf.int32)}, latent, trainer.rng.make_seeds(1)[:, 0])
    for before, v in zip(d0, D.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), before, err_msg=v.path)
    assert any(not np.array_equal(before, v.numpy()) for before, v in zip(g0, G.trainable_variables))  # G did move


def test_u_is_checkpointed_and_restored(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir, steps=2)
    cfg["model"]["d_norm"] = "spectral"
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    prefix = find_checkpoint(run)

    def fresh():
        return build_model(validate(cfg), (28, 28, 1), 10).discriminator

    D = fresh()
    wrappers = [l for l in D.layers if isinstance(l, SpectralNormalization)]
    assert len(wrappers) == 2  # one conv, the head
    index = {id(v): i for i, v in enumerate(D.variables)}
    stored = dict(tf.train.list_variables(prefix))
    reader = tf.train.load_checkpoint(prefix)
    saved = []
    for sn in wrappers:
        key = f"discriminator/{index[id(sn.u)]:04d}/.ATTRIBUTES/VARIABLE_VALUE"
        assert stored.get(key) == list(sn.u.shape), key
        saved.append(reader.get_tensor(key))
        assert np.linalg.norm(saved[-1]) == pytest.approx(1.0, rel=1e-5)  # a power-iteration vector ...
        assert np.abs(saved[-1] - sn.u.numpy()).max() > 1e-3  # ... that training moved from the initial u
    np.testing.assert_array_equal(fresh().layers[1].u.numpy(), D.layers[1].u.numpy())  # the initial u is reproducible
    restore(make_checkpoint(tf.Variable(0, dtype=tf.int64), discriminator=D.variables), prefix)
    for sn, value in zip(wrappers, saved):
        np.testing.assert_array_equal(sn.u.numpy(), value)
    # The restored D computes what an unnormalised D with kernels W / sigma(W, u) computes, both
    # read from the checkpoint: inference uses the stored u.
    plain = build_model(validate({**cfg, "model": {**cfg["model"], "d_norm": "none"}}), (28, 28, 1), 10).discriminator
    kernels = {id(_kernel_of(sn.layer)): sn for sn in wrappers}
    for v, target in zip(D.trainable_variables, plain.trainable_variables):
        value = v.numpy().astype(np.float64)
        if id(v) in kernels:
            w_mat = value.reshape(-1, value.shape[-1])
            value = value / _sigma_at(w_mat, _u(kernels[id(v)]))
        target.assign(value.astype(np.float32))
    x = tf.random.stateless_uniform([3, 28, 28, 1], seed=[3, 4], minval=-1, maxval=1)
    np.testing.assert_allclose(D(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


# Tiny networks with minibatch discrimination on, so its T tensor is present (and must stay unwrapped).
FAMILIES = {
    "gan": {"g_widths": [8], "d_widths": [8, 4]},
    "cgan": {"g_widths": [8], "d_widths": [8]},
    "dcgan": {"g_widths": [8, 4], "d_widths": [4, 4]},
    **MNIST_PARAMS,
}
CONV = {"g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]}
# Every family that offers d_norm: spectral (sgan_mlp's D is weight-normalised instead, as its reference).
SPECTRAL_FAMILIES = [f for f in NOISE_FAMILIES if "d_norm" in MODELS.entry(f).schema and "spectral" in MODELS.entry(f).schema["d_norm"].choices]


def test_the_families_without_spectral_norm_are_only_the_weight_normalised_one():
    assert sorted(set(NOISE_FAMILIES) - set(SPECTRAL_FAMILIES)) == ["sgan_mlp"]


@pytest.mark.parametrize("family", SPECTRAL_FAMILIES)
def test_every_weight_layer_of_d_is_spectrally_normalised(family):
    params = {"family": family, **FAMILIES.get(family, CONV), "d_norm": "spectral", "minibatch_kernels": 3, "minibatch_kernel_dim": 2}
    cfg = validate({"model": params, "data": {"loader": "mnist", "batch_size": 4}})
    D = build_model(cfg, (28, 28, 1), 10).discriminator
    wrapped, minibatch = [], []
    for layer in D.layers:
        if isinstance(layer, SpectralNormalization):
            wrapped.append(layer.layer)
        elif isinstance(layer, MinibatchDiscrimination):
            minibatch.append(layer)  # T is a tensor of kernels compared across the batch, not a linear map: left as is
        else:
            assert not layer.weights, f"{family}: {layer.name} ({type(layer).__name__}) has weights but no spectral normalisation"
    assert len(minibatch) == 1
    kinds = {type(l).__name__ for l in wrapped}
    assert "Dense" in kinds
    assert ("Conv2D" in kinds) == (family not in ("gan", "cgan"))
    assert ("Embedding" in kinds) == (family in ("cgan", "cdcgan"))  # the label embedding D multiplies the image by
    # Only u is added: D's trainable weights are those of the unnormalised network.
    plain = build_model(validate({"model": {**params, "d_norm": "none"}, "data": {"loader": "mnist", "batch_size": 4}}), (28, 28, 1), 10).discriminator
    assert [tuple(v.shape) for v in D.trainable_weights] == [tuple(v.shape) for v in plain.trainable_weights]
    assert [tuple(v.shape) for v in D.non_trainable_weights] == [(_kernel_of(l).shape[-1],) for l in wrapped]


def _kernel_of(layer):
    return layer.embeddings if isinstance(layer, keras.layers.Embedding) else layer.kernel


def test_layer_hwc_normalises_each_sample_over_height_width_and_channels():
    def norm_layers(d_norm):
        cfg = validate({"model": {"family": "dcgan", "g_widths": [8, 4], "d_widths": [4, 6], "d_norm": d_norm}, "data": {"loader": "mnist", "batch_size": 4}})
        D = build_model(cfg, (28, 28, 1), 0).discriminator
        return [l for l in D.layers if "Normalization" in type(l).__name__]

    hwc = norm_layers("layer_hwc")
    assert len(hwc) == 2  # one after each conv
    rng = np.random.default_rng(6)
    for layer in hwc:
        shape = (3, *layer.input.shape[1:])
        x = (rng.normal(size=shape) * rng.uniform(0.5, 3, size=(3, 1, 1, shape[-1])) + rng.normal(size=(3, 1, 1, shape[-1]))).astype(np.float32)
        y = layer(x).numpy().astype(np.float64)
        np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
        np.testing.assert_allclose(y.var(axis=(1, 2, 3)), 1.0, rtol=1e-4)
        # ... with one scale and offset per channel, as the official WGAN-GP Layernorm (tflib).
        assert [tuple(w.shape) for w in layer.trainable_weights] == [(shape[-1],), (shape[-1],)]
        # Per sample, not per pixel: each pixel's channels keep their own mean.
        assert np.abs(y.mean(axis=-1)).max() > 0.1
    # `layer`, in contrast, normalises each pixel over its channels.
    per_pixel = norm_layers("layer")[0]
    x = rng.normal(size=(2, *per_pixel.input.shape[1:])).astype(np.float32) * 3 + 1
    np.testing.assert_allclose(per_pixel(x).numpy().mean(axis=-1), 0.0, atol=1e-5)


MIRRORED = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from gantrain.models.layers import SpectralNormalization

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    sn = SpectralNormalization(keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0, seed=1)), seed=2)
    sn.build((None, 4))
u0, w = sn.u.numpy().tolist(), sn.layer.kernel.numpy().tolist()
x = tf.constant(np.random.default_rng(0).normal(size=(2, 4)), tf.float32)

def replica_step(x):
    # each replica sees its own row of the batch
    rid = tf.distribute.get_replica_context().replica_id_in_sync_group
    return sn(x[rid:rid + 1], training=True)

y = strategy.run(tf.function(replica_step), args=(x,))
print(json.dumps({"u0": u0, "w": w, "x": x.numpy().tolist(), "u": [v.numpy().tolist() for v in sn.u.value.values],
                  "y": [t.numpy().tolist() for t in strategy.experimental_local_results(y)]}))
"""


def test_u_stays_identical_across_mirrored_replicas():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", MIRRORED], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    w, x = np.array(r["w"]), np.array(r["x"])
    expected_u, v = _power_step(w, np.array(r["u0"]))
    assert len(r["u"]) == 2 and r["u"][0] == r["u"][1]
    np.testing.assert_allclose(r["u"][0], expected_u, rtol=1e-5, atol=1e-7)
    for rid, y in enumerate(r["y"]):
        np.testing.assert_allclose(y, x[rid:rid + 1] @ (w / (v @ w @ expected_u)), rtol=1e-5, atol=1e-6)
