"""TensorBoard HParams for a run: what sets it apart from the defaults, and the metrics to judge it by.

At every (re)start ``fit`` writes two summaries into the run's ``tb/`` writer (``log_hparams``):

* the run's hyperparameters (``run_hparams``): the resolved config keys whose values differ from the
  defaults of its family, data loader, loss and optimizers (a family's own defaults count as
  defaults), plus ``model.family``, ``loss.name`` and ``data.loader`` always. ``tensorboard --logdir
  runs/`` then shows every run as one row of the HParams table, named by its directory.
* the experiment: those keys and the metrics the run logs (``eval/<metric>`` and, for families with
  a classifier, ``test_accuracy``), so the table's metric columns are the evaluation numbers, not
  every scalar.

Limits, from TensorBoard: it reads one experiment summary per logdir (the first run it finds), so
with runs that differ in other keys some hparam columns can be missing from the table; a run's
value is blank (not the default) for a key it does not log.

Only this module imports ``tensorboard.plugins.hparams``; without tensorboard nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from gantrain.config import flatten, schema_for
from gantrain.registry import MODELS
from gantrain.schema import Field, Select

# Logged even at their defaults. TensorBoard takes the table's columns from the first run's
# experiment summary it finds, so the keys runs are most often compared by are in every run's list.
ALWAYS = ("model.family", "loss.name", "data.loader", "data.batch_size", "seed", "train.steps", "train.update", "train.d_steps",
          "train.ema_decay", "loss.penalty", "optimizer.generator.learning_rate", "optimizer.discriminator.learning_rate",
          "optimizer.generator.beta_1", "optimizer.discriminator.beta_1")
NOT_HPARAMS = ("name",)  # the run's name is its row label already


def default_values(cfg: dict) -> dict[str, Any]:
    """The default of every key of a resolved config, dotted, for the config's own family, loader,
    loss and optimizer choices (with the family's defaults for general keys)."""
    out: dict[str, Any] = {}
    _walk_defaults(schema_for(cfg), cfg, "", out)
    out.update(MODELS.get(cfg["model"]["family"]).defaults)
    return out


def _walk_defaults(schema: dict, values: dict, prefix: str, out: dict) -> None:
    for key, spec in schema.items():
        dotted = f"{prefix}{key}"
        if isinstance(spec, Field):
            # A size default is written as one int and resolved to [height, width].
            out[dotted] = [spec.default, spec.default] if spec.kind == "size" and isinstance(spec.default, int) else spec.default
        elif isinstance(spec, Select):
            chosen = values.get(key, {})
            out[f"{dotted}.{spec.key}"] = spec.default
            entry = spec.registry.entry(chosen[spec.key])
            _walk_defaults({**(spec.common or {}), **entry.schema}, chosen, f"{dotted}.", out)
        else:
            _walk_defaults(spec, values.get(key, {}), f"{dotted}.", out)


def run_hparams(cfg: dict) -> dict[str, bool | int | float | str]:
    """The hparams a run logs: keys that differ from ``default_values`` plus ``ALWAYS``, as values
    TensorBoard takes (bool, number, string; lists as JSON text, null as "null")."""
    defaults = default_values(cfg)
    out = {}
    for key, value in flatten(cfg):
        if key in NOT_HPARAMS:
            continue
        if key in ALWAYS or key not in defaults or value != defaults[key]:
            out[key] = _tb_value(value)
    return dict(sorted(out.items()))


def _tb_value(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else json.dumps(value)


def metric_tags(cfg: dict, classifier_accuracy: bool) -> list[str]:
    """The TensorBoard tags of evaluation numbers: the run's own first (as TrainingLoop logs them),
    then every other one a run can log. The experiment of the first run TensorBoard finds decides
    the table's metric columns for all runs, so each run declares them all; one it does not log
    stays blank in its row."""
    from gantrain.evaluate import metric_names

    tags = [f"eval/{m}" for m in cfg["eval"]["metrics"] or []]
    tags += (["test_accuracy"] if classifier_accuracy else [])
    every = [f"eval/{m}" for m in metric_names()] + ["test_accuracy"]
    return tags + [t for t in every if t not in tags]


def log_hparams(cfg: dict, metrics: list[str], trial_id: str) -> bool:
    """Write the run's hparams and the experiment declaring ``metrics`` to the default summary
    writer. Returns False (and writes nothing) when tensorboard is not installed."""
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        return False
    hparams = run_hparams(cfg)
    hp.hparams_config(hparams=[hp.HParam(k) for k in hparams], metrics=[hp.Metric(tag) for tag in metrics])
    # The trial id keeps runs with equal hparams (two seeds' worth of one config, say) apart as rows.
    hp.hparams(hparams, trial_id=trial_id)
    return True
