"""The generic training step: a family's plan, executed with explicit tapes and variable lists.

The family (models/) declares its networks, the optimizer groups that train them and the updates
of one step with the loss each minimises (models/plan.py). This module does everything
mechanical, the same for every family: drawing batches and noise, one tape per update over exactly
the group's variables, mixed-precision loss scaling, ``jit_compile``, several steps per compiled
call, tf.distribute replicas, repeated critic updates, weight clipping, penalties, label
targets, DiffAugment, EMA of the averaged networks, historical averaging, and the list of every
variable a checkpoint must hold.

All state lives in TensorFlow variables (weights, optimizer slots, the noise RNG, averages), never
in Python, so the compiled step is replayable, checkpointable and runs under any strategy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from gantrain.augment import diff_augment
from gantrain.averaging import STANDING_BATCHES, EMAGenerator, HistoricalAverage
from gantrain.distribute import num_replicas, replica_seed, replica_slice
from gantrain.losses import LossPair
from gantrain.models.base import FamilyModel, GANModel
from gantrain.models.image_to_image import TranslationModel
from gantrain.models.plan import Losses, Update
from gantrain.registry import PENALTIES


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
    clip_values: dict = field(default_factory=dict)  # optimizer group -> c: its weights kept in [-c, c] after each update (WGAN)
    ema_decay: float | None = None
    historical_averaging: dict = field(default_factory=dict)  # optimizer group -> weight of the penalty
    diffaugment: tuple = ()
    simultaneous: bool = False  # one forward pass feeds every update (Plan.joint; the TF tutorial's step); d_steps 1 only
    reuse_g_noise: bool = False  # alternating: G's step reuses the last D step's latent (Keras-GAN's ACGAN)
    content: dict = field(default_factory=dict)  # super-resolution: the loss.content* keys (models/sr_model.content_spec reads them)

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
            clip_values={group: opt["clip_value"] for group, opt in config["optimizer"].items() if opt.get("clip_value") is not None},
            ema_decay=train["ema_decay"],
            historical_averaging={group: w for group, w in train["historical_averaging"].items() if w},
            diffaugment=tuple(train["diffaugment"] or ()),
            simultaneous=train["update"] == "simultaneous" or (train["update"] == "auto" and train["d_steps"] == 1),
            reuse_g_noise=train["g_noise"] == "reuse",
            content={key: value for key, value in loss.items() if key.startswith("content")},
        )


class UpdateContext:
    """What an update's loss function reads, inside its tape, on one replica.

    ``batch``: this replica's slice of the step's batch, keyed by data role; ``labeled``: the
    labelled stream's batch (semi-supervised families) or None; ``latent``: this replica's slice
    of the noise; ``seed``: a stateless seed for this update (split it for each random need). The
    methods apply the configured switches; each takes its own seed.
    """

    def __init__(self, options: TrainOptions, batch: dict, labeled: dict | None, latent: dict, seed):
        self.options, self.batch, self.labeled, self.latent, self.seed = options, batch, labeled, latent, seed

    def augment(self, images, seed):
        """DiffAugment when on (different on every replica); float32, as the augmentation noise."""
        if not self.options.diffaugment:
            return images
        return diff_augment(tf.cast(images, tf.float32), self.options.diffaugment, replica_seed(seed))

    def targets(self, batch, seed):
        """D's (real, fake) targets: the configured constants, or per-example noisy ones."""
        o = self.options
        if not o.target_noise:
            return o.real_target, o.fake_target
        noise = _global_uniform(seed, [2, batch * num_replicas()], o.target_noise)
        return o.real_target - replica_slice(noise[0]), o.fake_target + replica_slice(noise[1])

    def penalty(self, critic, real, fake, seed) -> dict:
        """``{name: weight x penalty}`` of ``critic`` at real/fake images, or {} when loss.penalty is none."""
        o = self.options
        if o.penalty == "none":
            return {}
        # Drawn for the global batch and sliced: the same interpolates on any number of replicas.
        uniform = lambda x: replica_slice(_global_uniform(seed, [tf.shape(x)[0] * num_replicas()], 1.0))  # noqa: E731
        return {o.penalty: o.penalty_weight * PENALTIES.get(o.penalty).compute(critic, real, fake, uniform)}


