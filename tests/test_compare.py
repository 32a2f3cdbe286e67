"""After training (issue 17): the training clock in metrics.jsonl, TensorBoard HParams and the
eval-by-time series, ``compare_runs`` over a folder of runs, and the sample-grid GIF."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image, ImageSequence
from tensorboard.plugins.hparams import plugin_data_pb2

import gantrain
from gantrain.animate import animate
from gantrain.compare import compare_runs, format_table, format_time, metric_summary
from gantrain.config import flatten, validate
from gantrain.hparams import ALWAYS, run_hparams
from gantrain.loop import trial_id
from gantrain.runlock import LOCK_NAME, RunLock
from tests.conftest import tiny_config, user_error

PAST = 1000.0  # the clock a resumed run continues from (written into its metrics.jsonl by hand)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """runs/a: 6 steps with FID every 3 and a grid every step; runs/b: another loss, 4 steps, then
    resumed to 6 after its clock was set to PAST. Each fit call's wall time is measured around it."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    cfg = tiny_config(mnist_dir)
    cfg["eval"] = {"metrics": ["fid"], "every": 3, "n": 200}
    cfg["log"].update(sample_every=1, checkpoint_every=100)
    t0 = time.perf_counter()
    a = gantrain.fit(cfg, run_dir=root / "a", progress=False)
    wall_a = time.perf_counter() - t0
    b_cfg = tiny_config(mnist_dir)
    b_cfg["loss"] = {"name": "least_squares"}
    b = gantrain.fit(b_cfg, overrides=["train.steps=4"], run_dir=root / "b", progress=False)
    before = _rows(b)
    before[-1]["time"] = PAST
    (b / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in before))
    t0 = time.perf_counter()
    gantrain.fit(overrides=["train.steps=6"], resume=b, progress=False)
    wall_resume = time.perf_counter() - t0
    return {"root": root, "a": a, "b": b, "wall_a": wall_a, "wall_resume": wall_resume, "b_before": before}


def test_every_row_has_the_training_clock_accumulated_over_resumes(runs):
    rows = _rows(runs["a"])
    assert [r["step"] for r in rows] == [2, 3, 4, 6, 6]  # scalars every 2 and at the end, FID at 3 and 6
    times = [r["time"] for r in rows]
    assert all(isinstance(t, float) for t in times) and times == sorted(times)
    assert 0 < times[0] and times[-1] <= runs["wall_a"]  # inside the fit call's own wall time
    assert all("time" in r for r in rows if "eval/fid" in r)

    rows = _rows(runs["b"])
    assert rows[: len(runs["b_before"])] == runs["b_before"]  # the kept rows (steps 2, 4) untouched
    after = rows[len(runs["b_before"]):]
    assert [r["step"] for r in after] == [6]
    # Continued from PAST, not from 0, and by no more than the resumed process ran.
    assert PAST < after[0]["time"] <= PAST + runs["wall_resume"]


def _events(run: Path) -> list:
    files = sorted((run / "tb").glob("events.out.tfevents.*"))
    assert files, f"no event files in {run / 'tb'}"
    return [e for f in files for e in tf.compat.v1.train.summary_iterator(str(f))]


def _hparams_data(run: Path) -> tuple[list, list]:
    """(experiments, session start infos) among the run's hparams summaries."""
    experiments, sessions = [], []
    for event in _events(run):
        for v in event.summary.value:
            if v.metadata.plugin_data.plugin_name == "hparams":
                data = plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
                if data.HasField("experiment"):
                    experiments.append(data.experiment)
                if data.HasField("session_start_info"):
                    sessions.append(data.session_start_info)
    return experiments, sessions


def _value(v):
    kind = v.WhichOneof("kind")
    return {"number_value": v.number_value, "string_value": v.string_value, "bool_value": v.bool_value}[kind]


