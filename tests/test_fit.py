"""End to end: the CLI and Python API train, checkpoint, resume exactly, sample and refuse clobbering."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from typer.testing import CliRunner

import gantrain
from gantrain.checkpoint import find_checkpoint
from gantrain.cli import app
from gantrain.errors import UserError
from tests.conftest import tiny_config

runner = CliRunner()


def _write(tmp_path: Path, cfg: dict, name="tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("fit")
    config = _write(tmp, tiny_config(mnist_dir))
    run_dir = tmp / "runs" / "tiny"
    # A real subprocess, as a user runs it: console script entry point, exit code, files on disk.
    proc = subprocess.run([sys.executable, "-m", "gantrain", "fit", str(config), "--run-dir", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return run_dir, config, proc


def test_fit_writes_the_run_directory(trained_run):
    run_dir, _, proc = trained_run
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["family"] == "dcgan" and saved["train"]["d_steps"] == 1  # resolved, defaults filled
    assert Path(find_checkpoint(run_dir)).name == "ckpt-6"
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == ["step_000003.png", "step_000006.png"]
    grid = np.asarray(Image.open(run_dir / "samples" / "step_000006.png"))
    assert grid.ndim == 2 and grid.shape[0] > 28  # a 2x2 grid of 28x28 grey images, upscaled
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "images_per_sec", "lr_g", "lr_d"):
        assert all(np.isfinite(r[key]) for r in rows), key
    events = list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert events
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        tags.update(v.tag for v in event.summary.value)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "images_per_sec", "lr_g", "samples"} <= tags
    assert "Traceback" not in proc.stderr


def test_fit_refuses_to_overwrite_an_existing_run(trained_run):
    run_dir, config, _ = trained_run
    before = sorted(p.name for p in run_dir.rglob("*"))
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert "already holds a run" in result.output and "--resume" in result.output
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_sample_from_run_and_checkpoint(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["sample", str(run_dir), "--n", "9", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 3 * 28
    a = gantrain.sample(run_dir, n=5, seed=1)
    b = gantrain.sample(str(run_dir / "checkpoints" / "ckpt-6"), n=5, seed=1)
    c = gantrain.sample(run_dir, n=5, seed=2)
    assert a.shape == (5, 28, 28, 1) and np.array_equal(a, b) and not np.array_equal(a, c)
    older = gantrain.sample(run_dir, n=5, seed=1, checkpoint=3)
    assert not np.array_equal(a, older)
    npy = tmp_path / "s.npy"
    assert runner.invoke(app, ["sample", str(run_dir), "--n", "3", "--out", str(npy)]).exit_code == 0
    assert np.load(npy).shape == (3, 28, 28, 1)
    folder = tmp_path / "pngs"
    assert runner.invoke(app, ["sample", str(run_dir), "--n", "3", "--out", str(folder), "--format", "png"]).exit_code == 0
    assert len(list(folder.glob("*.png"))) == 3


def test_sample_errors_are_one_line(tmp_path, trained_run):
    run_dir, _, _ = trained_run
    for args, needle in (
        (["sample", str(tmp_path / "missing")], "no such run directory"),
        (["sample", str(tmp_path)], "no checkpoint found"),
        (["sample", str(run_dir), "--checkpoint", "999"], "available steps: [3, 6]"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert needle in result.output and "Traceback" not in result.output


def _all_variables(run_dir):
    reader = tf.train.load_checkpoint(find_checkpoint(run_dir))
    names = [n for n, _ in tf.train.list_variables(find_checkpoint(run_dir)) if "OBJECT_GRAPH" not in n and "save_counter" not in n]
    return {n: reader.get_tensor(n) for n in names}


def test_resume_is_exact(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir, deterministic=True)
    straight = gantrain.fit(cfg, run_dir=tmp_path / "straight", progress=False)
    split = gantrain.fit(cfg, overrides=["train.steps=3"], run_dir=tmp_path / "split", progress=False)
    gantrain.fit(None, overrides=["train.steps=6"], resume=split, progress=False)
    a, b = _all_variables(straight), _all_variables(split)
    assert set(a) == set(b) and len(a) > 20
    different = [n for n in a if not np.array_equal(a[n], b[n])]
    assert different == []
    # Optimizer slots and the step are in there too, not only weights.
    assert any("g_optimizer" in n for n in a) and any(n.startswith("step") for n in a)
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]  # the first run logged its last step, 3; nothing is duplicated


CONV_TINY = {"latent_dim": 8, "g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]}
RESUME_CASES = {
    # Two critic steps per G step (the data position is 2 batches per step), an EMA generator with
    # its warm-up counter, every DiffAugment op (stateless draws), and several steps per call.
    "d_steps_ema_diffaugment": {"train": {"d_steps": 2, "update": "alternating", "ema_decay": 0.9, "steps_per_call": 2,
                                          "diffaugment": ["translation", "cutout", "color"]}},
    # The semi-supervised family reads a second, labelled stream that must resume at its own place.
    "sgan_labelled_stream": {"model": {"family": "sgan", **CONV_TINY, "dropout": 0.3}, "data": {"labeled_per_class": 3},
                             "train": {"update": "alternating"}},
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_is_exact_for_critic_steps_ema_diffaugment_and_labelled_streams(tmp_path, mnist_dir, case):
    cfg = tiny_config(mnist_dir, deterministic=True)
    for section, values in RESUME_CASES[case].items():
        cfg[section] = values if section == "model" else {**cfg[section], **values}
    straight = gantrain.fit(cfg, run_dir=tmp_path / "straight", progress=False)
    split = gantrain.fit(cfg, overrides=["train.steps=3"], run_dir=tmp_path / "split", progress=False)
    gantrain.fit(None, overrides=["train.steps=6"], resume=split, progress=False)
    a, b = _all_variables(straight), _all_variables(split)
    assert set(a) == set(b)
    if "ema_decay" in cfg["train"]:
        assert any(n.startswith("ema_generator/") for n in a)
    assert [n for n in a if not np.array_equal(a[n], b[n])] == []


def test_result_does_not_depend_on_steps_per_call(tmp_path, mnist_dir):
    runs = {k: gantrain.fit(tiny_config(mnist_dir, deterministic=True, steps_per_call=k), run_dir=tmp_path / f"k{k}", progress=False) for k in (1, 3)}
    a, b = _all_variables(runs[1]), _all_variables(runs[3])
    assert set(a) == set(b) and [n for n in a if not np.array_equal(a[n], b[n])] == []


def test_resume_refuses_architecture_change(tmp_path, mnist_dir):
    run = gantrain.fit(tiny_config(mnist_dir), overrides=["train.steps=1"], run_dir=tmp_path / "r", progress=False)
    with pytest.raises(UserError, match=r"model.g_widths: \[8, 4\] -> \[16, 4\]"):
        gantrain.fit(None, overrides=["model.g_widths=[16, 4]"], resume=run, progress=False)
    other = tiny_config(mnist_dir)
    other["model"]["latent_dim"] = 9
    with pytest.raises(UserError, match="model.latent_dim: 8 -> 9"):
        gantrain.fit(other, resume=run, progress=False)
    # Raising the step budget is allowed.
    gantrain.fit(None, overrides=["train.steps=2"], resume=run, progress=False)
    assert Path(find_checkpoint(run)).name == "ckpt-2"


def test_sample_refuses_checkpoint_of_another_family(tmp_path, mnist_dir):
    run = gantrain.fit(tiny_config(mnist_dir), overrides=["train.steps=1"], run_dir=tmp_path / "r", progress=False)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"] = {"family": "gan", "latent_dim": 8, "g_widths": [4], "d_widths": [4], "bn_momentum": 0.8, "leaky_slope": 0.2}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="does not fit"):
        gantrain.sample(run, n=2)


def test_fit_prints_no_tensorflow_error_lines(trained_run):
    """Review item 15: every DCGAN fit printed grappler's `E0000 ... remapper failed` line."""
    _, _, proc = trained_run
    errors = [line for line in proc.stderr.splitlines() if line.startswith("E0000") or "remapper failed" in line]
    assert errors == []


def test_fit_restores_the_grappler_options(tmp_path, mnist_dir):
    before = dict(tf.config.optimizer.get_experimental_options())
    gantrain.fit(tiny_config(mnist_dir, steps=1), run_dir=tmp_path / "r", progress=False)
    after = tf.config.optimizer.get_experimental_options()
    assert after.get("remapping", True) == before.get("remapping", True)
