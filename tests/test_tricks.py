"""Losses x penalties x stabilisation switches (issue 4)."""

import math

import numpy as np
import pytest
import tensorflow as tf

import gantrain
from gantrain import losses
from gantrain.augment import diff_augment
from gantrain.checkpoint import find_checkpoint
from gantrain.config import validate
from gantrain.data import ImageSource, make_pipeline
from gantrain.data.labels import labeled_subset
from gantrain.errors import UserError
from gantrain.models.layers import MinibatchDiscrimination
from gantrain.optimizers import build_optimizer
from gantrain.registry import LOSSES
from gantrain.run import build_model
from gantrain.trainer import GANTrainer, TrainOptions, UpdateContext
from tests.conftest import MNIST_PARAMS, NOISE_FAMILIES, image_and_label, tiny_config

REAL, FAKE = [2.0, -1.0], [0.5, -3.0]


def sp(x):
    return math.log1p(math.exp(x))


def bce(x, t):  # by hand: -(t log s(x) + (1-t) log(1-s(x)))
    s = 1 / (1 + math.exp(-x))
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


# loss name -> (expected d_loss, expected g_loss) on REAL/FAKE, computed by hand.
HAND = {
    "non_saturating": ((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, (sp(-0.5) + sp(3)) / 2),
    "minimax": ((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, -(sp(0.5) + sp(-3)) / 2),
    "least_squares": (0.5 * ((2 - 1) ** 2 + (-1 - 1) ** 2) / 2 + 0.5 * (0.5**2 + 3**2) / 2, 0.5 * ((0.5 - 1) ** 2 + (-3 - 1) ** 2) / 2),
    "wasserstein": ((0.5 - 3) / 2 - (2 - 1) / 2, -(0.5 - 3) / 2),
    "hinge": ((max(0, 1 - 2) + max(0, 1 + 1)) / 2 + (max(0, 1 + 0.5) + max(0, 1 - 3)) / 2, -(0.5 - 3) / 2),
}


def test_every_registered_loss_has_a_hand_computed_case():
    assert set(HAND) == set(LOSSES.names())


@pytest.mark.parametrize("name", sorted(HAND))
def test_loss_pairs_by_hand(name):
    pair = LOSSES.get(name)
    d, g = HAND[name]
    assert float(pair.d_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(d, rel=1e-6)
    assert float(pair.g_loss(tf.constant(FAKE))) == pytest.approx(g, rel=1e-6)


def test_soft_targets_by_hand():
    # One-sided smoothing (real 0.9) and two-sided (fake 0.1) with per-example targets.
    d = losses.bce_d_loss(tf.constant(REAL), tf.constant(FAKE), 0.9, tf.constant([0.1, 0.2]))
    expected = (bce(2, 0.9) + bce(-1, 0.9)) / 2 + (bce(0.5, 0.1) + bce(-3, 0.2)) / 2
    assert float(d) == pytest.approx(expected, rel=1e-6)
    assert float(losses.non_saturating_g_loss(tf.constant(FAKE), 0.9)) == pytest.approx((bce(0.5, 0.9) + bce(-3, 0.9)) / 2, rel=1e-6)
    ls = losses.least_squares_d_loss(tf.constant(REAL), tf.constant(FAKE), 0.9, 0.1)
    assert float(ls) == pytest.approx(0.5 * ((2 - 0.9) ** 2 + (-1 - 0.9) ** 2) / 2 + 0.5 * ((0.5 - 0.1) ** 2 + (-3 - 0.1) ** 2) / 2, rel=1e-6)


# A non-linear critic, f(x) = sum_p tanh(w_p x_p) + (sum_p v_p x_p)^2, whose input gradient
# w * (1 - tanh^2(w x)) + 2 (v.x) v changes from point to point: a penalty taken at the wrong
# points (one alpha for the whole batch, R1 on fakes) gives another value.
_W = np.random.default_rng(0).normal(size=(4, 4, 1)).astype(np.float32)
_V = np.random.default_rng(1).normal(size=(4, 4, 1)).astype(np.float32) * 0.3


def _critic(x):
    return (tf.reduce_sum(tf.tanh(x * _W), axis=[1, 2, 3]) + tf.square(tf.reduce_sum(x * _V, axis=[1, 2, 3])))[:, None]


def _critic_grad(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    w, v = _W.astype(np.float64), _V.astype(np.float64)
    return w * (1 - np.tanh(w * x) ** 2) + 2 * (x * v).sum(axis=(1, 2, 3))[:, None, None, None] * v


def test_gradient_penalty_by_hand_for_a_non_linear_critic():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(5, 4, 4, 1)).astype(np.float32), rng.normal(size=(5, 4, 4, 1)).astype(np.float32)
    alpha = np.array([0.0, 0.25, 0.5, 0.9, 1.0], np.float32)  # one per sample; alpha weights the real image
    x_hat = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    norms = np.sqrt((_critic_grad(x_hat) ** 2).sum(axis=(1, 2, 3)))
    expected = ((norms - 1) ** 2).mean()
    gp = float(losses.gradient_penalty(_critic, tf.constant(real), tf.constant(fake), tf.constant(alpha)))
    assert gp == pytest.approx(expected, rel=1e-5)
    shared = alpha[0] * real + (1 - alpha[0]) * fake  # the defect a shared alpha would give
    assert abs(gp - ((np.sqrt((_critic_grad(shared) ** 2).sum(axis=(1, 2, 3))) - 1) ** 2).mean()) > 1e-2


def test_r1_penalty_by_hand_for_a_non_linear_critic():
    x = np.random.default_rng(3).normal(size=(3, 4, 4, 1)).astype(np.float32)
    expected = 0.5 * (_critic_grad(x) ** 2).sum(axis=(1, 2, 3)).mean()
    assert float(losses.r1_penalty(_critic, tf.constant(x))) == pytest.approx(expected, rel=1e-5)


def test_r1_through_the_trainer_is_taken_on_real_images():
    """The trainer's logged d_r1 is weight x R1 of D at the (pre-update) weights, on the real batch."""
    trainer, _ = _trainer(_raw("dcgan", loss={"name": "non_saturating", "penalty": "r1", "penalty_weight": 3.0}))
    source = _source()
    real, labels = image_and_label(next(iter(make_pipeline(source, 8, seed=0))))
    real = tf.cast(real, tf.float32)
    x = tf.Variable(real)
    with tf.GradientTape() as tape:
        scores = trainer.discriminator(x, training=True)
    grads = tape.gradient(scores, x).numpy().reshape(8, -1)
    expected = 3.0 * 0.5 * (grads.astype(np.float64) ** 2).sum(axis=1).mean()
    metrics = trainer.update("discriminator", {"image": real, "label": labels}, trainer.model.sample_latent(trainer.rng, 8), tf.constant([4, 5], tf.int64))
    assert float(metrics["d_r1"]) == pytest.approx(expected, rel=1e-4)


def test_gradient_penalty_is_finite_at_zero_gradient():
    w = tf.Variable(tf.zeros([4, 4, 1]))
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None]  # noqa: E731
    real, fake = tf.random.normal([3, 4, 4, 1]), tf.random.normal([3, 4, 4, 1])
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, real, fake, tf.random.uniform([3]))
    grad = tape.gradient(gp, w)
    assert float(gp) == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_feature_matching_loss_by_hand():
    real = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    fake = tf.constant([[0.0, 0.0], [2.0, 2.0]])
    assert float(losses.feature_matching_loss(real, fake)) == pytest.approx((2 - 1) ** 2 + (3 - 1) ** 2)


def _source(n=16, classes=4):
    rng = np.random.default_rng(0)
    return ImageSource(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n, dtype=np.int32) % classes, [str(k) for k in range(classes)])


