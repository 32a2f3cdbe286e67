"""``gantrain compare``: many runs side by side, read from what ``fit`` and ``eval`` leave in each run.

A run is a directory holding config.yaml (given by name, it may not have logged yet); a folder
given instead is searched for runs (subfolders holding config.yaml and metrics.jsonl, not looking
inside a run). For each run the report gives:

* family, loss, steps done (the last step in metrics.jsonl) of ``train.steps``, and training
  wall-clock (the ``time`` of its last row, accumulated over resumes; None for runs logged before
  the field);
* latest and best value of each evaluation number logged during training (``eval/<metric>`` rows,
  and ``test_accuracy`` of the classifying families), with their steps; best follows the metric's
  direction (none for precision/recall);
* the last ``gantrain eval`` report (eval.json): its numbers at its checkpoint step. They are kept
  apart from the training series because their protocol (sample count, split) usually differs;
* ``status``: training (a live ``.lock``: see gantrain/runlock.py), done, or stopped;
* the values of the config keys that differ between the runs (``name`` left out: it labels the run).

Nothing is validated against the current schema or data: a run whose dataset has moved still
compares. Lines of metrics.jsonl that cannot be read (a row being written) are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gantrain.config import flatten, read_config_file
from gantrain.errors import UserError
from gantrain.evaluate import lower_is_better
from gantrain.rundir import CONFIG, EVAL_JSON
from gantrain.runlock import LOCK_NAME, RunLock

METRICS_JSONL = "metrics.jsonl"
NOT_COMPARED = ("name",)
CELL_WIDTH = 40  # longer table cells (paths) keep their end; --json has them whole


# -- finding runs ---------------------------------------------------------------------------------
def find_runs(paths) -> list[Path]:
    """The run directories named by ``paths`` (runs, or folders searched for runs), in the given
    order, each once. A UserError for a missing path, a file, or a folder without runs."""
    if not paths:
        raise UserError("give one or more run directories, or a folder holding runs (e.g. gantrain compare runs/)")
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path}: no such directory; give run directories or a folder holding runs")
        if not path.is_dir():
            raise UserError(f"{path}: not a run directory (a run directory holds {CONFIG} and {METRICS_JSONL})")
        runs = [path] if (path / CONFIG).is_file() else _runs_under(path)
        if not runs:
            raise UserError(f"{path}: no runs found (no folder in it holds {CONFIG} and {METRICS_JSONL}); "
                            "give run directories or the folder that holds them")
        for run in runs:
            found.setdefault(run.resolve(), run)
    return list(found.values())


def _runs_under(root: Path) -> list[Path]:
    out = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if CONFIG in files and METRICS_JSONL in files:
            out.append(Path(here))
            dirs[:] = []  # a run's own folders (checkpoints, samples, tb) hold no runs
    return out


# -- one run --------------------------------------------------------------------------------------
def read_run(run_dir: Path) -> dict:
    """One row of the report (without the differing config keys); see the module docstring."""
    cfg = _read_config(run_dir)
    rows = _read_rows(run_dir / METRICS_JSONL)
    step = max((r["step"] for r in rows), default=0)
    times = [r["time"] for r in rows if isinstance(r.get("time"), (int, float))]
    holder = live_lock(run_dir)
    steps = cfg["train"]["steps"]
    penalty = cfg["loss"].get("penalty", "none")
    return {
        "path": str(run_dir),
        "name": cfg.get("name"),
        "family": cfg["model"]["family"],
        "loss": cfg["loss"]["name"] + (f"+{penalty}" if penalty not in (None, "none") else ""),
        "step": step,
        "steps": steps,
        "time": max(times) if times else None,
        "status": "training" if holder else ("done" if step >= steps else "stopped"),
        "lock": holder,
        "metrics": metric_summary(rows),
        "eval_json": _eval_json(run_dir / EVAL_JSON),
    }


def _read_config(run_dir: Path) -> dict:
    cfg, _ = read_config_file(run_dir / CONFIG)
    try:
        cfg["model"]["family"], cfg["loss"]["name"], cfg["train"]["steps"]
    except (KeyError, TypeError):
        raise UserError(f"{run_dir / CONFIG}: not a gantrain run's resolved config (no model.family, loss.name or train.steps)") from None
    return cfg


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a row being written by a live run
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def _better(metric: str) -> str | None:
    """'lower', 'higher' or None (no single direction, e.g. precision/recall) for a logged metric name."""
    try:
        lower = lower_is_better("accuracy" if metric == "test_accuracy" else metric)
    except UserError:  # a metric this version does not know
        return None
    return None if lower is None else ("lower" if lower else "higher")


def metric_summary(rows: list[dict]) -> dict:
    """{metric: {latest, latest_step, best, best_step, better}} over the evaluation numbers of
    metrics.jsonl rows (``eval/<metric>`` as ``<metric>``, and ``test_accuracy``)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if (key.startswith("eval/") or key == "test_accuracy") and isinstance(value, (int, float)):
                series.setdefault(key.removeprefix("eval/"), []).append((row["step"], float(value)))
    out = {}
    for metric, points in sorted(series.items()):
        latest_step, latest = max(points, key=lambda p: p[0])  # one value per step: resumes drop re-logged rows
        better = _better(metric)
        best_step, best = (None, None)
        if better is not None:
            pick = min if better == "lower" else max
            best_step, best = pick(points, key=lambda p: p[1])
        out[metric] = {"latest": latest, "latest_step": latest_step, "best": best, "best_step": best_step, "better": better}
    return out


