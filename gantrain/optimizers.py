"""Optimizer builders and learning-rate schedules. Each optimizer group gets its own instance
(Keras 3 refuses to share one).

Every optimizer section takes a schedule (``schedule``, ``warmup_steps``, ``decay_start``,
``final_factor``), counted in training steps: the rate at step ``s`` (0-based) is

* warm-up, ``s < warmup_steps``: ``lr * (s + 1) / warmup_steps``;
* ``constant``: ``lr``;
* ``linear``: ``lr`` until ``decay_start``, then linearly to ``final_factor * lr`` at ``train.steps``
  (CycleGAN: constant for the first half, then linearly to 0);
* ``cosine``: from ``decay_start``, ``lr * (f + (1 - f) * (1 + cos(pi * t)) / 2)`` with ``t`` the
  fraction of the decay done (Loshchilov & Hutter, without restarts).

The optimizer counts its own updates, so the schedule divides by the group's updates per training
step (a critic with ``d_steps: 5`` updates five times per step). The configured rate and the NaN
rollback's scale are variables of the schedule (:func:`set_learning_rate`), so a resumed run may
change them.
"""

from __future__ import annotations

import math
import weakref

import keras
import tensorflow as tf

from gantrain.registry import OPTIMIZERS
from gantrain.schema import Context, Field

_LR = Field(2e-4, "learning rate", "float", min=0, min_exclusive=True, max=10)


class _Optimizer:
    def __init__(self, build):
        self.build = build

    def check(self, params: dict, path: tuple, ctx: Context) -> None:
        """Cross-field rules for one optimizer section (none needed yet beyond the schema)."""


def _adam(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=p["learning_rate"], beta_1=p["beta_1"], beta_2=p["beta_2"], epsilon=p["epsilon"])


def _rmsprop(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=p["learning_rate"], rho=p["rho"], momentum=p["momentum"], epsilon=p["epsilon"])


def _sgd(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=p["learning_rate"], momentum=p["momentum"], nesterov=p["nesterov"])


_EPS = Field(1e-7, "numerical epsilon", "float", min=0, min_exclusive=True)

OPTIMIZERS.register("adam", description="Adam (learning_rate, beta_1, beta_2, epsilon)", schema={
    "learning_rate": _LR,
    "beta_1": Field(0.5, "first-moment decay (0.5 is the usual GAN choice, Radford et al.)", "float", min=0, max=0.999999),
    "beta_2": Field(0.999, "second-moment decay", "float", min=0, max=0.999999),
    "epsilon": _EPS,
})(_Optimizer(_adam))

OPTIMIZERS.register("rmsprop", description="RMSprop (learning_rate, rho, momentum, epsilon); WGAN's choice", schema={
    "learning_rate": _LR,
    "rho": Field(0.9, "decay of the squared-gradient average", "float", min=0, max=0.999999),
    "momentum": Field(0.0, "momentum", "float", min=0, max=0.999999),
    "epsilon": _EPS,
})(_Optimizer(_rmsprop))

OPTIMIZERS.register("sgd", description="SGD with optional (Nesterov) momentum", schema={
    "learning_rate": _LR,
    "momentum": Field(0.0, "momentum", "float", min=0, max=0.999999),
    "nesterov": Field(False, "Nesterov momentum", "bool"),
})(_Optimizer(_sgd))


