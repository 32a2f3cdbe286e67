"""Supervised baseline for the semi-supervised GAN: the same classifier, the same labelled images, no GAN.

Builds the discriminator of a config's ``sgan`` model (identical architecture), keeps the same
``data.labeled_per_class`` labels (same seed, so the same images) and trains it as a plain
classifier with the discriminator's optimizer settings, then prints test accuracy. Compare with
``gantrain classify RUN`` for an SGAN run of the same config.

    python benchmarks/sgan_baseline.py configs/sgan_mnist.yaml --set data.root=../shared/data/mnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from gantrain.classify import classifier_accuracy
from gantrain.data import held_out_split
from gantrain.config import load_config
from gantrain.data import load_dataset, make_pipeline
from gantrain.data.labels import keep_labels_per_class, labeled_subset
from gantrain.losses import class_cross_entropy
from gantrain.optimizers import build_optimizer
from gantrain.run import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's train.steps)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    source = keep_labels_per_class(load_dataset(cfg["data"]), cfg["data"]["labeled_per_class"], cfg["seed"])
    labeled = labeled_subset(source)
    model = build_model(cfg, source.image_shape, source.num_classes)
    D = model.discriminator
    opt = build_optimizer(cfg["optimizer"]["discriminator"])
    batch = min(cfg["data"]["batch_size"], len(labeled))
    it = iter(make_pipeline(labeled, batch, cfg["seed"] + 1))

    @tf.function
    def step():
        batch_ = next(it)
        images, labels = batch_["image"], batch_["label"]
        with tf.GradientTape() as tape:
            loss = class_cross_entropy(labels, D(images, training=True))
        opt.apply(tape.gradient(loss, D.trainable_variables), D.trainable_variables)
        return loss

    steps = args.steps or cfg["train"]["steps"]
    test = held_out_split(cfg["data"])
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        loss = step()
        if i % max(1, steps // 6) == 0 or i == steps:
            print(f"step {i}: train loss {float(loss):.4f}, test accuracy {classifier_accuracy(model, test):.4f}", flush=True)
    print(f"supervised baseline: {len(labeled)} labelled images, {steps} steps of batch {batch}, "
          f"test accuracy {classifier_accuracy(model, test):.4f} on {len(test)} images, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
