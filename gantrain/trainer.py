"""The generic GAN training step: explicit tapes, explicit variable lists, one optimizer per network.

The trainer sees only built objects (a GANModel, optimizers, a loss pair, iterators, options).
The model decides what the latent inputs are and which extra loss terms exist (class heads, Q
heads); the adversarial pair always applies to ``out["logits"]``; penalties, label smoothing,
feature matching, weight clipping, historical averaging, EMA and DiffAugment are switches in
:class:`TrainOptions` that work with any family. All state lives in TensorFlow variables
(weights, optimizer slots, the noise RNG, averages), never in Python, so the compiled step is
replayable, checkpointable and ready to be wrapped in a tf.distribute strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gantrain import losses
from gantrain.augment import diff_augment
from gantrain.averaging import EMAGenerator, HistoricalAverage
from gantrain.distribute import num_replicas, replica_seed, replica_slice
from gantrain.losses import LossPair
from gantrain.registry import PENALTIES
from gantrain.models.base import GANModel


@dataclass(frozen=True)
class TrainOptions:
    d_steps: int = 1
    jit_compile: bool = False
    penalty: str = "none"  # none, or a name in PENALTIES
    penalty_weight: float = 10.0
    real_target: float = 1.0  # label smoothing: one-sided = 0.9
    fake_target: float = 0.0
    target_noise: float = 0.0  # noisy labels: real ~ U(real - noise, real), fake ~ U(fake, fake + noise)
    g_target: float = 1.0  # the target G's loss pushes fakes towards
    feature_matching: str = "none"  # none | add | replace
    feature_matching_weight: float = 1.0
    d_clip_value: float | None = None  # WGAN weight clipping of every D weight to [-c, c]
    ema_decay: float | None = None
    hist_avg_generator: float = 0.0
    hist_avg_discriminator: float = 0.0
    diffaugment: tuple = ()
    simultaneous: bool = False  # one forward pass feeds both updates (the TF tutorial's step); d_steps 1 only
    reuse_g_noise: bool = False  # alternating: G's step reuses the last D step's latent (Keras-GAN's ACGAN)

    @classmethod
    def from_config(cls, config: dict) -> "TrainOptions":
        loss, train = config["loss"], config["train"]
        return cls(
            d_steps=train["d_steps"],
            jit_compile=bool(train["jit_compile"]),  # null (auto) is decided by run.fit, which knows the networks
            penalty=loss["penalty"],
            penalty_weight=loss["penalty_weight"],
            real_target=loss["real_target"],
            fake_target=loss["fake_target"],
            target_noise=loss["target_noise"],
            g_target=loss["g_target"],
            feature_matching=loss["feature_matching"],
            feature_matching_weight=loss["feature_matching_weight"],
            d_clip_value=config["optimizer"]["discriminator"]["clip_value"],
            ema_decay=train["ema_decay"],
            hist_avg_generator=train["historical_averaging"]["generator"],
            hist_avg_discriminator=train["historical_averaging"]["discriminator"],
            diffaugment=tuple(train["diffaugment"] or ()),
            simultaneous=train["update"] == "simultaneous" or (train["update"] == "auto" and train["d_steps"] == 1),
            reuse_g_noise=train["g_noise"] == "reuse",
        )


class GANTrainer:
    def __init__(
        self,
        model: GANModel,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss: LossPair,
        batch_size: int,
        seed: int,
        d_steps: int = 1,
        jit_compile: bool = False,
        options: TrainOptions | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model = model
        self.generator = model.generator
        self.discriminator = model.discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.loss = loss
        self.options = options or TrainOptions(d_steps=d_steps, jit_compile=jit_compile)
        # batch_size is the global batch: a strategy's replicas each train on a slice of it.
        self.batch_size, self.d_steps = batch_size, self.options.d_steps
        self.strategy = strategy or tf.distribute.get_strategy()
        # Noise comes from a counter-based generator whose state is a variable: checkpointed with
        # the weights, so a resumed run draws exactly the noise the uninterrupted one would have.
        # It is created outside the strategy scope and used only in cross-replica context, so
        # every strategy draws the same global-batch noise a single device would.
        self.rng = tf.random.Generator.from_seed(seed)
        opts = self.options
        with self.strategy.scope():
            # Build optimizer slots now, not lazily inside the first traced call, so they exist
            # before a checkpoint is restored into them (and are mirrored like the weights).
            g_optimizer.build(self.generator.trainable_variables)
            d_optimizer.build(self.discriminator.trainable_variables)
            self.ema = EMAGenerator(self.generator, opts.ema_decay) if opts.ema_decay else None
            self.g_history = HistoricalAverage(self.generator.trainable_variables, "g") if opts.hist_avg_generator else None
            self.d_history = HistoricalAverage(self.discriminator.trainable_variables, "d") if opts.hist_avg_discriminator else None
        if opts.feature_matching != "none":
            model.enable_features()
        self._d_update = tf.function(self._d_update_eager, jit_compile=opts.jit_compile)
        self._g_update = tf.function(self._g_update_eager, jit_compile=opts.jit_compile)
        self._joint_update = tf.function(self._joint_update_eager, jit_compile=opts.jit_compile)
        self.train_step = tf.function(self._train_step_eager)
        self.train_steps = tf.function(self._train_steps_eager)

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator sample grids use: the EMA copy when enabled."""
        return self.ema.model if self.ema else self.generator

    def extra_state(self) -> dict:
        """Variables beyond networks and optimizers that a checkpoint must carry."""
        state = {}
        if self.ema:
            state["ema_generator"] = self.ema.variables
        if self.g_history:
            state["g_history"] = self.g_history.variables
        if self.d_history:
            state["d_history"] = self.d_history.variables
        return state

    # -- pieces -----------------------------------------------------------------------------------
    def _augment(self, images, seed):
        # float32: under mixed precision G's images are float16, the augmentation noise float32
        return diff_augment(tf.cast(images, tf.float32), self.options.diffaugment, seed) if self.options.diffaugment else images

    def _targets(self, batch, seed):
        o = self.options
        if not o.target_noise:
            return o.real_target, o.fake_target
        noise = _global_uniform(seed, [2, batch * num_replicas()], o.target_noise)
        return o.real_target - replica_slice(noise[0]), o.fake_target + replica_slice(noise[1])

    def _penalty(self, real_images, fake_images, labels, seed):
        o = self.options
        if o.penalty == "none":
            return None
        critic = lambda x: self.model.discriminate(x, labels, training=True)["logits"]  # noqa: E731
        # Drawn for the global batch and sliced: the same interpolates on any number of replicas.
        uniform = lambda x: replica_slice(_global_uniform(seed, [tf.shape(x)[0] * num_replicas()], 1.0))  # noqa: E731
        return o.penalty_weight * PENALTIES.get(o.penalty).compute(critic, real_images, fake_images, uniform)

    # -- updates ----------------------------------------------------------------------------------
    # -- losses (inside a tape) ------------------------------------------------------------------
    def _d_losses(self, real_in, fake_in, real_out, fake_out, labels, latent, labeled, seed):
        o = self.options
        seeds = tf.random.experimental.stateless_split(seed, 2)
        real_target, fake_target = self._targets(tf.shape(real_in)[0], seeds[0])
        if self.loss.uses_targets:
            adversarial = self.loss.d_loss(real_out["logits"], fake_out["logits"], real_target, fake_target)
        else:
            adversarial = self.loss.d_loss(real_out["logits"], fake_out["logits"])
        extra = dict(self.model.d_extra_losses(real_out, fake_out, labels, latent, labeled))
        penalty = self._penalty(real_in, fake_in, labels, seeds[1])
        if penalty is not None:
            extra[o.penalty] = penalty
        if self.d_history:
            extra["hist_avg"] = o.hist_avg_discriminator * self.d_history.penalty()
        metrics = {
            "d_loss": tf.add_n([adversarial, *extra.values()]),
            **({"d_adv_loss": adversarial} if extra else {}),
            **{f"d_{k}": v for k, v in extra.items()},
            # Mean D(x) and D(G(z)) as probabilities (for critics: of the raw score): 0.5/0.5 is the equilibrium.
            "d_real": tf.reduce_mean(tf.sigmoid(tf.cast(real_out["logits"], tf.float32))),
            "d_fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake_out["logits"], tf.float32))),
        }
        return metrics

    def _g_losses(self, fake_out, real_out_fn, latent):
        o = self.options
        if self.loss.uses_targets:
            adversarial = self.loss.g_loss(fake_out["logits"], o.g_target)
        else:
            adversarial = self.loss.g_loss(fake_out["logits"])
        extra = dict(self.model.g_extra_losses(fake_out, latent))
        if o.feature_matching != "none":
            extra["feature_matching"] = o.feature_matching_weight * losses.feature_matching_loss(real_out_fn()["features"], fake_out["features"])
        if self.g_history:
            extra["hist_avg"] = o.hist_avg_generator * self.g_history.penalty()
        terms = [*extra.values()] + ([] if o.feature_matching == "replace" else [adversarial])
        return {"g_loss": tf.add_n(terms), **({"g_adv_loss": adversarial} if extra else {}), **{f"g_{k}": v for k, v in extra.items()}}

    # -- applying gradients -----------------------------------------------------------------------
    # Optimizer steps run in replica context (Keras sums the gradients across replicas); what
    # follows an update (clipping, averages) runs once, in cross-replica context, on the result.
    def _apply_d(self, grads):
        _check_gradients(grads, self.discriminator.trainable_variables, "discriminator")
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)

    def _apply_g(self, grads):
        _check_gradients(grads, self.generator.trainable_variables, "generator")
        self.g_optimizer.apply(grads, self.generator.trainable_variables)

    def _after_d(self):
        o = self.options
        if o.d_clip_value is not None:
            for v in self.discriminator.trainable_variables:
                v.assign(tf.clip_by_value(v, -o.d_clip_value, o.d_clip_value))
        if self.d_history:
            self.d_history.update()

    def _after_g(self):
        if self.g_history:
            self.g_history.update()
        if self.ema:
            self.ema.update()

    # -- updates ----------------------------------------------------------------------------------
    # The *_update_eager functions run per replica: ``latent`` and ``seed`` are global (drawn in
    # cross-replica context), images and labels are already this replica's slice.
    def _d_update_eager(self, real_images, labels, latent, seed, labeled=None):
        model = self.model
        latent = {k: replica_slice(v) for k, v in latent.items()}
        seeds = tf.random.experimental.stateless_split(seed, 3)
        aug = tf.random.experimental.stateless_split(replica_seed(seeds[0]), 2)
        with tf.GradientTape() as tape:
            fake_images = model.generate(latent, training=True)
            real_in, fake_in = self._augment(real_images, aug[0]), self._augment(fake_images, aug[1])
            real_out = model.discriminate(real_in, labels, training=True)
            fake_out = model.discriminate(fake_in, latent.get("labels"), training=True)
            metrics = self._d_losses(real_in, fake_in, real_out, fake_out, labels, latent, labeled, seeds[2])
            scaled = _scaled(self.d_optimizer, metrics["d_loss"] / num_replicas())  # inside the tape, so it is differentiated
        self._apply_d(tape.gradient(scaled, self.discriminator.trainable_variables))
        return metrics

    def _g_update_eager(self, latent, real_images, real_labels, seed):
        model = self.model
        latent = {k: replica_slice(v) for k, v in latent.items()}
        aug = tf.random.experimental.stateless_split(replica_seed(seed), 2)
        with tf.GradientTape() as tape:
            fake_out = model.discriminate(self._augment(model.generate(latent, training=True), aug[0]), latent.get("labels"), training=True)
            real_out_fn = lambda: model.discriminate(self._augment(real_images, aug[1]), real_labels, training=True)  # noqa: E731
            metrics = self._g_losses(fake_out, real_out_fn, latent)
            scaled = _scaled(self.g_optimizer, metrics["g_loss"] / num_replicas())
        self._apply_g(tape.gradient(scaled, self.generator.trainable_variables))
        return metrics

    def _joint_update_eager(self, real_images, labels, latent, seed, labeled=None):
        """Both updates from one forward pass, as the TensorFlow DCGAN tutorial does.

        G's gradient is taken through D's weights *before* this step's D update (the updates are
        simultaneous rather than alternating), and G(z), D(x), D(G(z)) are computed once instead of
        twice: about a third less work per step. It equals a D step followed by a G step on the
        pre-update D weights with the same noise only when D's forward pass is deterministic (no
        dropout: here both updates share one dropout mask, two separate passes would draw two) and
        the G loss needs no second look at the real batch; it never equals the alternating update,
        whose G step sees the updated D (and, by default, fresh noise).
        """
        model = self.model
        latent = {k: replica_slice(v) for k, v in latent.items()}
        seeds = tf.random.experimental.stateless_split(seed, 3)
        aug = tf.random.experimental.stateless_split(replica_seed(seeds[0]), 2)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake_images = model.generate(latent, training=True)
            real_in, fake_in = self._augment(real_images, aug[0]), self._augment(fake_images, aug[1])
            real_out = model.discriminate(real_in, labels, training=True)
            fake_out = model.discriminate(fake_in, latent.get("labels"), training=True)
            d_metrics = self._d_losses(real_in, fake_in, real_out, fake_out, labels, latent, labeled, seeds[2])
            g_metrics = self._g_losses(fake_out, lambda: real_out, latent)
            n = num_replicas()
            d_scaled, g_scaled = _scaled(self.d_optimizer, d_metrics["d_loss"] / n), _scaled(self.g_optimizer, g_metrics["g_loss"] / n)
        d_grads = d_tape.gradient(d_scaled, self.discriminator.trainable_variables)
        g_grads = g_tape.gradient(g_scaled, self.generator.trainable_variables)
        self._apply_d(d_grads)
        self._apply_g(g_grads)
        return {**d_metrics, **g_metrics}

    def _train_step_eager(self, iterator, labeled_iterator=None):
        """One generator update preceded by ``d_steps`` discriminator updates on fresh real batches.

        Runs in cross-replica context: it draws the global noise, hands each replica its batch via
        ``strategy.run``, then applies the post-update steps and averages the metrics.
        """
        run = self.strategy.run
        if self.options.simultaneous:
            real_images, labels = _image_and_label(next(iterator))
            extra = (_image_and_label(next(labeled_iterator)),) if labeled_iterator is not None else ()
            latent = self.model.sample_latent(self.rng, self.batch_size)
            metrics = run(self._joint_update, args=(real_images, labels, latent, self.rng.make_seeds(1)[:, 0], *extra))
            self._after_d()
            self._after_g()
            return self._mean_over_replicas(metrics)
        for _ in range(self.d_steps):  # unrolled at trace time: d_steps is a small constant
            real_images, labels = _image_and_label(next(iterator))
            extra = (_image_and_label(next(labeled_iterator)),) if labeled_iterator is not None else ()
            latent = self.model.sample_latent(self.rng, self.batch_size)
            metrics = run(self._d_update, args=(real_images, labels, latent, self.rng.make_seeds(1)[:, 0], *extra))
            self._after_d()
        if not self.options.reuse_g_noise:
            latent = self.model.sample_latent(self.rng, self.batch_size)
        metrics = {**metrics, **run(self._g_update, args=(latent, real_images, labels, self.rng.make_seeds(1)[:, 0]))}
        self._after_g()
        return self._mean_over_replicas(metrics)

    def _mean_over_replicas(self, metrics: dict) -> dict:
        if self.strategy.num_replicas_in_sync == 1:
            return metrics
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in metrics.items()}


    def _train_steps_eager(self, iterator, k, labeled_iterator=None):
        """``k`` training steps in one compiled call; returns the per-metric sums over them.

        Fewer Python round trips per step: what makes small models (the MLP GAN at batch 32) fast.
        ``k`` is a tensor, so one trace serves every call length.
        """
        sums = self._train_step_eager(iterator, labeled_iterator)
        for _ in tf.range(k - 1):
            metrics = self._train_step_eager(iterator, labeled_iterator)
            sums = {key: sums[key] + metrics[key] for key in sums}
        return sums


def _image_and_label(batch: dict):
    """The roles the one-generator/one-discriminator step reads from a batch (data/source.py)."""
    return batch["image"], batch["label"]


def _global_uniform(seed, shape, high):
    return tf.random.stateless_uniform(shape, seed=seed, minval=0.0, maxval=high)


def _scaled(optimizer, loss):
    """Float16 training: scale the loss up before differentiating (LossScaleOptimizer unscales)."""
    return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss


def _check_gradients(grads, variables, network: str) -> None:
    # A None gradient means a variable is off the loss path: fail at trace time with
    # the variable names instead of letting Keras warn and silently skip it.
    missing = [v.path for g, v in zip(grads, variables) if g is None]
    if missing:
        raise ValueError(f"{network}: no gradient for {len(missing)} variable(s), they are not on the loss path: {missing[:5]}")