SCHEDULES = ("constant", "linear", "cosine")
SCHEDULE_FIELDS = {
    "schedule": Field("constant", "learning-rate schedule after the warm-up: constant, linear (constant until decay_start, then linearly to "
                      "final_factor x the rate at train.steps; CycleGAN) or cosine (from decay_start to train.steps)", "str", choices=SCHEDULES),
    "warmup_steps": Field(0, "training steps of linear warm-up from 0 to the rate", "int", min=0),
    "decay_start": Field(None, "training step where linear or cosine decay begins (default: the end of the warm-up)", "int", min=0, nullable=True),
    "final_factor": Field(0.0, "linear or cosine: the rate at train.steps as a fraction of the configured rate", "float", min=0, max=1),
}


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The schedule of one optimizer group, in training steps (see the module docstring)."""

    def __init__(self, params: dict):
        self.kind, self.warmup = params["schedule"], params["warmup_steps"]
        self.decay_start = params["decay_start"] if params["decay_start"] is not None else params["warmup_steps"]
        self.final_factor = params["final_factor"]
        self.rate = tf.Variable(float(params["learning_rate"]), trainable=False, dtype=tf.float32, name="lr_base")
        # Set by configure(): the run's length and the group's updates per training step.
        self.total = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="lr_total_steps")
        self.updates_per_step = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="lr_updates_per_step")

    def configure(self, total_steps: int, updates_per_step: int) -> None:
        self.total.assign(float(total_steps))
        self.updates_per_step.assign(float(updates_per_step))

    def __call__(self, iterations):
        step = tf.floor(tf.cast(iterations, tf.float32) / self.updates_per_step)
        return self.rate * factor_at(step, self.kind, self.warmup, self.decay_start, self.total, self.final_factor)

    def get_config(self):
        return {"kind": self.kind, "warmup": self.warmup, "decay_start": self.decay_start, "final_factor": self.final_factor}


def factor_at(step, kind: str, warmup: int, decay_start: int, total, final_factor: float):
    """The schedule's multiplier of the configured rate at training step ``step`` (0-based), as a float32 tensor."""
    step = tf.cast(step, tf.float32)
    one = tf.constant(1.0)
    if kind == "constant":
        decayed = one
    else:
        span = tf.maximum(tf.cast(total, tf.float32) - decay_start, 1.0)
        done = tf.clip_by_value((step - decay_start) / span, 0.0, 1.0)
        if kind == "linear":
            decayed = 1.0 - done * (1.0 - final_factor)
        else:
            decayed = final_factor + (1.0 - final_factor) * 0.5 * (1.0 + tf.cos(math.pi * done))
    if warmup:
        decayed = decayed * tf.minimum(one, (step + 1.0) / warmup)
    return decayed


# optimizer -> its StepSchedule (Keras keeps the schedule in a private attribute; this keeps ours).
_SCHEDULES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def build_optimizer(params: dict) -> keras.optimizers.Optimizer:
    """The optimizer named in an ``optimizer.<group>`` section; its rate follows a StepSchedule when one is set."""
    if params.get("schedule", "constant") == "constant" and not params.get("warmup_steps", 0):
        return OPTIMIZERS.get(params["name"]).build(params)
    schedule = StepSchedule(params)
    optimizer = OPTIMIZERS.get(params["name"]).build({**params, "learning_rate": schedule})
    _SCHEDULES[optimizer] = schedule
    return optimizer


def schedule_of(optimizer) -> StepSchedule | None:
    inner = optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer
    return _SCHEDULES.get(inner)


def set_learning_rate(optimizer, rate: float) -> None:
    """The configured rate (x the rollback scale): the schedule's base rate, or the constant rate."""
    schedule = schedule_of(optimizer)
    if schedule is not None:
        schedule.rate.assign(rate)
    else:
        optimizer.learning_rate.assign(rate)


def last_rate(optimizer) -> float:
    """The rate the optimizer's last update used (what the logs show for the step just done)."""
    schedule = schedule_of(optimizer)
    if schedule is None:
        return float(optimizer.learning_rate.numpy())
    done = tf.maximum(tf.cast(optimizer.iterations, tf.float32) - schedule.updates_per_step, 0.0)
    return float(schedule(done).numpy())


def configure_schedules(optimizers: dict, total_steps: int, updates_per_step: dict) -> None:
    """Tell each group's schedule the run's length and how often the group updates per step."""
    for group, optimizer in optimizers.items():
        schedule = schedule_of(optimizer)
        if schedule is not None:
            schedule.configure(total_steps, updates_per_step[group])
