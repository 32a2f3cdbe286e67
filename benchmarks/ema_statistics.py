"""A run's sampling generator scored two ways: with the batch-norm statistics its checkpoint holds,
and with each batch's own statistics (batch norm in training mode), which is what standing statistics
approximate. A large gap means the saved statistics do not belong to the saved weights: how the
EMA bug of issue 16 was found (CDCGAN at step 1,000: FID 214 against 54).

    python benchmarks/ema_statistics.py runs/cdcgan_mnist [--n 2000] [--checkpoint latest]

Prints FID (the dataset's domain classifier, against the test split) and, for class-conditional
families, conditional accuracy, for both modes; the same noise and labels in both.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

from gantrain.data import load_dataset
from gantrain.evaluate import real_features, resolve_extractor, score
from gantrain.sampling import load_model

BATCH = 250


def scores(model, extractor, real, n: int, training: bool) -> tuple[float, float | None]:
    rng = tf.random.Generator.from_seed(0)
    images, labels = [], []
    for _ in range(0, n, BATCH):
        label = np.arange(BATCH) % model.num_classes if model.conditional else None
        latent = model.sample_latent(rng, BATCH, labels=None if label is None else tf.constant(label, tf.int32))
        images.append(model.generate(latent, training=training).numpy())
        labels.append(label)
    feats, probs = extractor(np.concatenate(images)[:n])
    fid = score(["fid"], real, feats, probs, 0)["fid"]
    accuracy = None
    if model.conditional and model.labels_are_classes:
        accuracy = float((probs.argmax(axis=1) == np.concatenate(labels)[:n]).mean())
    return fid, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--checkpoint", default="latest")
    args = parser.parse_args()
    which = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    model, cfg, step = load_model(args.run, which)
    data = {k: v for k, v in cfg["data"].items() if k not in ("batch_size", "labeled_per_class")}
    extractor = resolve_extractor(cfg["eval"]["extractor"], cfg["eval"]["weights"], data["loader"], model.image_shape)
    real, _, _ = real_features(load_dataset({**data, "split": "test"}, split="test"), {**data, "split": "test"}, args.n, extractor, seed=0)
    print(f"{args.run} step {step} ({model.weights_source} weights), n = {args.n}")
    for training, what in ((False, "saved statistics"), (True, "batch statistics")):
        fid, accuracy = scores(model, extractor, real, args.n, training)
        print(f"  {what:17s} FID {fid:8.2f}" + ("" if accuracy is None else f"   accuracy {accuracy:.4f}"))


if __name__ == "__main__":
    main()