def test_tensorboard_hparams_list_the_run_and_its_metrics(runs):
    a = runs["a"]
    experiments, sessions = _hparams_data(a)
    assert len(experiments) == 1 and len(sessions) == 1
    tags = [m.name.tag for m in experiments[0].metric_infos]
    # The run's own metric first, then every other one a run can log (TensorBoard takes the columns
    # of all runs from the first experiment it finds).
    assert tags[0] == "eval/fid" and {"eval/kid", "eval/is", "eval/accuracy", "test_accuracy"} <= set(tags) and len(set(tags)) == len(tags)
    logged = {k: _value(v) for k, v in sessions[0].hparams.items()}
    assert sorted(h.name for h in experiments[0].hparam_infos) == sorted(logged)
    assert sessions[0].group_name == trial_id(a) and trial_id(a).startswith("a-")  # one row per run directory
    assert trial_id(a) != trial_id(a.parent / "elsewhere" / "a")  # the same name in another folder is another row
    # The keys tiny_config sets (none at its default), the eval section set here, the loss always.
    saved = yaml.safe_load((a / "config.yaml").read_text())
    assert logged["model.family"] == "dcgan" and logged["data.loader"] == "mnist" and logged["loss.name"] == "non_saturating"
    assert logged["model.latent_dim"] == 8 and logged["train.steps"] == 6 and logged["log.sample_every"] == 1
    assert logged["model.g_widths"] == "[8, 4]" and logged["eval.metrics"] == '["fid"]' and logged["eval.n"] == 200
    assert logged["data.root"] == saved["data"]["root"]
    assert logged["train.d_steps"] == 1 and logged["loss.penalty"] == "none"  # in every run's list, defaults or not
    assert "train.deterministic" not in logged and "name" not in logged  # a default not in ALWAYS / the label

    # A resumed run logs its hparams again in its new event file; without an eval section, its
    # experiment still declares the metrics other runs log.
    experiments, sessions = _hparams_data(runs["b"])
    assert len(sessions) == 2 and all(e.metric_infos[0].name.tag == "eval/fid" for e in experiments)
    assert {k: _value(v) for k, v in sessions[-1].hparams.items()}["loss.name"] == "least_squares"


def test_eval_metrics_are_also_logged_against_training_seconds(runs):
    a = runs["a"]
    by_time, by_step = [], []
    for event in _events(a):
        for v in event.summary.value:
            if v.tag == "eval_by_seconds/fid":
                by_time.append((event.step, float(tf.make_ndarray(v.tensor))))
            if v.tag == "eval/fid":
                by_step.append((event.step, float(tf.make_ndarray(v.tensor))))
    evals = [r for r in _rows(a) if "eval/fid" in r]
    assert [s for s, _ in by_step] == [r["step"] for r in evals] == [3, 6]
    assert [s for s, _ in by_time] == [int(r["time"]) for r in evals]  # whole seconds of the same clock
    np.testing.assert_allclose([v for _, v in by_time], [r["eval/fid"] for r in evals], rtol=1e-5)


def test_hparams_are_the_keys_that_differ_from_the_defaults(mnist_dir):
    raw = tiny_config(mnist_dir)
    raw["train"]["deterministic"] = False  # set, but to its default: not an hparam
    raw["optimizer"] = {"generator": {"learning_rate": 3e-4}}
    cfg = validate(raw)
    expected = {k: v for k, v in flatten(raw) if k not in ("name", "train.deterministic")}
    resolved = dict(flatten(cfg))
    expected.update({k: "null" if resolved[k] is None else resolved[k] for k in ALWAYS if k in resolved and k not in expected})  # at their defaults
    expected = {k: json.dumps(v) if isinstance(v, list) else v for k, v in expected.items()}
    assert run_hparams(cfg) == expected
    assert set(ALWAYS) <= set(run_hparams(cfg))


