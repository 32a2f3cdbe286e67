"""EMA of the generator: the num_updates warm-up of tf.train.ExponentialMovingAverage, copied state.

The reference is an independent numpy recurrence: ``ema = d_t * ema + (1 - d_t) * w`` with
``d_t = min(decay, (1 + t) / (10 + t))``, ``t`` the number of earlier updates, for the generator's
trainable weights; every other variable (batch-norm moving statistics) equals the generator's.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gantrain import checkpoint as ckpt_lib
from gantrain.averaging import EMAGenerator


def _generator(dtype=None) -> keras.Model:
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, dtype=dtype)(inputs)
    return keras.Model(inputs, keras.layers.BatchNormalization(dtype=dtype)(hidden))


def _script(n_updates: int, generator: keras.Model, seed: int = 0) -> list[list[np.ndarray]]:
    """Values for every generator variable before each update; BN variances kept positive."""
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(n_updates):
        values = []
        for v in generator.variables:
            draw = rng.normal(size=v.shape)
            values.append((np.abs(draw) + 0.1 if "variance" in v.path else draw).astype(np.float32))
        steps.append(values)
    return steps


def _set(generator: keras.Model, values) -> None:
    for v, value in zip(generator.variables, values):
        v.assign(value)


def ref_ema(initial, steps, decay, trainable, start=0):
    """The numpy recurrence after each update: a list (one per update) of per-variable values."""
    ema = [np.asarray(e, np.float64) for e in initial]
    history = []
    for t, weights in enumerate(steps, start):
        d = min(decay, (1 + t) / (10 + t))
        ema = [d * e + (1 - d) * w if is_trainable else np.asarray(w, np.float64) for e, w, is_trainable in zip(ema, weights, trainable)]
        history.append(ema)
    return history


def _run(ema, generator, steps, update):
    seen = []
    for values in steps:
        _set(generator, values)
        update()
        seen.append([v.numpy() for v in ema.model.variables])
    return seen


@pytest.mark.parametrize("decay", [0.5, 0.999])
def test_ema_follows_the_warm_up_recurrence_in_a_tf_function(decay):
    generator = _generator()
    ema = EMAGenerator(generator, decay)
    initial = [v.numpy() for v in ema.model.variables]
    trainable = [v.trainable for v in generator.variables]
    assert trainable.count(False) == 2  # BN moving mean and variance
    steps = _script(12, generator)  # with decay 0.5 the warm-up ends at t = 8: both regimes
    seen = _run(ema, generator, steps, tf.function(ema.update))
    for got, want, values in zip(seen, ref_ema(initial, steps, decay, trainable), steps):
        for g, w, value, is_trainable in zip(got, want, values, trainable):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
            if not is_trainable:
                np.testing.assert_array_equal(g, value)
    assert int(ema.num_updates.numpy()) == 12


def test_first_update_gives_the_old_value_weight_one_tenth():
    generator = _generator()
    ema = EMAGenerator(generator, 0.999)
    old = ema.model.trainable_variables[0].numpy()
    new = np.full_like(old, 3.0)
    generator.trainable_variables[0].assign(new)
    ema.update()
    np.testing.assert_allclose(ema.model.trainable_variables[0].numpy(), 0.1 * old + 0.9 * new, rtol=1e-6, atol=1e-7)


def test_batch_norm_statistics_are_copied_not_averaged():
    generator = _generator()
    ema = EMAGenerator(generator, 0.9)
    before = ema.model.trainable_variables[0].numpy()
    generator(np.random.default_rng(1).normal(3.0, 2.0, (16, 3)).astype(np.float32), training=True)  # moves the BN statistics
    generator.trainable_variables[0].assign_add(tf.ones_like(generator.trainable_variables[0]))
    ema.update()
    bn = generator.layers[-1]
    ema_bn = ema.model.layers[-1]
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(ema_bn.moving_mean.numpy(), bn.moving_mean.numpy())
    np.testing.assert_array_equal(ema_bn.moving_variance.numpy(), bn.moving_variance.numpy())
    after = ema.model.trainable_variables[0].numpy()
    np.testing.assert_allclose(after, 0.1 * before + 0.9 * generator.trainable_variables[0].numpy(), rtol=1e-6, atol=1e-7)


def test_a_variable_frozen_in_the_generator_follows_it():
    generator = _generator()
    ema = EMAGenerator(generator, 0.999)
    generator.layers[1].trainable = False  # decided from the generator: the copy's flags are stale
    steps = _script(2, generator, seed=3)
    seen = _run(ema, generator, steps, ema.update)
    kernel, bias = generator.layers[1].kernel, generator.layers[1].bias
    positions = [i for i, v in enumerate(generator.variables) if v is kernel or v is bias]
    assert len(positions) == 2
    for i in positions:
        np.testing.assert_array_equal(seen[-1][i], steps[-1][i])


def test_counter_is_checkpointed_and_resume_continues_the_schedule(tmp_path):
    decay = 0.999
    generator = _generator()
    ema = EMAGenerator(generator, decay)
    initial = [v.numpy() for v in ema.model.variables]
    trainable = [v.trainable for v in generator.variables]
    steps = _script(6, generator, seed=2)
    _run(ema, generator, steps[:3], ema.update)
    step = tf.Variable(3, dtype=tf.int64)
    prefix = ckpt_lib.make_checkpoint(step, ema_generator=ema.variables).save(str(tmp_path / "ckpt"))

    # A new process: fresh networks, a fresh EMA (counter 0), then the checkpoint.
    generator2 = _generator()
    ema2 = EMAGenerator(generator2, decay)
    ckpt_lib.restore(ckpt_lib.make_checkpoint(tf.Variable(0, dtype=tf.int64), ema_generator=ema2.variables), prefix)
    assert int(ema2.num_updates.numpy()) == 3
    seen = _run(ema2, generator2, steps[3:], ema2.update)
    want = ref_ema(initial, steps, decay, trainable)[-1]
    for g, w in zip(seen[-1], want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    # Restarting the schedule at t = 0 would have given visibly different weights.
    restarted = ref_ema(ref_ema(initial, steps[:3], decay, trainable)[-1], steps[3:], decay, trainable)[-1]
    assert max(np.abs(r - w).max() for r, w, tr in zip(restarted, want, trainable) if tr) > 1e-2


def test_mixed_precision_generator_keeps_float32_averages():
    generator = _generator(dtype="mixed_float16")
    ema = EMAGenerator(generator, 0.999)
    assert all(v.dtype == "float32" for v in ema.model.variables)
    initial = [v.numpy() for v in ema.model.variables]
    trainable = [v.trainable for v in generator.variables]
    steps = _script(3, generator, seed=4)
    seen = _run(ema, generator, steps, tf.function(ema.update))
    for g, w in zip(seen[-1], ref_ema(initial, steps, 0.999, trainable)[-1]):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_update_in_cross_replica_context_of_a_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        generator = _generator()
        ema = EMAGenerator(generator, 0.999)
    assert isinstance(ema.num_updates, tf.distribute.DistributedValues)
    initial = [v.numpy() for v in ema.model.variables]
    trainable = [v.trainable for v in generator.variables]
    steps = _script(3, generator, seed=5)
    seen = _run(ema, generator, steps, tf.function(ema.update))  # tf.function outside strategy.run: cross-replica
    for g, w in zip(seen[-1], ref_ema(initial, steps, 0.999, trainable)[-1]):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    assert int(ema.num_updates.numpy()) == 3


def test_standing_statistics_are_the_mean_batch_statistics_of_the_averaged_weights():
    """The copy's BN moving mean / variance become the mean over batches of the batch mean and
    biased batch variance of the copy's own pre-BN activations (computed here in numpy)."""
    generator = _generator()
    ema = EMAGenerator(generator, 0.9)
    kernel, bias = (np.random.default_rng(1).normal(size=s).astype(np.float32) for s in ((3, 4), (4,)))
    ema.model.layers[1].kernel.assign(kernel)  # weights of the average that the live G never had
    ema.model.layers[1].bias.assign(bias)
    batches = [np.random.default_rng(10 + i).normal(size=(8, 3)).astype(np.float32) for i in range(3)]
    assert ema.standing_statistics(iter(batches))
    pre = [x @ kernel + bias for x in batches]
    bn = ema.model.layers[2]
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([h.mean(axis=0) for h in pre], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([h.var(axis=0) for h in pre], axis=0), rtol=1e-5)
    assert bn.momentum == generator.layers[2].momentum == 0.99  # restored
    plain = EMAGenerator(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), 0.9)
    assert not plain.standing_statistics(iter(()))  # no batch norm: nothing to do