def _trainer(raw: dict):
    cfg = validate(raw)
    source = _source()
    model = build_model(cfg, (28, 28, 1), source.num_classes)
    trainer = GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         LOSSES.get(cfg["loss"]["name"]), 8, seed=0, options=TrainOptions.from_config(cfg))
    it = iter(make_pipeline(source, 8, seed=0))
    labeled = iter(make_pipeline(labeled_subset(source), 8, seed=1)) if model.uses_labeled_stream else None
    return trainer, (lambda: trainer.train_step(it, labeled) if labeled else trainer.train_step(it))


TINY = {"dcgan": {"g_widths": [8, 4], "d_widths": [4], "dropout": 0.0}, "gan": {"g_widths": [8], "d_widths": [8]}, "cgan": {"g_widths": [8], "d_widths": [8]}, **MNIST_PARAMS}
CONV_TINY = {"g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8], "d_norm": "layer"}


def _raw(family, loss="non_saturating", **extra):
    model = {"family": family, **TINY.get(family, CONV_TINY)}
    raw = {"model": model, "data": {"loader": "mnist", "batch_size": 8}, "loss": loss if isinstance(loss, dict) else {"name": loss}}
    if raw["loss"]["name"] == "wasserstein":
        raw["loss"].setdefault("penalty", "gradient_penalty")
    for key, value in extra.items():
        section, _, sub = key.partition("__")
        raw.setdefault(section, {})
        if sub:
            raw[section][sub] = value
        else:
            raw[section] = value
    return raw


@pytest.fixture
def eager():
    # Tracing a tf.function costs seconds; one eager step of a tiny model runs the same maths in a
    # fraction of that, which keeps the 35-case family x loss contract fast.
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.parametrize("loss", sorted(HAND))
@pytest.mark.parametrize("family", NOISE_FAMILIES)
def test_contract_every_family_with_every_loss(family, loss, eager):
    raw = _raw(family, loss)
    raw["model"]["dropout"] = 0.0 if family in ("dcgan", "sgan") else raw["model"].get("dropout")
    raw["model"] = {k: v for k, v in raw["model"].items() if v is not None}
    trainer, step = _trainer(raw)
    G, D = trainer.generator.trainable_variables, trainer.discriminator.trainable_variables
    g0, d0 = [v.numpy().copy() for v in G], [v.numpy().copy() for v in D]
    metrics = step()
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    if loss == "wasserstein":
        assert "d_gradient_penalty" in metrics
    # Both networks learn: each has weights that moved.
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(g0, G)), "no generator weight changed"
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(d0, D)), "no discriminator weight changed"
    # Each update lowers the loss it minimises: on fixed inputs (batch, noise, penalty draws), the
    # loss after one small step is below the loss before it.
    source = _source()
    real, labels = image_and_label(next(iter(make_pipeline(source, 8, seed=0))))
    latent = trainer.model.sample_latent(tf.random.Generator.from_seed(9), 8)
    seed = tf.constant([3, 4], tf.int64)
    labeled = (next(iter(make_pipeline(labeled_subset(source), 8, seed=1))),) if trainer.model.uses_labeled_stream else ()
    before = float(trainer.update("discriminator", {"image": real, "label": labels}, latent, seed, *labeled)["d_loss"])
    after = float(trainer.update("discriminator", {"image": real, "label": labels}, latent, seed, *labeled)["d_loss"])
    assert after < before, f"d_loss {before} -> {after}"
    before = float(trainer.update("generator", {"image": real, "label": labels}, latent, seed)["g_loss"])
    after = float(trainer.update("generator", {"image": real, "label": labels}, latent, seed)["g_loss"])
    assert after < before, f"g_loss {before} -> {after}"


