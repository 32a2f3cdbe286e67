"""Learning-rate schedules (every optimizer group): the multiplier by hand, through an optimizer, through fit."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

import gantrain
from gantrain.optimizers import build_optimizer, configure_schedules, factor_at
from tests.conftest import tiny_config


def _hand(kind, s, warmup, start, total, final):
    f = 1.0
    if kind != "constant":
        done = min(max((s - start) / max(total - start, 1), 0.0), 1.0)
        f = 1 - done * (1 - final) if kind == "linear" else final + (1 - final) * 0.5 * (1 + math.cos(math.pi * done))
    return f * min(1.0, (s + 1) / warmup) if warmup else f


@pytest.mark.parametrize("kind,warmup,start,final", [("linear", 0, 5, 0.0), ("linear", 3, 3, 0.1), ("cosine", 0, 0, 0.0), ("cosine", 2, 4, 0.2), ("constant", 4, 4, 0.0)])
def test_factor_matches_the_formulas(kind, warmup, start, final):
    got = [float(factor_at(s, kind, warmup, start, 10, final)) for s in range(10)]
    want = [_hand(kind, s, warmup, start, 10, final) for s in range(10)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The shapes, written out for one case: CycleGAN's constant half, then linear to 0.
    if (kind, warmup, start, final) == ("linear", 0, 5, 0.0):
        assert got == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])


def test_an_optimizer_follows_its_schedule_counting_training_steps():
    """SGD on loss = w moves w by exactly the scheduled rate at each update; two updates per step share a rate."""
    opt = build_optimizer({"name": "sgd", "learning_rate": 0.5, "momentum": 0.0, "nesterov": False,
                           "schedule": "linear", "warmup_steps": 0, "decay_start": 1, "final_factor": 0.0})
    configure_schedules({"g": opt}, total_steps=3, updates_per_step={"g": 2})
    w = tf.Variable(0.0)
    moves = []
    for _ in range(6):  # 3 training steps x 2 updates
        before = float(w.numpy())
        opt.apply([tf.constant(1.0)], [w])
        moves.append(before - float(w.numpy()))
    np.testing.assert_allclose(moves, [0.5, 0.5, 0.5, 0.5, 0.25, 0.25], rtol=1e-6)


def test_fit_logs_the_rate_each_step_used(mnist_dir, tmp_path):
    cfg = tiny_config(mnist_dir, steps=4)
    cfg["optimizer"] = {"generator": {"learning_rate": 1e-3, "schedule": "linear", "decay_start": 2},
                        "discriminator": {"learning_rate": 2e-3, "schedule": "cosine", "warmup_steps": 2}}
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 100, "num_samples": 4}
    run = gantrain.fit(cfg, run_dir=tmp_path / "r", progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr_g"] for r in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 0.5e-3])
    assert [r["lr_d"] for r in rows] == pytest.approx([2e-3 * _hand("cosine", s, 2, 2, 4, 0.0) for s in range(4)])
    assert rows[0]["lr_d"] == pytest.approx(1e-3)  # the warm-up's first step: half the rate