def test_fit_saves_the_ema_generator_with_its_own_batch_norm_statistics(tmp_path, mnist_dir):
    """Before the fix the EMA copy carried the live generator's moving statistics into grids,
    evaluation and checkpoints (at step 1,000 of a CDCGAN: FID 214 against 54 with its own)."""
    import gantrain
    from gantrain.rundir import load_model
    from tests.conftest import tiny_config

    cfg = tiny_config(mnist_dir)
    cfg["train"].update(ema_decay=0.5, steps=3)
    cfg["optimizer"] = {"generator": {"learning_rate": 0.05}, "discriminator": {"learning_rate": 0.05}}
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    model, saved, step = load_model(run)  # the saved EMA weights and statistics, in model.generator
    live = build_model_like(model)
    ckpt = ckpt_lib.make_checkpoint(tf.Variable(0, dtype=tf.int64), generator=live.variables)
    ckpt_lib.restore(ckpt, ckpt_lib.find_checkpoint(run, "latest"), what="generator")

    def norms(net):
        return [l for l in net._flatten_layers(include_self=False, recursive=True) if isinstance(l, keras.layers.BatchNormalization)]

    ema_bn, live_bn = norms(model.generator)[0], norms(live)[0]
    assert not np.allclose(ema_bn.moving_mean.numpy(), live_bn.moving_mean.numpy())  # its own, not the live G's
    # Recomputed from the saved averaged weights: the first BN normalises Dense(z) (no bias), over the
    # 32 batches of fresh inputs the refresh draws at the last step from its (seed, step) stream.
    rng = tf.random.Generator.from_seed(int(np.random.SeedSequence([saved["seed"], step]).generate_state(1)[0]))
    kernel = model.generator.layers[1].kernel.numpy()
    pre = [model.generator_inputs(model.sample_latent(rng, saved["data"]["batch_size"])).numpy() @ kernel for _ in range(32)]
    np.testing.assert_allclose(ema_bn.moving_mean.numpy(), np.mean([h.mean(axis=0) for h in pre], axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ema_bn.moving_variance.numpy(), np.mean([h.var(axis=0) for h in pre], axis=0), rtol=1e-4, atol=1e-5)


def build_model_like(model) -> keras.Model:
    """A fresh generator of the same architecture (its own variables)."""
    return keras.models.clone_model(model.generator)


# -- image-to-image families: standing statistics over real source images ---------------------------
TINY_I2I = {
    "pix2pix": {"family": "pix2pix", "ngf": 4, "ndf": 4, "depth": 3, "d_layers": 1, "dropout": 0.0},  # no dropout: an exact reference
    "cyclegan": {"family": "cyclegan", "ngf": 4, "ndf": 4, "blocks": 1, "d_layers": 1, "pool_size": 2, "norm": "batch"},
    "srresnet": {"family": "srresnet", "scale": 2, "width": 4, "blocks": 1},
}


def _norms(net: keras.Model) -> list:
    return [l for l in net._flatten_layers(include_self=False, recursive=True) if isinstance(l, keras.layers.BatchNormalization)]


def _batch_norm_input_statistics(net: keras.Model, batches) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per BatchNormalization layer of ``net``: the mean over ``batches`` of its input's batch mean and
    biased batch variance in training mode, in numpy. A copy with ``net``'s weights runs the batches
    (training mode would move the moving statistics of ``net``'s own layers)."""
    probe = keras.models.clone_model(net)
    probe.set_weights(net.get_weights())
    taps = keras.Model(probe.input, [l.input for l in _norms(probe)])
    per_batch = [[np.asarray(x, np.float64) for x in taps(b, training=True)] for b in batches]
    axes = lambda x: tuple(range(x.ndim - 1))  # noqa: E731  (every axis but the channels)
    return [(np.mean([xs[i].mean(axis=axes(xs[i])) for xs in per_batch], axis=0),
             np.mean([xs[i].var(axis=axes(xs[i])) for xs in per_batch], axis=0)) for i in range(len(per_batch[0]))]


def _source_side(source) -> dict:
    """Averaged network -> the images (float32 in [-1, 1]) it translates from, where the data holds them as they are."""
    from gantrain.data.pairs import PairedSource, UnpairedSource

    unit = lambda x: (x.astype(np.float32) / 127.5 - 1.0)  # noqa: E731
    if isinstance(source, PairedSource):
        return {"generator": unit(source.inputs)}
    if isinstance(source, UnpairedSource):
        return {"g_ab": unit(source.domain_a), "g_ba": unit(source.domain_b)}
    return {}  # super-resolution: LR images are bicubic downscalings of random crops


def _i2i_trainer(family: str, seed: int = 0, jitter: bool = False):
    """A tiny image-to-image family with EMA on, its 16x16 training data, and a trainer at batch 2."""
    from gantrain.config import validate
    from gantrain.data.pairs import PairedSource, UnpairedSource
    from gantrain.data.source import ImageSource
    from gantrain.data.sr_pairs import sr_pairs
    from gantrain.losses import get_loss
    from gantrain.rundir import build_model
    from gantrain.trainer import Trainer, TrainOptions

    images = lambda s, n=6: np.random.default_rng(s).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    source = {"pix2pix": lambda: PairedSource(images(1), images(2), jitter=jitter),
              "cyclegan": lambda: UnpairedSource(images(1), images(2, 5), jitter=jitter),
              "srresnet": lambda: sr_pairs(ImageSource(images(1), np.full(6, -1, np.int32)), 2, 8)}[family]()
    data = {"loader": "image_folder", "root": "unused", "image_size": 16, "batch_size": 2}
    if family == "srresnet":
        data["hr_size"] = 8
    cfg = validate({"model": TINY_I2I[family], "data": data, "loss": {"name": "least_squares"}, "train": {"ema_decay": 0.5}})
    model = build_model(cfg, source.image_shape, 0)
    optimizers = {g.name: keras.optimizers.SGD(0.5) for g in model.groups}
    return model, source, Trainer(model, optimizers, get_loss("least_squares"), 2, seed, options=TrainOptions.from_config(cfg))


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan", "srresnet"])
def test_image_to_image_ema_copies_get_standing_statistics_from_real_source_images(family):
    """Before the fix refresh_averages returned early for image-to-image families: the EMA copy kept
    the live generator's batch-norm statistics. Now each averaged generator's copy ends with the
    mean, over fixed batches of the source images it translates, of its own batch statistics."""
    from gantrain.data import make_pipeline
    from gantrain.loop import standing_inputs

    model, source, trainer = _i2i_trainer(family)
    trainer.train_step(iter(make_pipeline(source, 2, 0)))  # one step at a high rate: the average is not the live weights
    inputs = standing_inputs(model, source, 2, seed=0)
    assert trainer.refresh_reads_data and len(inputs) == 32
    assert set(inputs[0]) == set(model.averaged)
    for name, images in _source_side(source).items():  # real images of the side each generator translates from
        real = {image.tobytes() for image in images}
        assert all(image.tobytes() in real for x in inputs for image in x[name])
    trainer.refresh_averages(0, 1, 2, inputs=inputs)
    for name in model.averaged:
        ema, live = trainer.averages[name].model, model.networks[name]
        want = _batch_norm_input_statistics(ema, [x[name] for x in inputs])
        assert len(want) == len(_norms(ema)) >= 2
        for bn, live_bn, (mean, var) in zip(_norms(ema), _norms(live), want):
            np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-5, atol=1e-6)
            assert not np.allclose(bn.moving_mean.numpy(), live_bn.moving_mean.numpy())  # its own, not the live G's
            assert bn.momentum == live_bn.momentum  # restored


def test_standing_inputs_are_fixed_per_run_and_leave_training_data_and_random_state_alone():
    """A resumed run refreshes with exactly the uninterrupted run's inputs: the standing inputs are a
    pure function of (data, batch size, seed), built by a new process alike, and building them moves
    neither the training batches nor any random state training reads."""
    import random

    from gantrain.data import make_pipeline
    from gantrain.loop import standing_inputs

    model, source, _ = _i2i_trainer("pix2pix", jitter=True)
    training = iter(make_pipeline(source, 2, 0, start_batch=3))  # a run resumed at step 3
    expected_next = next(iter(make_pipeline(source, 2, 0, start_batch=3)))
    states = (random.getstate(), np.random.get_state()[1].copy(), tf.random.get_global_generator().state.numpy())
    first = standing_inputs(model, source, 2, seed=0)
    assert (random.getstate(), tf.random.get_global_generator().state.numpy().tolist()) == (states[0], states[2].tolist())
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    got_next = next(training)
    for role in expected_next:
        np.testing.assert_array_equal(got_next[role].numpy(), expected_next[role].numpy())
    model2, source2, _ = _i2i_trainer("pix2pix", jitter=True)  # another process: rebuilt from the same config
    again = standing_inputs(model2, source2, 2, seed=0)
    assert len(first) == len(again) == 32
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x["generator"], y["generator"])
    assert not np.array_equal(standing_inputs(model, source, 2, seed=1, batches=1)[0]["generator"], first[0]["generator"])
    # Memory stays bounded: fewer (at least one) batches where 32 would pass the budget.
    assert len(standing_inputs(model, source, 2, seed=0, max_bytes=3 * first[0]["generator"].nbytes)) == 3
    assert len(standing_inputs(model, source, 2, seed=0, max_bytes=1)) == 1