class Trainer:
    """Runs a family's plan. ``optimizers``: one per optimizer group the family declares."""

    def __init__(
        self,
        model: FamilyModel,
        optimizers: dict,
        loss: LossPair,
        batch_size: int,
        seed: int,
        options: TrainOptions | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model, self.loss = model, loss
        self.options = opts = options or TrainOptions()
        self.groups = {g.name: g for g in model.groups}
        missing = [name for name in self.groups if name not in optimizers]
        if missing:
            raise ValueError(f"no optimizer for the group(s) {missing} (have {sorted(optimizers)})")
        self.optimizers = {name: optimizers[name] for name in self.groups}
        # batch_size is the global batch: a strategy's replicas each train on a slice of it.
        self.batch_size = batch_size
        self.strategy = strategy or tf.distribute.get_strategy()
        # Noise comes from a counter-based generator whose state is a variable: checkpointed with
        # the weights, so a resumed run draws exactly the noise the uninterrupted one would have.
        # It is created outside the strategy scope and used only in cross-replica context, so
        # every strategy draws the same global-batch noise a single device would.
        self.rng = tf.random.Generator.from_seed(seed)
        networks = model.networks
        self.variables = {name: [v for net in g.networks for v in networks[net].trainable_variables] for name, g in self.groups.items()}
        with self.strategy.scope():
            # Build optimizer slots now, not lazily inside the first traced call, so they exist
            # before a checkpoint is restored into them (and are mirrored like the weights).
            for name, optimizer in self.optimizers.items():
                optimizer.build(self.variables[name])
            self.averages = {net: EMAGenerator(networks[net], opts.ema_decay) for net in model.averaged} if opts.ema_decay else {}
            self.history = {name: HistoricalAverage(self.variables[name], self.groups[name].short)
                            for name in self.groups if opts.historical_averaging.get(name)}
        self.plan = model.plan(loss, opts)
        unknown = [u.group for u in self.plan.updates if u.group not in self.groups]
        if unknown:
            raise ValueError(f"the plan updates unknown optimizer group(s) {unknown}; the model declares {list(self.groups)}")
        self.update_fns = {u.group: tf.function(self._update_fn(u), jit_compile=opts.jit_compile) for u in self.plan.updates}
        self.joint_update = tf.function(self._joint_update_eager, jit_compile=opts.jit_compile)
        self.simultaneous = opts.simultaneous and self.plan.joint is not None
        self.train_step = tf.function(self._train_step_eager)
        self.train_steps = tf.function(self._train_steps_eager)

    # -- what the loop, sampling and checkpoints read ---------------------------------------------
    @property
    def batches_per_step(self) -> int:
        """Batches one training step reads: where a resumed run re-enters the data stream, and what an epoch counts."""
        if self.simultaneous:
            return 1
        reads = [u.fresh_data or (i == 0 and r == 0) for i, u in enumerate(self.plan.updates) for r in range(u.repeat)]
        return sum(reads)

    @property
    def sampling_networks(self) -> dict:
        """The networks grids and evaluation use: the EMA copies where train.ema_decay keeps them."""
        return {name: (self.averages[name].model if name in self.averages else net) for name, net in self.model.networks.items()}

    @property
    def updates_per_step(self) -> dict:
        """How many times each optimizer group updates in one training step (what its schedule divides by)."""
        counts = {name: 0 for name in self.groups}
        for u in self.plan.updates:
            counts[u.group] += 1 if self.simultaneous else u.repeat
        return {name: max(1, n) for name, n in counts.items()}

    @property
    def refresh_reads_data(self) -> bool:
        """Whether ``refresh_averages`` needs ``inputs`` from the training data: an image-to-image
        family with an EMA copy that has batch normalization."""
        return isinstance(self.model, TranslationModel) and any(ema.has_batch_norm for ema in self.averages.values())

    def refresh_averages(self, seed: int, step: int, batch: int, batches: int = STANDING_BATCHES, inputs: list | None = None) -> None:
        """Standing batch-norm statistics for the EMA copies, before grids, evaluation and checkpoints
        use them (``EMAGenerator.standing_statistics``), over the inputs each generator takes in training.

        Noise families: ``batches`` batches of ``batch`` fresh latents from their own generator
        seeded by (seed, step), so a resumed run refreshes exactly as the uninterrupted one, and the
        training noise stream is not touched. Image-to-image families: ``inputs``, a fixed list of
        ``{network: source images}`` batches from the training data (loop.standing_inputs: its own
        pipeline over the data, the same in every process of a run), each averaged generator
        reading its own entry (pix2pix and super-resolution G the input side of the pairs, each
        CycleGAN generator its source domain). Other families keep the copied statistics.
        """
        if not self.averages:
            return
        if isinstance(self.model, GANModel):
            state = np.random.SeedSequence([seed, step]).generate_state(1)[0]
            rng = tf.random.Generator.from_seed(int(state))
            for ema in self.averages.values():
                ema.standing_statistics(self.model.generator_inputs(self.model.sample_latent(rng, batch)) for _ in range(batches))
        elif self.refresh_reads_data:
            if not inputs:
                raise ValueError("refresh_averages: an image-to-image family's EMA copies need inputs (loop.standing_inputs)")
            for name, ema in self.averages.items():
                ema.standing_statistics(x[name] for x in inputs)

    def checkpoint_parts(self) -> dict:
        """Every variable a checkpoint must carry, by entry name (the noise RNG and step are the caller's)."""
        parts = {name: net.variables for name, net in self.model.networks.items()}
        for name, g in self.groups.items():
            parts[f"{g.short}_optimizer"] = self.optimizers[name].variables
        for net, ema in self.averages.items():
            parts[f"ema_{net}"] = ema.variables
        for name, history in self.history.items():
            parts[f"{self.groups[name].short}_history"] = history.variables
        parts.update(self.model.state())
        return parts

    def update(self, group: str, batch: dict, latent: dict, seed, labeled: dict | None = None) -> dict:
        """One update of ``group`` on given inputs (no clipping or averages afterwards): for tests and tools."""
        return self.update_fns[group](batch, labeled, latent, seed)

    # -- one update, in replica context ----------------------------------------------------------
    # ``latent`` and ``seed`` are global (drawn in cross-replica context), the batch is already this
    # replica's slice. Optimizer steps run here (Keras sums the gradients across replicas); what
    # follows an update (clipping, averages) runs once, in cross-replica context, on the result.
    def _update_fn(self, update: Update):
        def run(batch, labeled, latent, seed):
            ctx = UpdateContext(self.options, batch, labeled, {k: replica_slice(v) for k, v in latent.items()}, seed)
            with tf.GradientTape() as tape:
                total, metrics = self._total(update.group, update.loss(ctx))
                scaled = _scaled(self.optimizers[update.group], total / num_replicas())  # inside the tape, so it is differentiated
            self._apply(update.group, tape.gradient(scaled, self.variables[update.group]))
            return metrics

        return run

    def _joint_update_eager(self, batch, labeled, latent, seed):
        """Every update's gradient from one forward pass (Plan.joint): one tape per update."""
        ctx = UpdateContext(self.options, batch, labeled, {k: replica_slice(v) for k, v in latent.items()}, seed)
        updates = self.plan.updates
        with contextlib.ExitStack() as stack:
            tapes = [stack.enter_context(tf.GradientTape()) for _ in updates]
            losses = self.plan.joint(ctx)
            results = [self._total(u.group, losses[u.group]) for u in updates]
            scaled = [_scaled(self.optimizers[u.group], total / num_replicas()) for u, (total, _) in zip(updates, results)]
        grads = [tape.gradient(s, self.variables[u.group]) for tape, s, u in zip(tapes, scaled, updates)]
        for u, g in zip(updates, grads):
            self._apply(u.group, g)
        return {k: v for _, metrics in results for k, v in metrics.items()}

    def _total(self, group: str, losses: Losses):
        """The loss an update minimises (the family's terms plus historical averaging) and its metrics."""
        short = self.groups[group].short
        terms = dict(losses.terms)
        if group in self.history:
            terms["hist_avg"] = self.options.historical_averaging[group] * self.history[group].penalty()
        total = tf.add_n([v for k, v in terms.items() if k not in losses.unsummed])
        metrics = {f"{short}_loss": total}
        if len(terms) > 1:
            metrics.update({f"{short}_{k}": v for k, v in terms.items()})
        metrics.update({f"{short}_{k}": v for k, v in losses.metrics.items()})
        return total, metrics

    def _apply(self, group: str, grads) -> None:
        variables = self.variables[group]
        _check_gradients(grads, variables, group)
        self.optimizers[group].apply(grads, variables)

    def _after(self, group: str) -> None:
        clip = self.options.clip_values.get(group)
        if clip is not None:
            for v in self.variables[group]:
                v.assign(tf.clip_by_value(v, -clip, clip))
        if group in self.history:
            self.history[group].update()
        for net in self.groups[group].networks:
            if net in self.averages:
                self.averages[net].update()

    # -- one training step, in cross-replica context ----------------------------------------------
    def _train_step_eager(self, iterator, labeled_iterator=None):
        """The plan's updates in order, each repeated as declared (``d_steps`` for a critic).

        Runs in cross-replica context: it draws the global noise, hands each replica its batch via
        ``strategy.run``, then applies the post-update steps and averages the metrics.
        """
        run, draw = self.strategy.run, lambda: (next(iterator), next(labeled_iterator) if labeled_iterator is not None else None)
        if self.simultaneous:
            batch, labeled = draw()
            latent = self.model.sample_latent(self.rng, self.batch_size)
            metrics = run(self.joint_update, args=(batch, labeled, latent, self.rng.make_seeds(1)[:, 0]))
            for u in self.plan.updates:
                self._after(u.group)
            return self._mean_over_replicas(metrics)
        metrics, data, latent = {}, None, None
        for update in self.plan.updates:
            for _ in range(update.repeat):  # unrolled at trace time: a small constant
                if update.fresh_data or data is None:
                    data = draw()
                if update.fresh_noise or latent is None:
                    latent = self.model.sample_latent(self.rng, self.batch_size)
                out = run(self.update_fns[update.group], args=(*data, latent, self.rng.make_seeds(1)[:, 0]))
                metrics.update(out)
                self._after(update.group)
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


class GANTrainer(Trainer):
    """The one-generator/one-discriminator form: ``GANTrainer(model, g_optimizer, d_optimizer, loss, ...)``."""

    def __init__(self, model, g_optimizer, d_optimizer, loss: LossPair, batch_size: int, seed: int, d_steps: int = 1,
                 jit_compile: bool = False, options: TrainOptions | None = None, strategy: tf.distribute.Strategy | None = None):
        options = options or TrainOptions(d_steps=d_steps, jit_compile=jit_compile)
        super().__init__(model, {"generator": g_optimizer, "discriminator": d_optimizer}, loss, batch_size, seed, options, strategy)

    generator = property(lambda self: self.model.generator)
    discriminator = property(lambda self: self.model.discriminator)
    g_optimizer = property(lambda self: self.optimizers["generator"])
    d_optimizer = property(lambda self: self.optimizers["discriminator"])
    g_history = property(lambda self: self.history.get("generator"))
    d_history = property(lambda self: self.history.get("discriminator"))
    d_steps = property(lambda self: self.options.d_steps)

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator sample grids use: the EMA copy when enabled."""
        return self.sampling_networks["generator"]

    @property
    def ema(self) -> EMAGenerator | None:
        return self.averages.get("generator")


def _global_uniform(seed, shape, high):
    return tf.random.stateless_uniform(shape, seed=seed, minval=0.0, maxval=high)


def _scaled(optimizer, loss):
    """Float16 training: scale the loss up before differentiating (LossScaleOptimizer unscales)."""
    return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss


def _check_gradients(grads, variables, group: str) -> None:
    # A None gradient means a variable is off the loss path: fail at trace time with
    # the variable names instead of letting Keras warn and silently skip it.
    missing = [v.path for g, v in zip(grads, variables) if g is None]
    if missing:
        raise ValueError(f"{group}: no gradient for {len(missing)} variable(s), they are not on the loss path: {missing[:5]}")