def test_compare_a_folder_of_runs(runs):
    a, b = runs["a"], runs["b"]
    eval_report = {"checkpoint_step": 6, "results": [{"metric": "fid", "value": 12.5}, {"metric": "kid", "value": {"mean": 0.25, "std": 0.01}},
                                                     {"metric": "pr", "value": {"precision": 0.5, "recall": 0.75}}]}
    (a / "eval.json").write_text(json.dumps(eval_report))
    report = compare_runs([runs["root"]])
    assert [r["run"] for r in report["runs"]] == ["a", "b"]
    ra, rb = report["runs"]
    assert (ra["family"], ra["loss"], ra["step"], ra["steps"], ra["status"]) == ("dcgan", "non_saturating", 6, 6, "done")
    assert (rb["loss"], rb["step"], rb["status"], rb["time"]) == ("least_squares", 6, "done", _rows(b)[-1]["time"])
    assert ra["time"] == max(r["time"] for r in _rows(a))

    # The differing keys, against the two saved configs read here.
    ca, cb = (dict(flatten(yaml.safe_load((r / "config.yaml").read_text()))) for r in (a, b))
    expected = sorted(k for k in set(ca) | set(cb) if k != "name" and ca.get(k) != cb.get(k))
    assert report["differing_keys"] == expected
    assert {"loss.name", "eval.metrics", "log.sample_every", "log.checkpoint_every"} <= set(expected)
    assert not {"model.family", "train.steps", "seed"} & set(expected)
    assert ra["config"] == {k: ca[k] for k in expected} and rb["config"] == {k: cb[k] for k in expected}

    fids = [(r["step"], r["eval/fid"]) for r in _rows(a) if "eval/fid" in r]
    best = min(fids, key=lambda p: p[1])
    assert ra["metrics"] == {"fid": {"latest": fids[-1][1], "latest_step": 6, "best": best[1], "best_step": best[0], "better": "lower"}}
    assert rb["metrics"] == {} and report["metrics"] == ["fid"]
    assert ra["eval_json"] == {"fid": {"value": 12.5, "step": 6}, "kid": {"value": 0.25, "step": 6},
                               "precision": {"value": 0.5, "step": 6}, "recall": {"value": 0.75, "step": 6}}

    table = format_table(report)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["run", "status", "family", "loss", "step", "time"]
    assert "fid latest" in lines[0] and "loss.name" in lines[0] and "kid (eval.json)" in lines[0]
    row_a = next(line for line in lines if line.startswith("a "))
    assert f"{fids[-1][1]:.4g} @6" in row_a and f"{best[1]:.4g} @{best[0]}" in row_a and "12.5 @6" in row_a
    assert "least_squares" in next(line for line in lines if line.startswith("b "))
    # The same report from the two run directories named one by one (and one of them twice).
    again = compare_runs([a, b, a])
    assert [r["run"] for r in again["runs"]] == ["a", "b"] and again["differing_keys"] == expected
    json.dumps(report)  # --json prints it as is


def test_latest_and_best_follow_each_metrics_direction():
    rows = [{"step": 2, "eval/fid": 5.0, "eval/is": 1.5, "eval/pr": 0.2, "d_loss": 0.1},
            {"step": 4, "eval/fid": 3.0, "eval/is": 2.5, "test_accuracy": 0.7},
            {"step": 6, "eval/fid": 4.0, "eval/is": 2.0, "eval/pr": 0.1, "test_accuracy": 0.6}]
    assert metric_summary(rows) == {
        "fid": {"latest": 4.0, "latest_step": 6, "best": 3.0, "best_step": 4, "better": "lower"},
        "is": {"latest": 2.0, "latest_step": 6, "best": 2.5, "best_step": 4, "better": "higher"},
        "pr": {"latest": 0.1, "latest_step": 6, "best": None, "best_step": None, "better": None},  # no single direction
        "test_accuracy": {"latest": 0.6, "latest_step": 6, "best": 0.7, "best_step": 4, "better": "higher"},
    }
    assert [format_time(t) for t in (None, 9.96, 65, 3725)] == ["-", "10.0s", "1m05s", "1h02m"]


def test_a_live_lock_marks_a_run_as_training(runs):
    b = runs["b"]
    with RunLock(b):
        report = compare_runs([runs["root"]])
        rb = report["runs"][1]
        assert rb["status"] == "training" and rb["lock"] == f"process {os.getpid()} on {socket.gethostname()}"
        assert report["runs"][0]["status"] == "done"
        assert "training now: b (process" in format_table(report)
    # A lock left by a process that is gone (pids never go above 2**22 on Linux) is stale.
    (b / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 7, "start": "1", "since": 0}))
    try:
        rb = compare_runs([b])["runs"][0]
        assert (rb["status"], rb["lock"]) == ("done", None)
    finally:
        (b / LOCK_NAME).unlink()