def test_fit_saves_a_pix2pix_ema_generator_with_standing_statistics_of_its_training_inputs(tmp_path):
    """Through the loop: the checkpointed EMA copy of a pix2pix G (batch norm, batch 2) carries the
    statistics of its own weights over loop.standing_inputs of the run's training data."""
    from PIL import Image

    import gantrain
    from gantrain.loop import standing_inputs
    from gantrain.rundir import build_model, family_source, open_checkpoint, restore_networks

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(np.random.default_rng(7).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)):
        Image.fromarray(img).save(folder / f"p{i}.png")
    cfg = {"model": TINY_I2I["pix2pix"], "data": {"loader": "image_folder", "root": str(folder), "image_size": 16, "pairs": "grey",
                                                  "pairs_jitter": True, "batch_size": 2},
           "optimizer": {"generator": {"learning_rate": 0.05}, "discriminator": {"learning_rate": 0.05}},
           "train": {"steps": 2, "ema_decay": 0.5}, "log": {"every": 2, "sample_every": 2, "checkpoint_every": 2, "num_samples": 2}}
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    prefix, _, saved, meta = open_checkpoint(run)
    model = build_model(saved, tuple(meta["image_shape"]), 0)
    assert restore_networks(model, saved, prefix, ["generator"], "generator")[1] == {"generator": "ema_generator"}
    live = keras.models.clone_model(model.generator)
    ckpt_lib.restore(ckpt_lib.make_checkpoint(tf.Variable(0, dtype=tf.int64), generator=live.variables), prefix, what="generator")
    inputs = standing_inputs(model, family_source(saved), 2, saved["seed"])
    want = _batch_norm_input_statistics(model.generator, [x["generator"] for x in inputs])
    for bn, live_bn, (mean, var) in zip(_norms(model.generator), _norms(live), want):
        np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-4, atol=1e-6)
        assert not np.allclose(bn.moving_mean.numpy(), live_bn.moving_mean.numpy())