def test_wgan_clipping_keeps_every_critic_weight_in_range():
    raw = _raw("dcgan", optimizer={"discriminator": {"name": "rmsprop", "learning_rate": 0.5, "clip_value": 0.01}})
    raw["loss"] = {"name": "wasserstein"}
    trainer, step = _trainer(raw)
    step()
    weights = np.concatenate([v.numpy().ravel() for v in trainer.discriminator.trainable_variables])
    assert weights.max() <= 0.01 + 1e-7 and weights.min() >= -0.01 - 1e-7
    assert np.isclose(np.abs(weights).max(), 0.01)  # the big learning rate pushed some to the bound


def test_ema_moves_towards_generator_and_is_checkpointed(tmp_path, mnist_dir):
    trainer, step = _trainer(_raw("dcgan", train={"ema_decay": 0.5}))
    ema0 = [v.numpy().copy() for v in trainer.ema.model.trainable_variables]
    step()
    g = [v.numpy() for v in trainer.generator.trainable_variables]
    ema1 = [v.numpy() for v in trainer.ema.model.trainable_variables]
    for e0, e1, w in zip(ema0, ema1, g):
        # The warm-up decay of the first update, min(0.5, (1 + 0) / (10 + 0)) = 0.1 (tests/test_ema.py).
        np.testing.assert_allclose(e1, 0.1 * e0 + 0.9 * w, rtol=1e-5, atol=1e-6)
    assert trainer.generator.non_trainable_variables  # the tutorial DCGAN's G has batch norm
    for e, w in zip(trainer.ema.model.non_trainable_variables, trainer.generator.non_trainable_variables):
        np.testing.assert_array_equal(e.numpy(), w.numpy())  # batch-norm statistics are copied
    assert int(trainer.ema.num_updates.numpy()) == 1
    # In a real run: the EMA weights are in the checkpoint and sampling uses them.
    cfg = tiny_config(mnist_dir)
    cfg["train"]["ema_decay"] = 0.9
    run = gantrain.fit(cfg, overrides=["train.steps=2"], run_dir=tmp_path / "ema", progress=False)
    names = [n for n, _ in tf.train.list_variables(find_checkpoint(run))]
    assert any(n.startswith("ema_generator/") for n in names)
    reader = tf.train.load_checkpoint(find_checkpoint(run))
    from gantrain.sampling import load_model

    model, _, _ = load_model(run)
    assert model.weights_source == "ema_generator"
    first = model.generator.variables[0]
    np.testing.assert_array_equal(first.numpy(), reader.get_tensor("ema_generator/0000/.ATTRIBUTES/VARIABLE_VALUE"))


