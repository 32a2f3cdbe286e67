import numpy as np
import tensorflow as tf

from gantrain.config import validate
from gantrain.data import load_dataset, make_pipeline
from gantrain.losses import get_loss
from gantrain.optimizers import build_optimizer
from gantrain.run import build_model
from gantrain.trainer import GANTrainer, Trainer, TrainOptions
from tests.conftest import image_and_label, tiny_config


def _trainer(mnist_dir, d_steps=1):
    cfg = validate(tiny_config(mnist_dir, d_steps=d_steps))
    nets = build_model(cfg, (28, 28, 1), 10)
    trainer = GANTrainer(nets, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         get_loss("non_saturating"), 16, seed=1, d_steps=d_steps)
    source = load_dataset(cfg["data"])
    return trainer, iter(make_pipeline(source, 16, seed=1))


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_d_update_changes_only_discriminator_weights(mnist_dir):
    trainer, it = _trainer(mnist_dir)
    G, D = trainer.generator, trainer.discriminator
    g0, d0 = _snapshot(G.trainable_variables), _snapshot(D.trainable_variables)
    real, labels = image_and_label(next(it))
    trainer.update("discriminator", {"image": real, "label": labels}, trainer.model.sample_latent(trainer.rng, 16), tf.constant([1, 2], tf.int64))
    assert not any(_changed(g0, G.trainable_variables)), "a D step must not touch G's weights"
    assert all(_changed(d0, D.trainable_variables)), "every D weight should move after a D step"


def test_g_update_changes_only_generator_weights(mnist_dir):
    trainer, _ = _trainer(mnist_dir)  # noqa: F841 (the iterator feeds the G step its real batch)
    G, D = trainer.generator, trainer.discriminator
    g0, d0 = _snapshot(G.trainable_variables), _snapshot(D.trainable_variables)
    real, labels = image_and_label(next(_))
    trainer.update("generator", {"image": real, "label": labels}, trainer.model.sample_latent(trainer.rng, 16), tf.constant([1, 2], tf.int64))
    assert not any(_changed(d0, D.trainable_variables)), "a G step must not touch D's weights"
    assert all(_changed(g0, G.trainable_variables)), "every G weight should move after a G step"


def test_train_step_runs_d_steps_discriminator_updates(mnist_dir):
    trainer, it = _trainer(mnist_dir, d_steps=3)
    out = trainer.train_step(it)
    assert set(out) == {"d_loss", "d_real", "d_fake", "g_loss"}
    assert int(trainer.d_optimizer.iterations.numpy()) == 3
    assert int(trainer.g_optimizer.iterations.numpy()) == 1
    assert all(np.isfinite(float(v)) for v in out.values())


def _twin(mnist_dir, **train):
    return _twin_cfg(tiny_config(mnist_dir, **train))


