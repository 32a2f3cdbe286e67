"""``fit``: builds everything from a resolved config and runs the step loop with its hooks.

Hooks run on step boundaries: scalar logs (metrics.jsonl, TensorBoard, progress bar) every
``log.every`` steps, a sample grid from fixed noise every ``log.sample_every`` and a checkpoint
every ``log.checkpoint_every``, plus a final checkpoint and grid at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # is/disable_op_determinism: no public API

from gantrain import checkpoint as ckpt_lib
from gantrain import distribute
from gantrain.config import apply_overrides, load_config, validate
from gantrain.data import held_out_split, require_roles
from gantrain.data.labels import keep_labels_per_class
from gantrain.errors import UserError
from gantrain.evaluate import TrainingEvaluator
from gantrain.losses import get_loss
from gantrain.models.base import FamilyModel
from gantrain.optimizers import build_optimizer, configure_schedules
from gantrain.registry import MODELS
from gantrain.runlock import RunLock
from gantrain.loop import TrainingLoop, apply_lr_scale
from gantrain.rundir import build_model, clear_run, family_source, held_out_family_source, init_from, prepare_run_dir, read_meta, write_config, write_meta
from gantrain.trainer import Trainer, TrainOptions



def resolve_jit(cfg: dict, model: FamilyModel, strategy: tf.distribute.Strategy) -> bool:
    """``train.jit_compile``, with null (auto) decided on every (re)start: a resume on another strategy may change it."""
    setting, replicas = cfg["train"]["jit_compile"], strategy.num_replicas_in_sync
    if setting and replicas > 1:
        # Measured on two logical CPUs: XLA refuses a step whose replica variables live on other devices.
        raise UserError("train.jit_compile: XLA is not supported with a multi-replica strategy here; set train.jit_compile: false "
                        f"(distribute.strategy {cfg['distribute']['strategy']!r} has {replicas} replicas)")
    return auto_jit(model, strategy) if setting is None else setting


def auto_jit(model: FamilyModel, strategy: tf.distribute.Strategy) -> bool:
    """XLA where it was measured to help: fully connected networks (it fuses the many small
    element-wise optimizer ops) on one replica. Convolutional steps ran slower under XLA on CPU."""
    if strategy.num_replicas_in_sync > 1:
        return False
    return not any(_is_conv(layer) for net in model.networks.values() for layer in _all_layers(net))


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)
    if getattr(layer, "layer", None) is not None:  # wrappers such as SpectralNormalization
        yield layer.layer
        yield from _all_layers(layer.layer)


def _is_conv(layer) -> bool:
    return "Conv" in type(layer).__name__


def build_optimizers(cfg: dict, groups) -> dict:
    """One optimizer per group (``optimizer.<group>``); float16 training wraps each in dynamic loss scaling."""
    optimizers = {}
    for group in groups:
        optimizer = build_optimizer(cfg["optimizer"][group.name])
        if cfg["train"]["precision"] == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizers[group.name] = optimizer
    return optimizers


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
    cfg = validate(apply_overrides(raw, overrides or [], {}))
    cfg["name"] = cfg["name"] or "run"
    return cfg


def fit(config=None, overrides=None, run_dir=None, resume=None, overwrite=False, progress=True) -> Path:
    """Train a GAN. ``config`` is a YAML path or a raw config dict; returns the run directory."""
    resume = Path(resume) if resume is not None else None
    if resume is not None and not (resume / "config.yaml").is_file():
        raise UserError(f"--resume {resume}: no config.yaml there; is it a gantrain run directory?")
    cfg = resolve_fit_config(config, overrides, resume)
    # Before any other TensorFlow work: multi-worker collectives and logical devices are start-up settings.
    strategy = distribute.make_strategy(cfg["distribute"])
    chief = distribute.is_chief(strategy)
    if chief:
        run_dir, clear = prepare_run_dir(cfg, Path(run_dir) if run_dir else None, resume, overwrite)
    else:  # the chief's run directory: read (to resume), never written by this worker
        run_dir, clear = resume or Path(run_dir or Path("runs") / cfg["name"]), False

    source = family_source(cfg)
    batch_size = cfg["data"]["batch_size"]
    distribute.check_batch(strategy, batch_size)
    if batch_size > len(source):
        raise UserError(f"data.batch_size: {batch_size} is larger than the dataset ({len(source)} images)")
    if cfg["data"]["labeled_per_class"] is not None:
        source = keep_labels_per_class(source, cfg["data"]["labeled_per_class"], cfg["seed"])

    require_roles(MODELS.get(cfg["model"]["family"]).roles, source.roles, cfg["model"]["family"], source.description)
    with strategy.scope():  # the trainer's noise generator, created later, stays outside it on purpose
        model = build_model(cfg, source.image_shape, source.num_classes, synchronized_bn=strategy.num_replicas_in_sync > 1)
        optimizers = build_optimizers(cfg, model.groups)
    if cfg["model"]["init_from"] is not None and resume is None:  # a resumed run has its own weights
        print(init_from(model, cfg["model"]["init_from"]), file=sys.stderr)
    if cfg["data"]["labeled_per_class"] is not None and not model.uses_labeled_stream:
        raise UserError(f"data.labeled_per_class: only semi-supervised families use it (sgan), not {cfg['model']['family']!r}")
    if resume is not None:
        saved = read_meta(resume, cfg)
        if saved.get("num_classes", source.num_classes) != source.num_classes:
            raise UserError(f"cannot resume {resume}: its data had {saved['num_classes']} classes, {source.description} has {source.num_classes}")
        if tuple(saved.get("image_shape", source.image_shape)) != tuple(source.image_shape):
            # e.g. data.channels: auto resolving to RGB once a colour file joined a grey folder
            raise UserError(f"cannot resume {resume}: its images were {tuple(saved['image_shape'])}, {source.description} now gives "
                            f"{tuple(source.image_shape)}; restore the data as it was (data.channels: auto follows the files) or start a new run")
    evaluation = prepare_evaluation(cfg, model, source)  # may refuse the config: before anything is written
    trainer = Trainer(
        model,
        optimizers,
        get_loss(cfg["loss"]["name"]),
        batch_size,
        cfg["seed"],
        options=dataclasses.replace(TrainOptions.from_config(cfg), jit_compile=resolve_jit(cfg, model, strategy)),
        strategy=strategy,
    )
    if cfg["train"]["epochs"] is not None:  # an epoch counts the batches the steps read (d_steps each, for a critic)
        cfg["train"]["steps"] = max(1, int(round(cfg["train"]["epochs"] * len(source) / (batch_size * trainer.batches_per_step))))
    configure_schedules(optimizers, cfg["train"]["steps"], trainer.updates_per_step)
    step = tf.Variable(0, dtype=tf.int64, name="step")
    lr_scale = tf.Variable(1.0, dtype=tf.float32, name="lr_scale")  # lowered by NaN rollbacks
    ckpt = make_training_checkpoint(trainer, step, lr_scale)
    # Other workers make the same calls as the chief (saves may need collective reads) but into a
    # scratch folder, created only now that every check has passed: only the chief writes the run.
    out_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix=f"gantrain-{distribute.worker_label(strategy)}-"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"{out_dir}: cannot write the run directory ({err.strerror}); choose another with --run-dir") from None
    # The lock comes before --overwrite clears anything: a run another process is training is never deleted.
    lock = RunLock(out_dir).acquire() if chief else None
    try:
        if clear:
            clear_run(run_dir)
        with _without_remapper(), _op_determinism(cfg["train"]["deterministic"]):
            _train(cfg, out_dir, run_dir, resume, trainer, source, step, lr_scale, ckpt, progress and chief, evaluation, strategy)
    finally:
        if lock is not None:
            lock.release()
        if not chief:
            shutil.rmtree(out_dir, ignore_errors=True)
    return run_dir


@contextlib.contextmanager
def _without_remapper():
    """Grappler's remapper off while training on CPU, restored afterwards.

    On a training step whose LeakyReLU gradient reads its conv's BiasAdd output (every DCGAN-style
    D), the remapper tries to fuse Conv2D + BiasAdd + LeakyReLU, fails, and logs an
    ``E0000 ... remapper failed: INVALID_ARGUMENT`` line that reads like an error to a new user; it
    then skips the whole pass for that graph anyway. With it off the message is gone; the step
    time is compared in benchmarks/remapper.py (BENCHMARKS.md).
    """
    if tf.config.list_physical_devices("GPU"):
        # Measured on CPU only; on GPUs the remapper's conv + bias + activation fusions matter, so
        # it stays as TensorFlow sets it there.
        yield
        return
    previous = tf.config.optimizer.get_experimental_options().get("remapping")
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": True if previous is None else previous})


@contextlib.contextmanager
def _op_determinism(on: bool):
    """train.deterministic: TensorFlow op determinism while this run trains, as it was afterwards.

    Left on, it would make every later unseeded random op of the caller's process (a notebook)
    raise "Random ops require a seed".
    """
    if not on or tf_config.is_op_determinism_enabled():
        yield
        return
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        tf_config.disable_op_determinism()


def _train(cfg, out_dir, run_dir, resume, trainer, source, step, lr_scale, ckpt, progress, evaluation, strategy) -> None:
    manager = ckpt_lib.manager(ckpt, out_dir / "checkpoints", cfg["log"]["keep_checkpoints"], step)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints")) if resume is not None else None
    if latest:
        ckpt_lib.restore(ckpt, latest)
    elif resume is not None:
        print(f"note: {run_dir} has no checkpoint yet; starting from step 0", file=sys.stderr)
    apply_lr_scale(cfg, trainer, lr_scale)  # the config's rates (a resumed run may change them) x rollbacks
    write_config(out_dir, cfg)
    write_meta(out_dir, source)
    TrainingLoop(cfg, out_dir, trainer, source, step, manager, lr_scale, progress, evaluation, strategy).run()


def prepare_evaluation(cfg: dict, model: FamilyModel, source) -> dict:
    """The evaluator and held-out split used during training, built (and checked) up front."""
    out = {"evaluator": None, "accuracy_source": None, "grid_source": None}
    if model.can_translate:  # grids translate fixed held-out images when the data has a test split
        out["grid_source"] = held_out_family_source(cfg)
    if model.can_classify:
        out["accuracy_source"] = held_out_split(cfg["data"])
        if out["accuracy_source"] is None:
            print(f"note: {source.description} has no held-out split; D's classifier accuracy is not logged", file=sys.stderr)
    if cfg["eval"]["metrics"]:
        if not model.generates:
            raise UserError(f"eval.metrics: model family {cfg['model']['family']!r} does not draw images from noise; the metrics score generated samples")
        model.image_shape = source.image_shape
        out["evaluator"] = TrainingEvaluator(cfg, model, source)
    return out


def make_training_checkpoint(trainer: Trainer, step: tf.Variable, lr_scale: tf.Variable) -> tf.train.Checkpoint:
    return ckpt_lib.make_checkpoint(step, trainer.rng, lr_scale=[lr_scale], **trainer.checkpoint_parts())
