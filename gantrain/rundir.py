"""The run directory: its layout, and rebuilding a trained model from it.

A run directory holds what ``fit`` writes and ``sample``, ``eval`` and ``classify`` read::

    config.yaml      the resolved config (every default filled in)
    meta.json        what sampling needs from the data without reading it: image shape, classes
    checkpoints/     ckpt-N (and best/ with an eval section)
    samples/         step_NNNNNN.png grids
    metrics.jsonl    scalar logs; tb/ the same for TensorBoard
    eval.json        the last ``gantrain eval`` report
    .lock            the process training it (gantrain/runlock.py)

This module is the one place that knows that layout and how to turn a config into networks; the
``fit`` orchestrator (run.py) and the reading commands (sampling, evaluate, classify) all use it,
and it imports none of them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from gantrain import checkpoint as ckpt_lib
from gantrain.config import dump, load_config, locked_differences
from gantrain.data import has_splits, load_dataset
from gantrain.errors import UserError
from gantrain.models.base import GANModel
from gantrain.models.layers import synchronized_batch_norm
from gantrain.registry import DATASETS, MODELS
from gantrain.runlock import LOCK_NAME
from gantrain.seeding import owned_seed

CONFIG = "config.yaml"
META = "meta.json"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
EVAL_JSON = "eval.json"


def build_model(cfg: dict, image_shape: tuple, num_classes: int, synchronized_bn: bool = False) -> GANModel:
    """Build the family's networks; ``synchronized_bn``: batch norm uses global-batch statistics
    across replicas (so a multi-device step normalises exactly like the single-device one)."""
    # Layers take their dtype policy when they are built; set it for this model only, so a later
    # model in the same process (a notebook, the tests) is not silently built in mixed precision.
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(cfg["train"]["precision"])
    try:
        with synchronized_batch_norm(synchronized_bn), owned_seed(cfg["seed"]):
            return MODELS.get(cfg["model"]["family"]).build(cfg["model"], image_shape, num_classes)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def family_source(cfg: dict, split: str | None = None):
    """The data a run of ``cfg`` trains on (``split`` None) or is evaluated on ("test"): the loader's
    source as the family takes it (super-resolution: (LR, HR) pairs at the model's scale)."""
    return MODELS.get(cfg["model"]["family"]).source(load_dataset(cfg["data"], split=split), cfg["model"], cfg["data"], split)


def held_out_family_source(cfg: dict):
    """:func:`family_source` of the held-out split, or None when the loader has no test split."""
    return family_source(cfg, "test") if has_splits(cfg["data"]) else None


def init_from(model, source_run) -> str:
    """Load every network of ``model`` that ``source_run``'s latest checkpoint holds under the same
    name (its EMA copy when the run kept one: the weights it was judged by). Returns what was loaded,
    for the log; a UserError when nothing matches or a network's shapes differ."""
    try:
        prefix = ckpt_lib.find_checkpoint(Path(source_run))
    except UserError as err:
        raise UserError(f"model.init_from: {err} (train that run first, or set model.init_from: null to start from scratch)") from None
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(prefix)}
    loaded = []
    for name, net in model.networks.items():
        key = f"ema_{name}" if f"ema_{name}" in saved else name if name in saved else None
        if key is None:
            continue
        ckpt_lib.restore(ckpt_lib.make_checkpoint(tf.Variable(0, dtype=tf.int64), **{key: net.variables}), prefix,
                         what=f"model.init_from: network {name!r} of this")
        loaded.append(f"{name} <- {key}")
    if not loaded:
        raise UserError(f"model.init_from {source_run}: its checkpoint {prefix} holds none of this model's networks "
                        f"({', '.join(model.networks)}); it has {', '.join(sorted(saved - {'step', 'rng', '_CHECKPOINTABLE_OBJECT_GRAPH'}))}")
    return f"initialised from {prefix}: {', '.join(loaded)}"


def image_shape_of(cfg: dict) -> tuple:
    return tuple(DATASETS.get(cfg["data"]["loader"]).image_shape(cfg["data"]))


def write_meta(run_dir: Path, source) -> None:
    """What sampling needs from the data without reading it: classes and image shape."""
    meta = {"image_shape": list(source.image_shape), "num_classes": source.num_classes, "class_names": source.class_names,
            "num_images": len(source), "num_labeled": source.num_labeled}
    tmp = run_dir / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(run_dir / META)