def test_progress_gif_has_one_frame_per_grid_in_step_order(runs, tmp_path):
    a = runs["a"]
    grids = {int(p.stem.split("_")[1]): np.asarray(Image.open(p)) for p in (a / "samples").glob("step_*.png")}
    assert sorted(grids) == [1, 2, 3, 4, 5, 6]
    for every, fps, expected in ((1, 5, [1, 2, 3, 4, 5, 6]), (4, 2, [1, 5, 6])):  # the last grid is always kept
        out = tmp_path / f"every{every}.gif"
        assert animate(a, out, fps=fps, every=every) == expected
        with Image.open(out) as gif:
            frames = [(np.asarray(f.convert("L")), f.info["duration"]) for f in ImageSequence.Iterator(gif)]
        assert len(frames) == len(expected)
        h, w = grids[1].shape
        bands = []
        for (pixels, duration), step in zip(frames, expected):
            band = pixels.shape[0] - h
            assert 8 <= band <= 30 and pixels.shape[1] == w and duration == 1000 / fps
            np.testing.assert_array_equal(pixels[band:], grids[step])  # the grid itself, every pixel, below the band
            assert (pixels[:band] < 128).any()  # the step is written in the band
            bands.append(pixels[:band])
        assert all(not np.array_equal(x, y) for x, y in zip(bands, bands[1:]))


def test_bad_inputs_are_one_line_user_errors(runs, tmp_path):
    empty = tmp_path / "empty"
    (empty / "notarun").mkdir(parents=True)
    user_error(lambda: compare_runs([empty]), str(empty), "no runs found")
    (tmp_path / "file.txt").write_text("x")
    user_error(lambda: compare_runs([tmp_path / "file.txt"]), "not a run directory")
    user_error(lambda: compare_runs([tmp_path / "missing"]), "no such directory")
    user_error(lambda: compare_runs([]), "give one or more run directories")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.yaml").write_text("a: 1\n")
    user_error(lambda: compare_runs([tmp_path / "other"]), "not a gantrain run")
    user_error(lambda: animate(empty, tmp_path / "p.gif"), "no sample grids")
    user_error(lambda: animate(runs["a"], tmp_path / "p.png"), "give a .gif file name")
    user_error(lambda: animate(runs["a"], tmp_path / "p.gif", every=0), "--every 0")
    user_error(lambda: animate(runs["a"], tmp_path / "p.gif", fps=0), "--fps 0")
    assert not (tmp_path / "p.gif").exists()


def test_compare_and_animate_commands(runs, tmp_path):
    """The CLI surface over the same runs: the table and --json, the GIF, and bad inputs exit 2 with one line."""
    from typer.testing import CliRunner

    from gantrain.cli import app

    runner = CliRunner()
    table = runner.invoke(app, ["compare", str(runs["root"])])
    assert table.exit_code == 0, table.output
    assert "loss.name" in table.output and "least_squares" in table.output and "non_saturating" in table.output
    as_json = runner.invoke(app, ["compare", str(runs["a"]), str(runs["b"]), "--json"])
    assert json.loads(as_json.output) == compare_runs([runs["a"], runs["b"]])
    gif = tmp_path / "progress.gif"
    done = runner.invoke(app, ["sample", str(runs["a"]), "--animate", str(gif), "--every", "2"])
    assert done.exit_code == 0, done.output
    grids = sorted((runs["a"] / "samples").glob("step_*.png"))
    with Image.open(gif) as im:
        assert im.n_frames == len(grids[::2]) + (len(grids) % 2 == 0)  # every 2nd grid, and always the last
    for args in (["compare", str(tmp_path / "missing")], ["sample", str(runs["a"]), "--animate", str(tmp_path / "x.gif"), "--label", "1"]):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output
