"""The vocabulary a family uses to tell the generic trainer how it trains.

A family's built model names its networks and groups them under optimizers (:class:`Group`), and
says what one training step does as a :class:`Plan`: an ordered list of :class:`Update` s, each
stepping one optimizer group to minimise a loss the family computes (:class:`Losses`). The
trainer (trainer.py) owns everything mechanical around that: tapes and variable lists, loss
scaling, compilation, replicas, clipping, averages, checkpoints. A family never opens a tape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Group:
    """One optimizer (configured as ``optimizer.<name>``) and the networks it trains.

    ``short`` prefixes what the group's updates log and save: ``d`` gives ``d_loss``, ``lr_d`` and the
    checkpoint entries ``d_optimizer`` and ``d_history``.
    """

    name: str
    short: str
    networks: tuple[str, ...]


@dataclass(frozen=True)
class Losses:
    """What an update's loss function returns.

    ``terms`` are summed into the loss the update minimises (in order); ``metrics`` are only logged.
    ``unsummed`` names terms that are logged with the others but left out of the sum (the
    adversarial term when feature matching replaces it). With more than one term each is logged as
    ``<short>_<name>`` next to the total ``<short>_loss``.
    """

    terms: dict
    metrics: dict = field(default_factory=dict)
    unsummed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Update:
    """One optimizer step of a training step.

    ``loss(ctx) -> Losses`` runs inside the trainer's tape: it runs the forward passes it needs on
    ``ctx.batch`` (this replica's slice, keyed by data role), ``ctx.latent`` and ``ctx.seed`` (see
    trainer.UpdateContext). The update trains exactly the networks of its optimizer ``group``.
    ``repeat`` updates run back to back (a critic's ``d_steps``); each reads the next batch unless
    ``fresh_data`` is False (then it reuses the step's last batch), and draws new latent inputs
    unless ``fresh_noise`` is False (then it reuses the last ones).
    """

    group: str
    loss: Callable
    repeat: int = 1
    fresh_data: bool = True
    fresh_noise: bool = True


@dataclass(frozen=True)
class Plan:
    """The updates of one training step, in order.

    ``joint(ctx) -> {group: Losses}``, when given, computes every update's loss from one forward
    pass; the trainer uses it for ``train.update: simultaneous`` (one batch, one draw of noise, all
    gradients at the pre-update weights). A family offers it only where that is a faithful variant
    of its algorithm.
    """

    updates: tuple[Update, ...]
    joint: Callable | None = None