def read_meta(run_dir: Path, cfg: dict) -> dict:
    path = run_dir / META
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"image_shape": list(image_shape_of(cfg)), "num_classes": 0, "class_names": []}


def write_config(run_dir: Path, cfg: dict) -> None:
    tmp = run_dir / ".config.yaml.tmp"
    tmp.write_text(dump(cfg), encoding="utf-8")
    tmp.replace(run_dir / CONFIG)


def prepare_run_dir(cfg: dict, run_dir: Path | None, resume: Path | None, overwrite: bool) -> tuple[Path, bool]:
    """Decide the run directory and whether an old run must be cleared; deletes nothing itself.

    Returns (directory, clear): ``clear`` is True when --overwrite replaces an existing run, which
    happens only after everything else has been checked, so a mistake never costs the old run.
    """
    if resume is not None:
        changed = locked_differences(load_config(resume / CONFIG), cfg)
        if changed:
            raise UserError(f"cannot resume {resume}: these keys fix its networks or its data and noise streams and may not change: "
                            f"{'; '.join(changed)} (start a new run with --run-dir to train with them)")
        return resume, False
    run_dir = run_dir or Path("runs") / cfg["name"]
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir {run_dir}: is a file, not a directory")
    if run_dir.exists() and any(not p.name.startswith(LOCK_NAME) for p in run_dir.iterdir()):  # a lone stale lock (or its temp file) is no run
        is_run = (run_dir / CONFIG).is_file() or (run_dir / CHECKPOINTS).is_dir()
        if not overwrite:
            raise UserError(
                f"{run_dir} already holds a run; continue it with `gantrain fit --resume {run_dir}`, "
                f"pick another directory with --run-dir, or pass --overwrite to replace it"
                if is_run else f"{run_dir} is not empty and is not a gantrain run; choose another --run-dir"
            )
        if not is_run:
            raise UserError(f"--overwrite: {run_dir} is not a gantrain run (no config.yaml or checkpoints/); refusing to delete it")
        return run_dir, True
    return run_dir, False


def clear_run(run_dir: Path) -> None:
    """--overwrite: delete the old run's contents, keeping the lock this process holds."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def open_checkpoint(run: str | Path, which: str | int = "latest") -> tuple[Path, Path, dict, dict]:
    """(checkpoint prefix, run directory, config, meta) of a run directory or checkpoint prefix:
    what every reading command needs before it can rebuild the networks."""
    prefix = ckpt_lib.find_checkpoint(Path(run), which)
    run_dir = ckpt_lib.run_dir_of(prefix)
    config_path = run_dir / CONFIG
    if not config_path.is_file():
        raise UserError(f"{prefix}: no config.yaml in {run_dir}, so the networks cannot be rebuilt")
    cfg = load_config(config_path)
    return prefix, run_dir, cfg, read_meta(run_dir, cfg)


def restore_networks(model, cfg: dict, prefix: Path, names, what: str) -> tuple[int, dict]:
    """Restore ``model.networks[name]`` for each of ``names`` from ``prefix``: the EMA copy's weights
    where the run kept one (with train.ema_decay the averaged weights are what the run is judged by).

    Returns:
        (the checkpoint's step, name -> the checkpoint key its weights came from).
    """
    keys = {n: f"ema_{n}" if cfg["train"]["ema_decay"] and n in model.averaged else n for n in names}
    step = tf.Variable(0, dtype=tf.int64)
    ckpt_lib.restore(ckpt_lib.make_checkpoint(step, **{keys[n]: model.networks[n].variables for n in names}), prefix, what=what)
    return int(step.numpy()), keys


def load_model(run: str | Path, which: str | int = "latest") -> tuple[GANModel, dict, int]:
    """Returns (model with restored generator, config, step) from a run directory or checkpoint prefix."""
    prefix, run_dir, cfg, meta = open_checkpoint(run, which)
    model = build_model(cfg, tuple(meta["image_shape"]), meta["num_classes"])
    if not model.generates:
        raise UserError(f"{run}: model family {cfg['model']['family']!r} does not draw images from noise, so there is nothing to sample or score this way")
    model.class_names = meta.get("class_names", [])
    model.image_shape = tuple(meta["image_shape"])
    step, keys = restore_networks(model, cfg, prefix, ["generator"], what="generator")
    model.weights_source = keys["generator"]
    model.run_dir = run_dir
    return model, cfg, step
