"""Accuracy of a discriminator's classifier head (SGAN) on a labelled held-out split."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gantrain import checkpoint as ckpt_lib
from gantrain.config import load_config
from gantrain.data import check_split, has_splits, load_dataset
from gantrain.errors import UserError
from gantrain.models.base import GANModel
from gantrain.rundir import CONFIG, build_model, read_meta


def classifier_accuracy(model: GANModel, source, batch: int = 500) -> float:
    """Fraction of ``source`` images whose argmax class logit equals the label."""
    correct = 0
    for i in range(0, len(source), batch):
        images = tf.cast(source.images[i : i + batch], tf.float32) / 127.5 - 1.0
        pred = tf.argmax(model.classify(images), axis=-1, output_type=tf.int32).numpy()
        correct += int((pred == source.labels[i : i + batch]).sum())
    return correct / len(source)


def run_accuracy(run, split: str, which="latest") -> tuple[float, int, int, str]:
    """(accuracy, image count, checkpoint step, data description) of a run's D classifier on ``split``."""

    check_split(split, "--split")
    prefix = ckpt_lib.find_checkpoint(Path(run), which)
    run_dir = ckpt_lib.run_dir_of(prefix)
    cfg = load_config(run_dir / CONFIG)
    meta = read_meta(run_dir, cfg)
    model = build_model(cfg, tuple(meta["image_shape"]), meta["num_classes"])
    if not model.can_classify:
        raise UserError(f"{run}: model family {cfg['model']['family']!r} has no classifier head (sgan has)")
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = ckpt_lib.make_checkpoint(step, discriminator=model.discriminator.variables)
    ckpt_lib.restore(ckpt, prefix, what="discriminator")
    if split == "test" and not has_splits(cfg["data"]):
        raise UserError(f"{run}: the run's data ({cfg['data']['loader']} from a folder) has no held-out test split; use --split train (training accuracy)")
    source = load_dataset(cfg["data"], split=split if has_splits(cfg["data"]) else None)
    if source.num_classes < 2:
        raise UserError(f"{source.description}: no labels to measure accuracy against")
    return classifier_accuracy(model, source), len(source), int(step.numpy()), source.description
