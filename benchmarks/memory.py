"""Memory over a long run: does the resident set of `gantrain fit` stay flat after warm-up?

Starts `gantrain fit CONFIG --set ...` in a fresh process, reads its resident set size
(/proc/PID/status, so Linux only) every --interval seconds together with the latest logged step,
and prints RSS at each tenth of the run, the peak, and the growth between the end of warm-up (the
first --warmup fraction of the steps) and the end, as MB and MB per 1,000 steps.

    python benchmarks/memory.py configs/dcgan_mnist_tutorial.yaml --steps 10000 \\
        --set data.root=../shared/data/mnist --set data.batch_size=32
    python benchmarks/memory.py ... --write BENCHMARKS.md     # append the result
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def last_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def measure(config: str, steps: int, overrides: list[str], interval: float, run_dir: Path) -> tuple[list[tuple[float, int, float]], float]:
    cmd = [sys.executable, "-m", "gantrain", "fit", config, "--run-dir", str(run_dir), "--quiet", "--set", f"train.steps={steps}"]
    for item in overrides:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []  # (seconds, step, rss MB)
    while proc.poll() is None:
        rss = rss_mb(proc.pid)
        if rss is not None:
            samples.append((time.perf_counter() - start, last_step(run_dir / "metrics.jsonl"), rss))
        time.sleep(interval)
    if proc.returncode != 0:
        sys.exit(f"gantrain fit failed ({proc.returncode}):\n{proc.stderr.read()[-3000:]}")
    return samples, time.perf_counter() - start


def summarize(samples, steps: int, warmup: float) -> dict:
    after = [s for s in samples if s[1] >= warmup * steps]
    if len(after) < 2:
        sys.exit("too few samples after warm-up; lower --interval")
    first, last = after[0], after[-1]
    growth = last[2] - first[2]
    span = max(last[1] - first[1], 1)
    checkpoints = []
    for tenth in range(1, 11):
        target = steps * tenth // 10
        at = [s for s in samples if s[1] <= target]
        if at:
            checkpoints.append((target, at[-1][2]))
    return {
        "peak_mb": max(s[2] for s in samples),
        "peak_after_warmup_mb": max(s[2] for s in after),
        "min_after_warmup_mb": min(s[2] for s in after),
        "start_mb": first[2], "start_step": first[1], "end_mb": last[2], "end_step": last[1],
        "growth_mb": growth, "growth_mb_per_1000_steps": 1000 * growth / span,
        "by_tenth": checkpoints,
    }


def report(args, summary: dict, seconds: float) -> str:
    lines = [
        f"### Memory over {args.steps:,} steps, {dt.date.today()}, {platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
        "",
        f"`python benchmarks/memory.py {args.config} --steps {args.steps} " + " ".join(f"--set {s}" for s in args.set) + "`",
        f"({seconds / 60:.1f} min; resident set sampled every {args.interval:g} s)",
        "",
        "| step | RSS MB |",
        "|---|---|",
        *[f"| {step:,} | {mb:.0f} |" for step, mb in summary["by_tenth"]],
        "",
        f"Peak {summary['peak_mb']:.0f} MB. After warm-up (step {summary['start_step']:,}, {summary['start_mb']:.0f} MB) "
        f"to step {summary['end_step']:,} ({summary['end_mb']:.0f} MB): {summary['growth_mb']:+.1f} MB, "
        f"{summary['growth_mb_per_1000_steps']:+.2f} MB per 1,000 steps; range after warm-up "
        f"{summary['min_after_warmup_mb']:.0f}-{summary['peak_after_warmup_mb']:.0f} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--set", action="append", default=[], help="passed on to gantrain fit --set")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of the run counted as warm-up")
    parser.add_argument("--write", type=Path, help="append the result to this markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gantrain-memory-") as tmp:
        samples, seconds = measure(args.config, args.steps, args.set, args.interval, Path(tmp) / "run")
    summary = summarize(samples, args.steps, args.warmup)
    emit(report(args, summary, seconds), args.write)


if __name__ == "__main__":
    main()