def test_simultaneous_update_equals_d_step_and_g_step_on_pre_update_weights(mnist_dir):
    joint, d_only, g_only = _twin(mnist_dir), _twin(mnist_dir), _twin(mnist_dir)
    assert joint.options.simultaneous  # auto with d_steps 1
    assert not _twin(mnist_dir, d_steps=2).options.simultaneous
    real, labels = image_and_label(next(iter(make_pipeline(load_dataset(validate(tiny_config(mnist_dir))["data"]), 16, seed=0))))
    latent = joint.model.sample_latent(tf.random.Generator.from_seed(5), 16)
    seed = tf.constant([1, 2], tf.int64)
    joint.joint_update({"image": real, "label": labels}, None, latent, seed)
    d_only.update("discriminator", {"image": real, "label": labels}, latent, seed)
    g_only.update("generator", {"image": real, "label": labels}, latent, seed)  # D untouched: the pre-update weights
    for a, b in zip(joint.discriminator.trainable_variables, d_only.discriminator.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(joint.generator.trainable_variables, g_only.generator.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_xla_by_default_only_for_networks_without_convolutions(mnist_dir, tmp_path, monkeypatch):
    import gantrain.run
    from gantrain.run import auto_jit, fit

    used = []

    class Recording(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            used.append(self.options.jit_compile)

    monkeypatch.setattr(gantrain.run, "Trainer", Recording)

    default = tf.distribute.get_strategy()
    decisions = {}
    for family, extra in [("gan", {"g_widths": [8], "d_widths": [8], "d_norm": "spectral"}), ("cgan", {}), ("dcgan", {}), ("cdcgan", {})]:
        cfg = validate({"model": {"family": family, **extra}, "data": {"loader": "mnist", "root": str(mnist_dir)}})
        decisions[family] = auto_jit(build_model(cfg, (28, 28, 1), 10), default)
    assert decisions == {"gan": True, "cgan": True, "dcgan": False, "cdcgan": False}
    # A fit of the MLP GAN with the default (null) setting trains under XLA and keeps null in its config.
    cfg = tiny_config(mnist_dir, steps=2)
    cfg["model"] = {"family": "gan", "latent_dim": 4, "g_widths": [8], "d_widths": [8]}
    run = fit(cfg, run_dir=tmp_path / "run", progress=False)
    assert (run / "checkpoints" / "ckpt-2.index").is_file()
    assert "jit_compile: null" in (run / "config.yaml").read_text()
    cfg["train"]["jit_compile"] = False  # an explicit setting wins
    fit(cfg, run_dir=tmp_path / "run2", progress=False)
    assert used == [True, False]


def test_alternating_with_reused_noise_gives_g_the_d_steps_latent(mnist_dir):
    """train.g_noise: reuse (Keras-GAN's ACGAN): the G step sees the noise the D step used."""
    cfg = tiny_config(mnist_dir, update="alternating", g_noise="reuse")
    stepped, manual = _twin_cfg(cfg), _twin_cfg(cfg)
    source = load_dataset(validate(tiny_config(mnist_dir))["data"])
    stepped.train_step(iter(make_pipeline(source, 16, seed=0)))
    # The same draws, by hand: latent, the D step's seed, then only the G step's seed.
    real, labels = image_and_label(next(iter(make_pipeline(source, 16, seed=0))))
    latent = manual.model.sample_latent(manual.rng, 16)
    manual.update("discriminator", {"image": real, "label": labels}, latent, manual.rng.make_seeds(1)[:, 0])
    manual.update("generator", {"image": real, "label": labels}, latent, manual.rng.make_seeds(1)[:, 0])
    for a, b in zip(stepped.generator.trainable_variables, manual.generator.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # With fresh noise (the default) the G step draws a new latent, so the result differs.
    fresh = _twin_cfg(tiny_config(mnist_dir, update="alternating"))
    fresh.train_step(iter(make_pipeline(source, 16, seed=0)))
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(fresh.generator.trainable_variables, manual.generator.trainable_variables))


def test_simultaneous_differs_from_separate_steps_when_d_has_dropout(mnist_dir):
    """The equivalence above needs a deterministic D: with dropout, one shared mask is not two."""
    joint, g_only = _twin_cfg(tiny_config(mnist_dir), dropout=0.5), _twin_cfg(tiny_config(mnist_dir), dropout=0.5)
    real, labels = image_and_label(next(iter(make_pipeline(load_dataset(validate(tiny_config(mnist_dir))["data"]), 16, seed=0))))
    latent = joint.model.sample_latent(tf.random.Generator.from_seed(5), 16)
    seed = tf.constant([1, 2], tf.int64)
    joint.joint_update({"image": real, "label": labels}, None, latent, seed)
    g_only.update("generator", {"image": real, "label": labels}, latent, seed)
    assert any(not np.allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6) for a, b in zip(joint.generator.trainable_variables, g_only.generator.trainable_variables))


def _twin_cfg(raw, dropout: float = 0.0):
    """A tiny DCGAN trainer; seeded, so every call builds identical weights."""
    cfg = validate({**raw, "model": {"family": "dcgan", "latent_dim": 8, "g_widths": [8, 4], "d_widths": [4], "dropout": dropout}})
    model = build_model(cfg, (28, 28, 1), 10)
    return GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                      get_loss("non_saturating"), 16, seed=1, options=TrainOptions.from_config(cfg))
