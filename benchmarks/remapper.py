"""Grappler's remapper on vs off for the DCGAN training step (side by side, fresh processes).

    python benchmarks/remapper.py --mnist ../shared/data/mnist --rounds 2 --steps 10

gantrain's fit turns the remapper off while training (gantrain/run.py, _without_remapper): on the
DCGAN step it fails to fuse Conv2D + BiasAdd + LeakyReLU, logs an error line and skips the pass.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = r"""
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
if sys.argv[1] == "off":
    tf.config.optimizer.set_experimental_options({"remapping": False})
from gantrain.config import load_config
from gantrain.data import load_dataset, make_pipeline
from gantrain.losses import get_loss
from gantrain.run import build_model, build_optimizers
from gantrain.trainer import Trainer, TrainOptions
cfg = load_config("configs/dcgan_mnist_tutorial.yaml", ["data.root=" + sys.argv[2]])
src = load_dataset(cfg["data"])
model = build_model(cfg, src.image_shape, src.num_classes)
trainer = Trainer(model, build_optimizers(cfg, model.groups), get_loss(cfg["loss"]["name"]),
                     cfg["data"]["batch_size"], 0, options=TrainOptions.from_config(cfg))
it = iter(make_pipeline(src, cfg["data"]["batch_size"], 0))
float(trainer.train_steps(it, tf.constant(1))["d_loss"])  # trace and warm up
t0 = time.perf_counter()
float(trainer.train_steps(it, tf.constant(int(sys.argv[3])))["d_loss"])
print((time.perf_counter() - t0) / int(sys.argv[3]))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mnist", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    times = {"on": [], "off": []}
    for _ in range(args.rounds):
        for variant in times:  # alternating: both variants see the same machine load
            out = subprocess.run([sys.executable, "-c", CHILD, variant, args.mnist, str(args.steps)], capture_output=True, text=True, check=True)
            times[variant].append(float(out.stdout.split()[-1]))
    for variant, ts in times.items():
        print(f"remapper {variant:<3}: {statistics.median(ts) * 1000:7.0f} ms per DCGAN step (batch 256), rounds: {', '.join(f'{t * 1000:.0f}' for t in ts)}")


if __name__ == "__main__":
    main()
