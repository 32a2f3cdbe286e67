"""Small domain classifiers: the feature extractors for MNIST-like data, trained by ``gantrain classifier train``.

The network takes images in [-1, 1] (what generators produce): two conv blocks, a 128-unit
penultimate layer (the features for FID, KID and precision/recall) and class logits (softmax for
the classifier score and conditional accuracy). Weights are saved as ``NAME.weights.h5`` (plain
arrays, no code) beside ``NAME.json``, which records the architecture inputs, the training data,
the test accuracy and the weights' SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

from gantrain.data import held_out_split, load_dataset
from gantrain.errors import UserError

SHIPPED = Path(__file__).resolve().parent / "weights"


def build_classifier(image_shape: tuple, num_classes: int, width: int = 32, feature_dim: int = 128) -> keras.Model:
    """(H, W, C) in [-1, 1] -> [class logits (N), features (feature_dim)]."""
    inp = keras.Input(image_shape, name="images")
    x = inp
    for w in (width, 2 * width):
        x = layers.Conv2D(w, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(w, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    features = layers.Dense(feature_dim, activation="relu", name="features")(x)
    logits = layers.Dense(num_classes, name="logits")(layers.Dropout(0.5)(features))
    return keras.Model(inp, [logits, features], name="classifier")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# What ``gantrain classifier train --augment`` may name: label-preserving for natural photographs
# (CIFAR-style classes, the CycleGAN domains); digits are not mirror-symmetric, so none is the default.
AUGMENTS = ("flip", "translation")


def augmented(x: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int, seed: int, augment: tuple) -> tuple:
    """A shuffled, augmented tf.data pipeline over ``epochs`` passes and its steps per epoch.

    Each batch draws its augmentation from the stateless seed (seed, batch number): mirror left-right
    with probability 1/2 (``flip``) and shift by up to 1/8 of the side with zero fill
    (``translation``: the pad-4-and-crop of CIFAR classifiers at 32x32).
    """
    import tensorflow as tf

    from gantrain.augment import flip, translation

    ops = {"flip": flip, "translation": translation}
    steps = -(-len(x) // batch_size)

    def apply(i, batch):
        images, y = batch
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(seed, tf.int64), i]), len(augment))
        for k, name in enumerate(augment):
            images = ops[name](images, seeds[k])
        return images, y

    ds = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).repeat(epochs).enumerate().map(apply).prefetch(2), steps


def train_classifier(data_cfg: dict, out: Path, epochs: int, seed: int, batch_size: int = 128, augment: tuple = ()) -> dict:
    """Train on the config's train split, report accuracy on its test split, save weights + JSON."""
    unknown = sorted(set(augment) - set(AUGMENTS))
    if unknown:
        raise UserError(f"--augment: unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTS)} (comma-separated)")

    # A training command: Keras fit's shuffling and dropout read the global seeds, so they are set
    # here (unlike build_model, which seeds only what a run owns, see gantrain/seeding.py).
    keras.utils.set_random_seed(seed)
    train = load_dataset(data_cfg, split="train" if "split" in data_cfg else None)
    if train.num_classes < 2:
        raise UserError(f"{train.description}: a classifier needs class labels (class subfolders or a labelled dataset)")
    test = held_out_split(data_cfg) or train
    model = build_classifier(train.image_shape, train.num_classes)
    trainer = keras.Model(model.input, model.outputs[0])
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x = train.images.astype(np.float32) / 127.5 - 1.0
    t0 = time.perf_counter()
    if augment:
        ds, steps = augmented(x, train.labels, batch_size, epochs, seed, tuple(augment))
        trainer.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=2)
    else:
        trainer.fit(x, train.labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=2)
    seconds = time.perf_counter() - t0
    _, accuracy = trainer.evaluate(test.images.astype(np.float32) / 127.5 - 1.0, test.labels, batch_size=500, verbose=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights = out.with_name(out.name + ".weights.h5")
    tmp = weights.with_name("." + weights.name + ".tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, weights)
    record = {
        "image_shape": list(train.image_shape),
        "num_classes": train.num_classes,
        "class_names": train.class_names,
        "trained_on": train.description,
        "tested_on": test.description,
        "test_accuracy": round(float(accuracy), 5),
        "epochs": epochs,
        "batch_size": batch_size,
        "augment": list(augment),
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "data": {k: v for k, v in data_cfg.items() if k != "root"},
        "weights_sha256": sha256(weights),
        "date": dt.date.today().isoformat(),
        "keras": keras.__version__,
    }
    out.with_name(out.name + ".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def load_classifier(path_stem: Path) -> tuple[keras.Model, dict, str]:
    """Load ``STEM.weights.h5`` + ``STEM.json``; raises UserError when missing or mismatched.

    Returns (model, the JSON record, SHA-256 of the weights file as read now). The record's own
    ``weights_sha256`` says which weights it was written for; the file may since have changed.
    """
    stem = Path(path_stem)
    meta_path, weights = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".weights.h5")
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{stem}: classifier files not found (need {weights.name} and {meta_path.name}; train one with `gantrain classifier train`)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    names = meta.get("class_names")
    if names is not None and len(names) != meta["num_classes"]:
        raise UserError(f"{meta_path}: class_names lists {len(names)} classes but num_classes is {meta['num_classes']}")
    model = build_classifier(tuple(meta["image_shape"]), meta["num_classes"])
    try:
        model.load_weights(weights)
    except (ValueError, OSError) as err:
        raise UserError(f"{weights}: does not fit the classifier described in {meta_path.name}: {str(err).splitlines()[0]}") from None
    return model, meta, sha256(weights)
