"""``fit``: builds everything from a resolved config and runs the step loop with its hooks.

Hooks run on step boundaries: scalar logs (metrics.jsonl, TensorBoard, progress bar) every
``log.every`` steps, a sample grid from fixed noise every ``log.sample_every`` and a checkpoint
every ``log.checkpoint_every``, plus a final checkpoint and grid at the end.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from gantrain import checkpoint as ckpt_lib
from gantrain.config import dump, load_config, locked_differences, validate
from gantrain.classify import classifier_accuracy, test_split_for
from gantrain.data import load_dataset, make_pipeline
from gantrain.data.labels import keep_labels_per_class, labeled_subset
from gantrain.errors import UserError
from gantrain.images import display_scale, make_grid, save_png
from gantrain.losses import get_loss
from gantrain.models.base import GANModel
from gantrain.optimizers import build_optimizer
from gantrain.registry import MODELS
from gantrain.trainer import GANTrainer, TrainOptions

GRID_SEED = 7919  # second half of the fixed sample-noise seed, apart from the training noise


def build_model(cfg: dict, image_shape: tuple, num_classes: int) -> GANModel:
    keras.utils.set_random_seed(cfg["seed"])
    return MODELS.get(cfg["model"]["family"]).build(cfg["model"], image_shape, num_classes)


def check_labels(cfg: dict, model: GANModel, source) -> None:
    if model.needs_labels and source.num_classes < 2:
        raise UserError(
            f"model.family {cfg['model']['family']!r} needs class labels, but {source.description} has none "
            f"(use mnist, fashion_mnist, cifar10, or an image_folder with one subfolder per class)"
        )


def image_shape_of(cfg: dict) -> tuple:
    from gantrain.registry import DATASETS

    return tuple(DATASETS.get(cfg["data"]["loader"]).image_shape(cfg["data"]))


def prepare_run_dir(cfg: dict, run_dir: Path | None, resume: Path | None, overwrite: bool) -> Path:
    """Decide the run directory; refuse to clobber an existing run."""
    if resume is not None:
        changed = locked_differences(load_config(resume / "config.yaml"), cfg)
        if changed:
            raise UserError(f"cannot resume {resume} with a different architecture; changed keys: {'; '.join(changed)}")
        return resume
    run_dir = run_dir or Path("runs") / cfg["name"]
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UserError(
                f"{run_dir} already holds a run; continue it with `gantrain fit --resume {run_dir}`, "
                f"pick another directory with --run-dir, or pass --overwrite to replace it"
            )
        shutil.rmtree(run_dir)
    return run_dir


def resolve_fit_config(config, overrides, resume: Path | None) -> dict:
    """The config to train with: from the file (or dict), or from the run directory on resume."""
    if resume is None:
        if config is None:
            raise UserError("fit needs a CONFIG file, or --resume RUN_DIR")
        return load_config(config, overrides) if not isinstance(config, dict) else _validate_dict(config, overrides)
    if config is None:
        return load_config(resume / "config.yaml", overrides)
    new = load_config(config, overrides) if not isinstance(config, dict) else _validate_dict(config, overrides)
    new["name"] = load_config(resume / "config.yaml")["name"]
    return new


def _validate_dict(raw: dict, overrides) -> dict:
    from gantrain.config import apply_overrides

    cfg = validate(apply_overrides(raw, overrides or [], {}))
    cfg["name"] = cfg["name"] or "run"
    return cfg


def fit(config=None, overrides=None, run_dir=None, resume=None, overwrite=False, progress=True) -> Path:
    """Train a GAN. ``config`` is a YAML path or a raw config dict; returns the run directory."""
    resume = Path(resume) if resume is not None else None
    if resume is not None and not (resume / "config.yaml").is_file():
        raise UserError(f"--resume {resume}: no config.yaml there; is it a gantrain run directory?")
    cfg = resolve_fit_config(config, overrides, resume)
    run_dir = prepare_run_dir(cfg, Path(run_dir) if run_dir else None, resume, overwrite)

    if cfg["train"]["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    source = load_dataset(cfg["data"])
    batch_size, d_steps = cfg["data"]["batch_size"], cfg["train"]["d_steps"]
    if batch_size > len(source):
        raise UserError(f"data.batch_size: {batch_size} is larger than the dataset ({len(source)} images)")
    if cfg["train"]["epochs"] is not None:
        cfg["train"]["steps"] = max(1, int(round(cfg["train"]["epochs"] * len(source) / (batch_size * d_steps))))
    if cfg["data"]["labeled_per_class"] is not None:
        source = keep_labels_per_class(source, cfg["data"]["labeled_per_class"], cfg["seed"])

    model = build_model(cfg, source.image_shape, source.num_classes)
    check_labels(cfg, model, source)
    trainer = GANTrainer(
        model,
        build_optimizer(cfg["optimizer"]["generator"]),
        build_optimizer(cfg["optimizer"]["discriminator"]),
        get_loss(cfg["loss"]["name"]),
        batch_size,
        cfg["seed"],
        options=TrainOptions.from_config(cfg),
    )
    step = tf.Variable(0, dtype=tf.int64, name="step")
    ckpt = make_training_checkpoint(trainer, step)
    run_dir.mkdir(parents=True, exist_ok=True)
    manager = ckpt_lib.manager(ckpt, run_dir / "checkpoints", cfg["log"]["keep_checkpoints"], step)
    if resume is not None and manager.latest_checkpoint:
        ckpt_lib.restore(ckpt, manager.latest_checkpoint)
    elif resume is not None:
        print(f"note: {run_dir} has no checkpoint yet; starting from step 0", file=sys.stderr)
    _write_config(run_dir, cfg)
    write_meta(run_dir, source)
    return _loop(cfg, run_dir, trainer, source, step, manager, progress)


def write_meta(run_dir: Path, source) -> None:
    """What sampling needs from the data without reading it: classes and image shape."""
    meta = {"image_shape": list(source.image_shape), "num_classes": source.num_classes, "class_names": source.class_names,
            "num_images": len(source), "num_labeled": int((source.labels >= 0).sum())}
    tmp = run_dir / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(run_dir / "meta.json")


def read_meta(run_dir: Path, cfg: dict) -> dict:
    path = run_dir / "meta.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"image_shape": list(image_shape_of(cfg)), "num_classes": 0, "class_names": []}


def make_training_checkpoint(trainer: GANTrainer, step: tf.Variable) -> tf.train.Checkpoint:
    return ckpt_lib.make_checkpoint(
        step,
        trainer.rng,
        generator=trainer.generator.variables,
        discriminator=trainer.discriminator.variables,
        g_optimizer=trainer.g_optimizer.variables,
        d_optimizer=trainer.d_optimizer.variables,
        **trainer.extra_state(),
    )


def _write_config(run_dir: Path, cfg: dict) -> None:
    tmp = run_dir / ".config.yaml.tmp"
    tmp.write_text(dump(cfg), encoding="utf-8")
    tmp.replace(run_dir / "config.yaml")


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a step is never cut in half."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._old = {}
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


def _loop(cfg, run_dir: Path, trainer: GANTrainer, source, step: tf.Variable, manager, progress: bool) -> Path:
    log_cfg, total = cfg["log"], cfg["train"]["steps"]
    start = int(step.numpy())
    batch_size, d_steps = cfg["data"]["batch_size"], cfg["train"]["d_steps"]
    iterator = iter(make_pipeline(source, batch_size, cfg["seed"], start_batch=start * d_steps))
    labeled_iterator = None
    if trainer.model.uses_labeled_stream:
        labeled = labeled_subset(source)
        labeled_iterator = iter(make_pipeline(labeled, min(batch_size, len(labeled)), cfg["seed"] + 1, start_batch=start * d_steps))
    accuracy_source = test_split_for(cfg) if getattr(trainer.model, "classify", None) else None
    evaluator, best_manager = None, None
    if cfg["eval"]["metrics"]:
        from gantrain.evaluate import TrainingEvaluator

        trainer.model.image_shape = source.image_shape
        evaluator = TrainingEvaluator(cfg, trainer.model, source)
        best_manager = ckpt_lib.manager(manager.checkpoint, run_dir / "checkpoints" / "best", 1, step)
        evaluator.best = _previous_best(run_dir, cfg["eval"]["metrics"][0])
    writer = tf.summary.create_file_writer(str(run_dir / "tb"))
    metrics_path = run_dir / "metrics.jsonl"
    _truncate_metrics(metrics_path, start)
    grid_latent, grid_rows = trainer.model.grid_latent(log_cfg["num_samples"], cfg["seed"] * 1000 + GRID_SEED)
    if start >= total:
        print(f"{run_dir}: already trained to step {start} (train.steps = {total}); raise it with --set train.steps=N to continue")
        return run_dir

    sums, count, t_last, images_since = {}, 0, time.perf_counter(), 0
    bar = tqdm(total=total, initial=start, disable=not progress, unit="step", dynamic_ncols=True, desc=cfg["name"])
    with _Interrupt() as interrupt, writer.as_default(), open(metrics_path, "a", encoding="utf-8") as metrics_file:
        while int(step.numpy()) < total:
            out = trainer.train_step(iterator, labeled_iterator) if labeled_iterator is not None else trainer.train_step(iterator)
            step.assign_add(1)
            s = int(step.numpy())
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            images_since += batch_size * d_steps
            bar.update(1)
            if s % log_cfg["every"] == 0 or s == total:
                now = time.perf_counter()
                row = {k: float(v.numpy()) / count for k, v in sums.items()}
                row["images_per_sec"] = images_since / max(now - t_last, 1e-9)
                row["lr_g"] = float(trainer.g_optimizer.learning_rate.numpy())
                row["lr_d"] = float(trainer.d_optimizer.learning_rate.numpy())
                _log_scalars(metrics_file, s, row)
                bar.set_postfix(d=f"{row['d_loss']:.3f}", g=f"{row['g_loss']:.3f}", ips=f"{row['images_per_sec']:.0f}")
                sums, count, t_last, images_since = {}, 0, now, 0
            if s % log_cfg["sample_every"] == 0 or s == total:
                _save_grid(trainer, grid_latent, grid_rows, run_dir, s)
            if s % log_cfg["checkpoint_every"] == 0 or s == total:
                manager.save(checkpoint_number=s)
                if evaluator is not None and (s % cfg["eval"]["every"] == 0 or s == total):
                    values = evaluator(trainer.sampling_generator, s)
                    _log_scalars(metrics_file, s, values)
                    bar.write(f"step {s}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
                    if evaluator.is_best(values):
                        best_manager.save(checkpoint_number=s)
                        _write_json(run_dir / "checkpoints" / "best" / "best.json", {"step": s, "metric": cfg["eval"]["metrics"][0], **values})
                if accuracy_source is not None:
                    acc = classifier_accuracy(trainer.model, accuracy_source)
                    _log_scalars(metrics_file, s, {"test_accuracy": acc})
                    bar.write(f"step {s}: test accuracy of D's classifier {acc:.4f} ({len(accuracy_source)} images)")
            if interrupt.signum is not None:
                manager.save(checkpoint_number=s)
                bar.close()
                name = signal.Signals(interrupt.signum).name
                print(f"\n{name}: stopped at step {s}; checkpoint saved. Resume with: gantrain fit --resume {run_dir}", file=sys.stderr)
                raise SystemExit(128 + interrupt.signum)
    bar.close()
    writer.flush()
    return run_dir


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
    """On resume, drop log lines written after the restored checkpoint (they will be re-logged)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and _step_of(line) <= start]
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 0


def _log_scalars(metrics_file, step: int, row: dict) -> None:
    metrics_file.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in row.items()}}) + "\n")
    metrics_file.flush()
    for k, v in row.items():
        tf.summary.scalar(k, v, step=step)


def _save_grid(trainer: GANTrainer, latent: dict, rows, run_dir: Path, step: int) -> None:
    images = trainer.model.generate(latent, training=False, generator=trainer.sampling_generator).numpy()
    grid = make_grid(images, rows=rows)
    save_png(grid, run_dir / "samples" / f"step_{step:06d}.png", scale=display_scale(images.shape[1]))
    tf.summary.image("samples", grid[None], step=step)