def _eval_json(path: Path) -> dict:
    """{metric: {value, step}} of the last ``gantrain eval`` report; a {mean, std} value gives its
    mean, other dict values (precision and recall) one entry each."""
    if not path.is_file():
        return {}
    out = {}
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        results, step = report["results"], report.get("checkpoint_step")
        for result in results:
            value = result.get("value")
            if isinstance(value, dict):
                parts = {result["metric"]: value["mean"]} if "mean" in value else value
            else:
                parts = {result["metric"]: value}
            out.update({k: {"value": v, "step": step} for k, v in parts.items() if isinstance(v, (int, float))})
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path}: not a gantrain eval report; delete it or rerun gantrain eval on the run") from None
    return out


def live_lock(run_dir: Path) -> str | None:
    """Who trains ``run_dir`` now ("process P on HOST"), or None: no lock, or a stale one
    (runlock's own rule: its process is gone, or a remote lock that is no longer refreshed)."""
    if not (run_dir / LOCK_NAME).is_file():
        return None
    lock = RunLock(run_dir)  # only its reading side is used: nothing is acquired or written
    owner = lock._read()
    if lock._stale_reason(owner) is not None:
        return None
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"


# -- many runs ------------------------------------------------------------------------------------
def differing_keys(configs: list[dict]) -> list[str]:
    """Dotted config keys whose values are not the same in every config (missing counts as different)."""
    flat = [dict(flatten(cfg)) for cfg in configs]
    keys = sorted(set().union(*flat)) if flat else []
    missing = object()
    return [k for k in keys if k not in NOT_COMPARED and len({json.dumps(f.get(k, missing), default=repr) for f in flat}) > 1]


def compare_runs(paths) -> dict:
    """The comparison report: ``runs`` (one dict per run, ``run`` its label), ``differing_keys`` and
    ``metrics`` (every metric name seen). ``--json`` prints exactly this."""
    run_dirs = find_runs(paths)
    configs = [_read_config(r) for r in run_dirs]
    keys = differing_keys(configs) if len(run_dirs) > 1 else []
    labels = _labels(run_dirs)
    runs = []
    for label, run_dir, cfg in zip(labels, run_dirs, configs):
        flat = dict(flatten(cfg))
        runs.append({"run": label, **read_run(run_dir), "config": {k: flat[k] for k in keys if k in flat}})
    metrics = sorted({m for r in runs for m in r["metrics"]})
    evaluated = sorted({m for r in runs for m in r["eval_json"]})
    return {"runs": runs, "differing_keys": keys, "metrics": metrics, "eval_json_metrics": evaluated}


def _labels(run_dirs: list[Path]) -> list[str]:
    """Each run's path relative to the folder the runs share (its own name when alone)."""
    if len(run_dirs) == 1:
        return [run_dirs[0].resolve().name]
    resolved = [str(r.resolve()) for r in run_dirs]
    common = os.path.commonpath(resolved)
    return [os.path.relpath(r, common) for r in resolved]


# -- the table ------------------------------------------------------------------------------------
def format_time(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cell(value) -> str:
    text = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    return text if len(text) <= CELL_WIDTH else "..." + text[-(CELL_WIDTH - 3):]


def format_table(report: dict) -> str:
    """One row per run: run, status, family, loss, steps, wall time, latest and best of each
    training metric, eval.json numbers, then the config keys that differ between the runs."""
    header = ["run", "status", "family", "loss", "step", "time"]
    for m in report["metrics"]:
        header += [f"{m} latest", f"{m} best"]
    header += [f"{m} (eval.json)" for m in report["eval_json_metrics"]]
    header += report["differing_keys"]
    table = [header]
    for run in report["runs"]:
        row = [run["run"], run["status"], run["family"], run["loss"], f"{run['step']}/{run['steps']}", format_time(run["time"])]
        for m in report["metrics"]:
            entry = run["metrics"].get(m)
            row += ["-", "-"] if entry is None else [f"{_number(entry['latest'])} @{entry['latest_step']}",
                                                     "-" if entry["best"] is None else f"{_number(entry['best'])} @{entry['best_step']}"]
        for m in report["eval_json_metrics"]:
            entry = run["eval_json"].get(m)
            row.append("-" if entry is None else f"{_number(entry['value'])} @{entry['step']}")
        row += [_cell(run["config"][k]) if k in run["config"] else "-" for k in report["differing_keys"]]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    training = [r for r in report["runs"] if r["status"] == "training"]
    if training:
        lines.append("training now: " + ", ".join(f"{r['run']} ({r['lock']})" for r in training))
    if len(report["runs"]) > 1 and not report["differing_keys"]:
        lines.append("the runs' configs are the same (apart from their names)")
    return "\n".join(lines)
