"""Losses and weights of every family after a few steps, recorded from the code before the trainer
redesign of issue 13: the redesign must reproduce them (same seed, same data, same draws).

    GANTRAIN_RECORD=1 python -m pytest tests/test_recorded_values.py   # rewrite tests/data/recorded_values.json

Record only when a change of results is intended, and say why in the commit. Each case trains a
tiny network for three steps on fixed synthetic data (two cases through the compiled multi-step
call real training uses); all of every network's variables (weights, batch-norm statistics,
spectral-norm vectors) are summarised by their sum, their sum of squares and a seeded random
projection, which any change of the maths moves. The tolerance (relative 1e-5) absorbs float re-association only.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gantrain.config import validate
from gantrain.data import ImageSource, make_pipeline
from gantrain.data.labels import labeled_subset
from gantrain.losses import get_loss
from gantrain.optimizers import build_optimizer
from gantrain.rundir import build_model
from gantrain.trainer import GANTrainer, TrainOptions

RECORD = Path(__file__).parent / "data" / "recorded_values.json"
MLP = {"latent_dim": 6, "g_widths": [8], "d_widths": [8]}
CONV = {"latent_dim": 6, "g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]}
CASES = {
    "gan": {"model": {"family": "gan", **MLP}},
    "dcgan": {"model": {"family": "dcgan", "latent_dim": 6, "g_widths": [8, 4], "d_widths": [4]}},
    "cgan": {"model": {"family": "cgan", **MLP}, "train": {"update": "alternating"}},
    "cdcgan": {"model": {"family": "cdcgan", **CONV}},
    "acgan": {"model": {"family": "acgan", **CONV}, "train": {"update": "alternating", "g_noise": "reuse"}},
    "sgan": {"model": {"family": "sgan", **CONV}, "data": {"labeled_per_class": 2}, "loss": {"feature_matching": "add"}},
    "infogan": {"model": {"family": "infogan", **CONV, "continuous_codes": 2}},
    # The mechanics beyond the plain step: critic steps, a penalty, an EMA generator, label
    # smoothing, historical averaging, DiffAugment and spectral norm, all at once.
    "wgan_gp_tricks": {"model": {"family": "dcgan", "latent_dim": 6, "g_widths": [8, 4], "d_widths": [4], "dropout": 0.0, "d_norm": "spectral"},
                       "loss": {"name": "wasserstein", "penalty": "gradient_penalty"},
                       "train": {"d_steps": 2, "ema_decay": 0.9, "diffaugment": ["translation", "cutout", "color"],
                                 "historical_averaging": {"generator": 0.1}}},
    # The same mechanics through the compiled multi-step call that training uses.
    "dcgan_compiled": {"model": {"family": "dcgan", "latent_dim": 6, "g_widths": [8, 4], "d_widths": [4]}, "compiled": True},
    "wgan_gp_tricks_compiled": {"model": {"family": "dcgan", "latent_dim": 6, "g_widths": [8, 4], "d_widths": [4], "dropout": 0.0, "d_norm": "spectral"},
                                "loss": {"name": "wasserstein", "penalty": "gradient_penalty"},
                                "train": {"d_steps": 2, "ema_decay": 0.9, "diffaugment": ["translation", "cutout", "color"]}, "compiled": True},
    "lsgan_smoothing": {"model": {"family": "dcgan", "latent_dim": 6, "g_widths": [8, 4], "d_widths": [4]},
                        "loss": {"name": "least_squares", "real_target": 0.9, "target_noise": 0.05}, "train": {"update": "alternating"}},
}


def _source():
    rng = np.random.default_rng(0)
    return ImageSource(rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8), np.arange(40, dtype=np.int32) % 4, [str(k) for k in range(4)])


def _run(case: dict, compiled: bool = False) -> dict:
    raw = {"seed": 7, "data": {"loader": "mnist", "batch_size": 8}, **{k: v for k, v in case.items() if k not in ("data", "compiled")}}
    raw["data"].update(case.get("data", {}))
    cfg = validate(raw)
    source = _source()
    if cfg["data"]["labeled_per_class"]:
        from gantrain.data.labels import keep_labels_per_class

        source = keep_labels_per_class(source, cfg["data"]["labeled_per_class"], cfg["seed"])
    model = build_model(cfg, (28, 28, 1), source.num_classes)
    trainer = GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         get_loss(cfg["loss"]["name"]), 8, cfg["seed"], options=TrainOptions.from_config(cfg))
    it = iter(make_pipeline(source, 8, seed=cfg["seed"]))
    labeled = iter(make_pipeline(labeled_subset(source), 8, seed=cfg["seed"] + 1)) if model.uses_labeled_stream else None
    losses = []
    if compiled:  # the path real training takes: one compiled call of three steps (sums of the metrics)
        tf.config.run_functions_eagerly(False)
        try:
            out = trainer.train_steps(it, tf.constant(3), *([labeled] if labeled is not None else []))
        finally:
            tf.config.run_functions_eagerly(True)
        losses.append({k: float(v) for k, v in sorted(out.items())})
    else:
        for _ in range(3):
            out = trainer.train_step(it, labeled) if labeled is not None else trainer.train_step(it)
            losses.append({k: float(v) for k, v in sorted(out.items())})
    nets = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    if trainer.ema:
        nets["ema_generator"] = trainer.ema.model
        weights_extra = {"ema_num_updates": float(trainer.ema.num_updates.numpy())}
    else:
        weights_extra = {}
    weights = {}
    for name, net in nets.items():
        # Every variable: weights, batch-norm moving statistics, spectral-norm vectors, seed states.
        flat = np.concatenate([v.numpy().astype(np.float64).ravel() for v in net.variables])
        projection = np.random.default_rng(1).normal(size=flat.size)
        weights[name] = [float(flat.sum()), float((flat ** 2).sum()), float(flat @ projection)]
    return {"losses": losses, "weights": weights, **weights_extra}


@pytest.fixture(scope="module")
def eager():
    # One eager step of these networks runs the same Python and maths as the compiled one, in a
    # fraction of the tracing time.
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def recorded(eager):
    if os.environ.get("GANTRAIN_RECORD"):
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps({name: _run(case, case.get("compiled", False)) for name, case in CASES.items()}, indent=1) + "\n")
    return json.loads(RECORD.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_family_reproduces_its_recorded_losses_and_weights(recorded, name):
    now, then = _run(CASES[name], CASES[name].get("compiled", False)), recorded[name]
    assert [sorted(step) for step in now["losses"]] == [sorted(step) for step in then["losses"]]
    for step_now, step_then in zip(now["losses"], then["losses"]):
        for key in step_then:
            assert step_now[key] == pytest.approx(step_then[key], rel=1e-5, abs=1e-7), (key, step_now, step_then)
    assert sorted(now["weights"]) == sorted(then["weights"])
    for net in then["weights"]:
        np.testing.assert_allclose(now["weights"][net], then["weights"][net], rtol=1e-5, atol=1e-7, err_msg=net)
    assert now.get("ema_num_updates") == then.get("ema_num_updates")