def test_historical_averaging_penalty_and_state():
    trainer, step = _trainer(_raw("dcgan", train={"historical_averaging": {"generator": 0.1, "discriminator": 0.1}}))
    assert float(trainer.g_history.penalty()) == 0.0  # the mean starts at the initial weights
    metrics = step()
    assert float(trainer.g_history.count.numpy()) == 2.0
    assert float(trainer.g_history.penalty()) > 0.0 and "g_hist_avg" in metrics and "d_hist_avg" in metrics
    g = trainer.generator.trainable_variables[0].numpy()
    mean = trainer.g_history.means[0].numpy()
    assert not np.array_equal(g, mean)


def test_feature_matching_uses_d_features():
    trainer, step = _trainer(_raw("dcgan", loss={"name": "non_saturating", "feature_matching": "replace", "feature_matching_weight": 2.0}))
    out = trainer.model.discriminate(tf.zeros([3, 28, 28, 1]), None, training=False)
    assert out["features"].shape == (3, 14 * 14 * 4)  # the flattened input of D's head (one stride-2 conv of width 4)
    metrics = step()
    assert "g_feature_matching" in metrics
    assert float(metrics["g_loss"]) == pytest.approx(float(metrics["g_feature_matching"]), rel=1e-6)  # replace: G's loss is the FM term only
    trainer, step = _trainer(_raw("acgan", loss={"name": "non_saturating", "feature_matching": "add"}))
    metrics = step()
    assert float(metrics["g_loss"]) == pytest.approx(float(metrics["g_adv_loss"] + metrics["g_feature_matching"] + metrics["g_class_loss"]), rel=1e-5)


def test_minibatch_discrimination_layer():
    layer = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    same = tf.ones([4, 5])
    out = layer(same).numpy()
    assert out.shape == (4, 5 + 3)
    np.testing.assert_allclose(out[:, 5:], 3.0, rtol=1e-6)  # 3 identical neighbours, distance 0 -> exp(0) each
    spread = tf.constant(np.arange(20, dtype=np.float32).reshape(4, 5) * 100)
    assert np.all(layer(spread).numpy()[:, 5:] < 1e-3)  # far apart -> nothing in common
    model = build_model(validate(_raw("dcgan", model={"family": "dcgan", **TINY["dcgan"], "minibatch_kernels": 6})), (28, 28, 1), 0)
    assert any(isinstance(l, MinibatchDiscrimination) for l in model.discriminator.layers)
    assert model.discriminator(tf.zeros([2, 28, 28, 1])).shape == (2, 1)


def _targets(trainer, batch, seed):
    """The (real, fake) targets D's update reads for a batch: the trainer's switch, outside any step."""
    return UpdateContext(trainer.options, {}, None, {}, seed).targets(batch, seed)


def test_noisy_and_smoothed_targets_as_configured():
    trainer, _ = _trainer(_raw("dcgan", loss={"name": "non_saturating", "real_target": 0.9}))
    seed = tf.constant([1, 2], tf.int64)
    assert _targets(trainer, 4, seed) == (0.9, 0.0)
    trainer, _ = _trainer(_raw("dcgan", loss={"name": "non_saturating", "target_noise": 0.2}))
    real, fake = _targets(trainer, 1000, seed)
    real, fake = real.numpy(), fake.numpy()
    assert real.min() >= 0.8 and real.max() <= 1.0 and fake.min() >= 0.0 and fake.max() <= 0.2
    assert real.std() > 0.03 and fake.std() > 0.03  # really random, per example
    assert np.corrcoef(real, fake)[0, 1] < 0.2  # real and fake targets are drawn independently
    other = _targets(trainer, 1000, tf.constant([1, 3], tf.int64))[0].numpy()
    assert not np.allclose(other, real)  # a new seed (a new step) draws new targets


