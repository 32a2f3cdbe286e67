"""The step loop of ``fit`` and its hooks.

Hooks run on exact step boundaries: scalar logs (metrics.jsonl, TensorBoard, progress bar) every
``log.every`` steps, a grid from fixed noise every ``log.sample_every``, a checkpoint every
``log.checkpoint_every`` (then evaluation and classifier accuracy when configured), and always at
the end. Between boundaries, up to ``train.steps_per_call`` steps run in one compiled call.

Failure handling: SIGINT/SIGTERM finish the current call, save a checkpoint and exit 130/143; a
non-finite loss stops (or rolls back, ``train.on_nan``) without ever saving the bad weights; a
checkpoint that cannot be written stops with the reason while the earlier ones stay intact.
Test hooks (environment): ``GANTRAIN_FAULT_CHECKPOINT_DELAY=S`` sleeps S seconds between writing a
checkpoint's data and publishing it in the index (to kill a run mid-save), and
``GANTRAIN_FAULT_NAN_STEP=N`` poisons one discriminator weight with NaN before step N.

Every metrics.jsonl row carries ``time``: seconds of training wall-clock since the run started,
accumulated over resumes (tracing, grids, checkpoints and evaluation included), so runs can be
compared by what they reached in how many minutes. At each start TensorBoard also gets the run's
hyperparameters and its evaluation metrics (gantrain/hparams.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from gantrain import checkpoint as ckpt_lib
from gantrain.averaging import STANDING_BATCHES
from gantrain.classify import classifier_accuracy
from gantrain.data import make_pipeline
from gantrain.data.labels import labeled_subset
from gantrain.distribute import agree, check_batch, distribute_pipeline
from gantrain.errors import TrainingStopped
from gantrain.hparams import log_hparams, metric_tags
from gantrain.images import display_scale, make_grid, save_png
from gantrain.optimizers import last_rate, set_learning_rate

GRID_SEED = 7919  # mixed into the fixed sample-noise seed, apart from the training noise
STANDING_SEED = 7927  # mixed into the data seed of the standing-statistics inputs, apart from the training batches
STANDING_BYTES = 256 * 2**20  # most memory the standing-statistics inputs keep (large images: fewer batches)


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between calls, so a step is never cut in half."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): keep the defaults
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class TrainingLoop:
    def __init__(self, cfg, run_dir: Path, trainer, source, step: tf.Variable, manager, lr_scale: tf.Variable, progress: bool, evaluation: dict,
                 strategy: tf.distribute.Strategy | None = None):
        self.cfg, self.run_dir, self.trainer, self.source = cfg, run_dir, trainer, source
        self.strategy = strategy or tf.distribute.get_strategy()
        self.step, self.manager, self.lr_scale, self.progress = step, manager, lr_scale, progress
        self.total = cfg["train"]["steps"]
        self.batch_size, self.batches_per_step = cfg["data"]["batch_size"], trainer.batches_per_step
        self.rollbacks = 0
        self.metrics_path = run_dir / "metrics.jsonl"
        self.accuracy_source = evaluation["accuracy_source"]
        self.evaluator, self.best_manager = evaluation["evaluator"], None
        if self.evaluator is not None:
            self.best_manager = ckpt_lib.manager(manager.checkpoint, run_dir / "checkpoints" / "best", 1, step)
            self.evaluator.best = _previous_best(run_dir, cfg["eval"]["metrics"][0])
        grid_source = evaluation.get("grid_source") or source
        self.grid_inputs = trainer.model.grid_inputs(cfg["log"]["num_samples"], cfg["seed"] * 1000 + GRID_SEED, grid_source)
        self.standing = None  # the image-to-image EMA copies' standing-statistics inputs, built at the first refresh
        self.nan_step = int(os.environ.get("GANTRAIN_FAULT_NAN_STEP", "0") or 0)
        self.auto_steps = 1  # grows once a call's duration is known (the first one includes tracing)
        # The progress bar shows each update's loss, in the plan's order (d, then g).
        self.loss_keys = [trainer.groups[u.group].short for u in trainer.plan.updates]
        self.time_offset, self.t_start = 0.0, time.perf_counter()  # the training clock; set again by run()

    # -- data -------------------------------------------------------------------------------------
    def _iterators(self):
        start = int(self.step.numpy()) * self.batches_per_step
        seed, strategy = self.cfg["seed"], self.strategy
        iterator = iter(distribute_pipeline(strategy, lambda: make_pipeline(self.source, self.batch_size, seed, start_batch=start), self.batch_size))
        labeled = None
        if self.trainer.model.uses_labeled_stream:
            subset = labeled_subset(self.source)
            size = min(self.batch_size, len(subset))
            check_batch(strategy, size, "the labelled batch (min(data.batch_size, labelled images))")
            labeled = iter(distribute_pipeline(strategy, lambda: make_pipeline(subset, size, seed + 1, start_batch=start), size))
        return iterator, labeled

    def _refresh_averages(self, s: int) -> None:
        """The EMA copies get batch-norm statistics of their own weights before anything shows, scores
        or saves them. One replica's batch: it runs on one device, where the global batch may not fit."""
        batch = max(1, self.batch_size // self.strategy.num_replicas_in_sync)
        if self.standing is None and self.trainer.refresh_reads_data:
            self.standing = standing_inputs(self.trainer.model, self.source, batch, self.cfg["seed"])
        self.trainer.refresh_averages(self.cfg["seed"], s, batch, inputs=self.standing)

    def _call_length(self, s: int) -> int:
        """Steps until the next hook boundary, capped by train.steps_per_call."""
        log = self.cfg["log"]
        intervals = [log["every"], log["sample_every"], log["checkpoint_every"]]
        if self.evaluator is not None:
            intervals.append(self.cfg["eval"]["every"])
        if self.nan_step > s:
            intervals.append(self.nan_step - 1)
        nxt = min([self.total] + [(s // i + 1) * i for i in intervals])
        return max(1, min(self.cfg["train"]["steps_per_call"] or self.auto_steps, nxt - s))

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> Path:
        start = int(self.step.numpy())
        _truncate_metrics(self.metrics_path, start)
        if start >= self.total:
            print(f"{self.run_dir}: already trained to step {start} (train.steps = {self.total}); raise it with --set train.steps=N to continue")
            return self.run_dir
        # A resumed run's clock goes on from the last time its kept rows recorded: the work after
        # them was lost with the process, so it is not counted.
        self.time_offset, self.t_start = _last_time(self.metrics_path), time.perf_counter()
        writer = tf.summary.create_file_writer(str(self.run_dir / "tb"))
        with writer.as_default():
            log_hparams(self.cfg, metric_tags(self.cfg, self.accuracy_source is not None), trial_id=trial_id(self.run_dir))
        iterator, labeled = self._iterators()
        sums, count, t_last, images = {}, 0, time.perf_counter(), 0
        bar = tqdm(total=self.total, initial=start, disable=not self.progress, unit="step", dynamic_ncols=True, desc=self.cfg["name"])
        self.bar = bar
        try:
            with Interrupt() as interrupt, writer.as_default():
                while int(self.step.numpy()) < self.total:
                    s0 = int(self.step.numpy())
                    if self.nan_step and s0 + 1 == self.nan_step:
                        self.nan_step = 0  # a one-off fault, like a transient blow-up
                        var = self.trainer.variables[self.trainer.plan.updates[0].group][0]  # the critic's, for the GAN families
                        var.assign(tf.fill(var.shape, float("nan")))
                    k = self._call_length(s0)
                    args = (iterator, tf.constant(k, tf.int32)) + ((labeled,) if labeled is not None else ())
                    t_call = time.perf_counter()
                    out = self.trainer.train_steps(*args)
                    bad = _first_non_finite(out)
                    where = f"step {s0 + 1}" if k == 1 else f"steps {s0 + 1}-{s0 + k}"
                    per_step = (time.perf_counter() - t_call) / k
                    self.auto_steps = agree(self.strategy, max(1, min(50, int(0.25 / max(per_step, 1e-5)))))
                    if bad is not None:
                        self._on_non_finite(where, *bad)
                        iterator, labeled = self._iterators()
                        sums, count, t_last, images = {}, 0, time.perf_counter(), 0
                        bar.n = int(self.step.numpy())
                        bar.refresh()
                        continue
                    self.step.assign_add(k)
                    s = s0 + k
                    for key, v in out.items():
                        sums[key] = sums.get(key, 0.0) + v
                    count += k
                    images += self.batch_size * self.batches_per_step * k
                    bar.update(k)
                    if self._due(s, "every"):
                        now = time.perf_counter()
                        row = {key: float(v.numpy()) / count for key, v in sums.items()}
                        row["images_per_sec"] = images / max(now - t_last, 1e-9)
                        for group in self.trainer.groups.values():
                            row[f"lr_{group.short}"] = last_rate(self.trainer.optimizers[group.name])
                        self._log(s, row)
                        bar.set_postfix(**{short: f"{row[f'{short}_loss']:.3f}" for short in self.loss_keys}, ips=f"{row['images_per_sec']:.0f}")
                        sums, count, t_last, images = {}, 0, now, 0
                    eval_due = self.evaluator is not None and (s % self.cfg["eval"]["every"] == 0 or s == self.total)
                    if self._due(s, "sample_every") or self._due(s, "checkpoint_every") or eval_due or interrupt.signum is not None:
                        self._refresh_averages(s)
                    if self._due(s, "sample_every"):
                        self._grid(s)
                    if (self._due(s, "checkpoint_every") or eval_due or interrupt.signum is not None) and not self._weights_finite():
                        # A finite loss can still leave non-finite weights (an infinite gradient
                        # step): such weights are never evaluated or saved; roll back like a
                        # non-finite loss.
                        self._on_non_finite(f"step {s}", "a weight", float("nan"))
                        iterator, labeled = self._iterators()
                        sums, count, t_last, images = {}, 0, time.perf_counter(), 0
                        bar.n = int(self.step.numpy())
                        bar.refresh()
                        continue
                    if self._due(s, "checkpoint_every"):
                        self._save(s)
                        self._classifier_accuracy(s)
                    if eval_due:
                        self._evaluate(s)
                    if interrupt.signum is not None:
                        self._save(s)
                        bar.close()
                        name = signal.Signals(interrupt.signum).name
                        print(f"\n{name}: stopped at step {s}; checkpoint saved. Resume with: gantrain fit --resume {self.run_dir}", file=sys.stderr)
                        raise SystemExit(128 + interrupt.signum)
        finally:
            bar.close()
            writer.flush()
        return self.run_dir

    def _due(self, s: int, key: str) -> bool:
        return s % self.cfg["log"][key] == 0 or s == self.total

    # -- hooks ------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Seconds of training wall-clock, this run's earlier processes included. A NaN rollback
        does not turn it back: the discarded steps took real time."""
        return round(self.time_offset + time.perf_counter() - self.t_start, 3)

    def _log(self, s: int, row: dict) -> None:
        elapsed = self._elapsed()
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": s, **{k: round(v, 6) for k, v in row.items()}, "time": elapsed}) + "\n")
        except OSError as err:
            raise TrainingStopped(f"{self.metrics_path}: cannot write ({err.strerror}); free disk space, then gantrain fit --resume {self.run_dir}") from None
        for k, v in row.items():
            tf.summary.scalar(k, v, step=s)
            if k.startswith("eval/"):
                # The same number against whole seconds of training. TensorBoard's "relative" time
                # axis restarts with every resumed process, so the accumulated clock is written as
                # the step of a series of its own.
                tf.summary.scalar(f"eval_by_seconds/{k[len('eval/'):]}", v, step=int(elapsed))

    def _grid(self, s: int) -> None:
        images, rows = self.trainer.model.grid_images(self.grid_inputs, self.trainer.sampling_networks)
        grid = make_grid(images, rows=rows)
        try:
            save_png(grid, self.run_dir / "samples" / f"step_{s:06d}.png", scale=display_scale(images.shape[1]))
        except OSError as err:
            raise TrainingStopped(f"{self.run_dir / 'samples'}: cannot write the sample grid ({err.strerror}); previous checkpoints are intact") from None
        tf.summary.image("samples", grid[None], step=s)

    def _weights_finite(self) -> bool:
        return all(bool(tf.reduce_all(tf.math.is_finite(v)).numpy()) for variables in self.trainer.variables.values() for v in variables)

    def _save(self, s: int, manager=None) -> None:
        # Every caller runs after the loop's finiteness check (checkpoint, evaluation or interrupt due),
        # so non-finite weights never reach here.
        manager = manager or self.manager
        delay = float(os.environ.get("GANTRAIN_FAULT_CHECKPOINT_DELAY", "0") or 0)
        options = tf.train.CheckpointOptions(experimental_write_callbacks=[lambda path: time.sleep(delay)]) if delay else None
        try:
            manager.save(checkpoint_number=s, options=options)
        except (OSError, tf.errors.OpError) as err:
            reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0][:200]
            raise TrainingStopped(
                f"cannot write the step-{s} checkpoint in {manager.directory} ({reason}); the earlier checkpoints are intact "
                f"(latest: {self.manager.latest_checkpoint}). Free disk space or fix permissions, then gantrain fit --resume {self.run_dir}"
            ) from None

    def _evaluate(self, s: int) -> None:
        values = self.evaluator(self.trainer.sampling_networks["generator"], s)
        self._log(s, values)
        self.bar.write(f"step {s}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
        if self.evaluator.is_best(values):
            self._save(s, self.best_manager)
            _write_json(self.run_dir / "checkpoints" / "best" / "best.json", {"step": s, "metric": self.cfg["eval"]["metrics"][0], **values})

    def _classifier_accuracy(self, s: int) -> None:
        if self.accuracy_source is not None:
            acc = classifier_accuracy(self.trainer.model, self.accuracy_source)
            self._log(s, {"test_accuracy": acc})
            self.bar.write(f"step {s}: test accuracy of D's classifier {acc:.4f} ({len(self.accuracy_source)} images)")

    def _on_non_finite(self, where: str, key: str, value: float) -> None:
        latest = self.manager.latest_checkpoint
        what = f"{where}: {key} is {value} (non-finite)"
        if self.cfg["train"]["on_nan"] == "stop" or latest is None:
            hint = "" if latest else " (and there is no checkpoint to roll back to)"
            raise TrainingStopped(f"{what}; training stopped{hint}. Last good checkpoint: {latest}. "
                                  "Lower the learning rates, or set train.on_nan: rollback to recover automatically")
        if self.rollbacks >= self.cfg["train"]["nan_max_rollbacks"]:
            raise TrainingStopped(f"{what} after {self.rollbacks} rollbacks (train.nan_max_rollbacks); stopped. Last good checkpoint: {latest}")
        self.rollbacks += 1
        scale = float(self.lr_scale.numpy())  # read before the restore, which brings back the saved scale
        ckpt_lib.restore(self.manager.checkpoint, latest)
        self.lr_scale.assign(scale * self.cfg["train"]["nan_lr_factor"])
        apply_lr_scale(self.cfg, self.trainer, self.lr_scale)
        _truncate_metrics(self.metrics_path, int(self.step.numpy()))
        self.bar.write(f"{what}; rolled back to {Path(latest).name}, learning rates x{float(self.lr_scale.numpy()):.3g} "
                       f"(rollback {self.rollbacks} of {self.cfg['train']['nan_max_rollbacks']})")


def standing_inputs(model, source, batch_size: int, seed: int, batches: int = STANDING_BATCHES, max_bytes: int = STANDING_BYTES) -> list[dict]:
    """The fixed real inputs an image-to-image family's EMA copies compute standing statistics over.

    The first ``batches`` batches of a pipeline of their own over the training data (its jitter
    included), with the data seed ``seed * 1000 + STANDING_SEED``, mapped to each averaged
    network's input (``model.averaged_inputs``) and kept in memory as numpy arrays; fewer batches
    (at least one) where ``batches`` of them would pass ``max_bytes``. A pipeline's batches are a
    pure function of its seed and position, so every process of a run, resumed or not, gets the
    same inputs, and neither the training stream nor any random state training reads is touched.

    Returns:
        A list of ``{network name: float32 array (batch_size, H, W, C)}``.
    """
    out, used = [], 0
    for batch in make_pipeline(source, batch_size, seed * 1000 + STANDING_SEED).take(batches):
        inputs = {net: np.asarray(x, np.float32) for net, x in model.averaged_inputs(batch).items()}
        used += sum(x.nbytes for x in inputs.values())
        if out and used > max_bytes:
            break
        out.append(inputs)
    return out


def apply_lr_scale(cfg: dict, trainer, lr_scale: tf.Variable) -> None:
    """Learning rates = the config's rates x the rollback scale (kept in checkpoints)."""
    scale = float(lr_scale.numpy())
    for group, optimizer in trainer.optimizers.items():
        set_learning_rate(optimizer, cfg["optimizer"][group]["learning_rate"] * scale)


def _first_non_finite(out: dict):
    values = {k: float(v.numpy()) for k, v in out.items()}
    for k, v in values.items():
        if not math.isfinite(v):
            return k, v
    return None


def _previous_best(run_dir: Path, metric: str):
    path = run_dir / "checkpoints" / "best" / "best.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get(f"eval/{metric}")
    return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def _truncate_metrics(path: Path, start: int) -> None:
    """On resume or rollback, drop log lines written after the restored step (they will be re-logged)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and _step_of(line) <= start]
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def trial_id(run_dir: Path) -> str:
    """The run's row name in TensorBoard's HParams table: its folder name, made unique by a short hash
    of its full path (TensorBoard merges rows with equal ids: runs/a/lr3 and runs/b/lr3 would be one)."""
    return f"{run_dir.name}-{hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:6]}"


def _last_time(path: Path) -> float:
    """The latest ``time`` of metrics.jsonl (0 when there is none: a new run, or rows from before the field)."""
    if not path.is_file():
        return 0.0
    times = [_time_of(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return max(times, default=0.0)


def _time_of(line: str) -> float:
    try:
        return float(json.loads(line).get("time", 0.0))
    except (ValueError, TypeError, AttributeError):
        return 0.0


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 0
