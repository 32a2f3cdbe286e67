"""Quality per CPU-minute: a run's eval-during-training curve, read back by step and by wall-clock minute.

    python benchmarks/quality_curves.py runs/dcgan_mnist [runs/other ...] [--metric fid] [--curve]

For each run: steps done, training wall time, the first eval metric (or ``--metric``) at 5, 15
and 30 minutes (the last evaluation at or before that minute) and at the end, and the best value.
``--curve`` also prints every evaluation as (step, minute, value).

Minutes come from the ``time`` field of metrics.jsonl (training seconds, summed over resumes). Runs
written before that field existed fall back on the wall time TensorBoard stamps on each eval event,
counted from the run's first event (valid for a run trained in one go, not across resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MARKS = (5, 15, 30)


def read_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        sys.exit(f"{run}: no metrics.jsonl (not a run directory?)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def event_seconds(run: Path, tag: str) -> dict[int, float]:
    """{step: seconds since the run's first event} for the scalar ``tag`` in the run's TensorBoard files."""
    import tensorflow as tf

    first, stamps = None, {}
    for path in sorted((run / "tb").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            first = event.wall_time if first is None else min(first, event.wall_time)
            for value in event.summary.value:
                if value.tag == tag:
                    stamps[event.step] = event.wall_time
    return {step: wall - first for step, wall in stamps.items()}


def curve(run: Path, metric: str | None) -> tuple[str, list[tuple[int, float, float]], int]:
    """(metric, [(step, seconds, value)], last step) of a run's evaluations."""
    rows = read_rows(run)
    evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
    if not evals:
        sys.exit(f"{run}: no evaluations in metrics.jsonl (set eval.metrics in the config)")
    metric = metric or next(k for k in evals[0] if k.startswith("eval/"))[5:]
    key = f"eval/{metric}"
    if all("time" in r for r in evals):
        seconds = {r["step"]: r["time"] for r in evals}
    else:
        seconds = event_seconds(run, key)
    points = [(r["step"], seconds.get(r["step"], float("nan")), r[key]) for r in evals if key in r]
    return metric, points, max(r["step"] for r in rows)


def summary(run: Path, metric: str | None) -> dict:
    metric, points, last = curve(run, metric)
    lower = metric in ("fid", "kid")
    out = {"run": str(run), "metric": metric, "steps": last, "minutes": points[-1][1] / 60, "end": points[-1][2],
           "best": (min if lower else max)(p[2] for p in points)}
    for mark in MARKS:
        before = [p for p in points if p[1] <= mark * 60]
        out[f"at_{mark}"] = before[-1][2] if before else None
    return out, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default=None, help="eval metric (default: the run's first)")
    parser.add_argument("--curve", action="store_true", help="also print every evaluation")
    args = parser.parse_args()
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print("| run | metric | steps | minutes | at 5 min | at 15 min | at 30 min | end | best |")
    print("|---|---|---|---|---|---|---|---|---|")
    curves = []
    for run in args.runs:
        try:
            s, points = summary(run, args.metric)
        except SystemExit as why:  # one run without evaluations (yet) does not hide the others
            print(f"| {run} | {why} |")
            continue
        curves.append((run, s["metric"], points))
        print(f"| {run} | {s['metric']} | {s['steps']} | {s['minutes']:.1f} | {fmt(s['at_5'])} | {fmt(s['at_15'])} | {fmt(s['at_30'])} | {fmt(s['end'])} | {fmt(s['best'])} |")
    if args.curve:
        for run, metric, points in curves:
            print(f"\n{run} ({metric}): " + "  ".join(f"{step}/{sec / 60:.1f}m:{value:.2f}" for step, sec, value in points))


if __name__ == "__main__":
    main()