@pytest.mark.parametrize("norm", ["instance", "spectral", "layer", "batch"])
@pytest.mark.parametrize("family", ["dcgan", "cdcgan", "acgan"])
def test_norm_choices_build_and_train(family, norm):
    model = {"family": family, **TINY.get(family, CONV_TINY), "d_norm": norm}
    if family != "dcgan":
        model["g_norm"] = "instance" if norm == "instance" else "batch"
    trainer, step = _trainer({"model": model, "data": {"loader": "mnist", "batch_size": 8}})
    kinds = {type(l).__name__ for l in trainer.discriminator.layers}
    expected = {"instance": "GroupNormalization", "spectral": "SpectralNormalization", "layer": "LayerNormalization", "batch": "BatchNormalization"}[norm]
    assert expected in kinds
    assert all(np.isfinite(float(v)) for v in step().values())


def test_diffaugment_keeps_shape_and_gradients():
    # Values are checked against the official ops in tests/test_augment.py; colour jitter is not
    # clipped there, so outputs may leave [-1, 1].
    x = tf.Variable(tf.random.uniform([4, 16, 16, 3], -1, 1))
    seed = tf.constant([3, 4], tf.int64)
    with tf.GradientTape() as tape:
        y = diff_augment(x, ["color", "translation", "cutout"], seed)
        loss = tf.reduce_sum(y)
    assert y.shape == x.shape
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    assert not np.allclose(y.numpy(), x.numpy())
    np.testing.assert_array_equal(diff_augment(x, ["translation", "cutout"], seed).numpy(), diff_augment(x, ["translation", "cutout"], seed).numpy())
    cut = diff_augment(tf.ones([2, 8, 8, 1]), ["cutout"], seed).numpy()
    assert (cut == 0).sum(axis=(1, 2, 3)).max() <= 16 and (cut == 0).any()  # a square of at most half the side (4 x 4 on 8 x 8)
    trainer, step = _trainer(_raw("dcgan", train={"diffaugment": ["translation", "cutout", "color"]}))
    assert all(np.isfinite(float(v)) for v in step().values())


@pytest.mark.parametrize("raw_update, needle", [
    ({"optimizer": {"discriminator": {"clip_value": 0.01}}}, "clipping only cripples it"),
    ({"loss": {"name": "wasserstein"}}, "needs a Lipschitz constraint"),
    ({"optimizer": {"generator": {"clip_value": 0.01}}}, "not the generator"),
    ({"loss": {"name": "hinge", "real_target": 0.9}}, "has no targets"),
    ({"loss": {"name": "non_saturating", "real_target": 0.1, "fake_target": 0.2}}, "must be above loss.fake_target"),
    ({"model": {"family": "acgan"}, "loss": {"name": "wasserstein", "penalty": "gradient_penalty"}}, "batch normalisation in D"),
    ({"model": {"family": "acgan"}, "loss": {"name": "hinge", "penalty": "r1"}}, "R1 penalty is per sample, but batch normalisation"),
    ({"model": {"family": "dcgan", "dropout": 0.0, "minibatch_kernels": 4}, "loss": {"name": "wasserstein", "penalty": "gradient_penalty"}},
     "minibatch discrimination makes D's output for one image depend on the rest of its batch"),
    ({"model": {"family": "dcgan", "dropout": 0.3}, "loss": {"name": "wasserstein", "penalty": "gradient_penalty"}}, "with dropout every pass is another random"),
    ({"model": {"family": "sgan"}, "loss": {"name": "non_saturating", "penalty": "r1"}}, "model.dropout: the R1 penalty"),
    ({"train": {"diffaugment": ["rotate"]}}, "'rotate' is not one of"),
    ({"loss": {"name": "minimax", "g_target": 0.9}}, "has no target"),
])
def test_nonsensical_combinations_are_refused_with_a_reason(raw_update, needle):
    raw = {"model": {"family": "dcgan"}, "data": {"loader": "mnist"}}
    for key, value in raw_update.items():
        raw[key] = {**raw.get(key, {}), **value}
    with pytest.raises(UserError, match=needle):
        validate(raw)


def test_mixed_precision_with_diffaugment_and_infogan_without_continuous_codes(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir, precision="mixed_float16", diffaugment=["color", "translation"])
    gantrain.fit(cfg, overrides=["train.steps=1"], run_dir=tmp_path / "mp", progress=False)
    trainer, step = _trainer(_raw("infogan", model={"family": "infogan", **CONV_TINY, "continuous_codes": 0}))
    assert all(np.isfinite(float(v)) for v in step().values())


def test_labeled_per_class_only_for_semi_supervised(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir)
    cfg["data"]["labeled_per_class"] = 5
    with pytest.raises(UserError, match="only semi-supervised families"):
        gantrain.fit(cfg, run_dir=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
