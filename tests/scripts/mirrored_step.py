"""Run one training step on one device and on a 2-replica MirroredStrategy (two logical CPUs) and
print the largest weight difference per network as JSON. Used by tests/test_distribute.py in a
subprocess, because logical devices can only be configured before TensorFlow starts.

usage: python mirrored_step.py MNIST_DIR CASE   (one case per process: two MirroredStrategy
objects in one process clash over collective keys)
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from gantrain.data import load_dataset, make_pipeline  # noqa: E402
from gantrain.distribute import distribute_pipeline  # noqa: E402
from gantrain.losses import get_loss  # noqa: E402
from gantrain.run import _validate_dict, build_model, build_optimizers  # noqa: E402
from gantrain.trainer import GANTrainer, TrainOptions  # noqa: E402

CASES = {
    # The tutorial DCGAN step (BCE, one forward pass for both updates, batch norm in G).
    "dcgan": {},
    # WGAN-GP with 2 critic steps and an EMA generator: per-sample interpolation noise and penalty.
    "wgan_gp": {"loss": {"name": "wasserstein", "penalty": "gradient_penalty"}, "train": {"d_steps": 2, "ema_decay": 0.9}},
    # WGAN with weight clipping (applied after the cross-replica update) and label-free conditioning.
    "wgan_clip": {"loss": {"name": "wasserstein"}, "optimizer": {"discriminator": {"name": "rmsprop", "learning_rate": 0.05, "clip_value": 0.01}}, "train": {"d_steps": 2}},
    # Conditional DCGAN with one-sided label smoothing and noisy targets (global-batch noise, sliced).
    # SGD: its conv biases feed batch norm, so their true gradient is 0 and Adam would turn
    # float round-off (~1e-9) into full-size steps of either sign.
    "cdcgan": {"model": {"family": "cdcgan", "latent_dim": 8, "g_widths": [8, 8, 4], "d_widths": [4, 8]}, "loss": {"real_target": 0.9, "target_noise": 0.1},
               "optimizer": {"generator": {"name": "sgd", "learning_rate": 0.1}, "discriminator": {"name": "sgd", "learning_rate": 0.1}}},
}


def build(cfg, source, strategy):
    with strategy.scope():
        model = build_model(cfg, source.image_shape, source.num_classes, synchronized_bn=strategy.num_replicas_in_sync > 1)
        optimizers = build_optimizers(cfg, model.groups)
    return GANTrainer(model, optimizers["generator"], optimizers["discriminator"], get_loss(cfg["loss"]["name"]), cfg["data"]["batch_size"], cfg["seed"],
                      options=TrainOptions.from_config(cfg), strategy=strategy)


def main(mnist_dir: str, case: str) -> None:
    raw = {
        "seed": 5,
        "model": {"family": "dcgan", "latent_dim": 8, "g_widths": [8, 8, 4], "d_widths": [4, 8], "dropout": 0.0},
        "data": {"loader": "mnist", "root": mnist_dir, "batch_size": 8},
        "optimizer": {"generator": {"learning_rate": 0.01}, "discriminator": {"learning_rate": 0.01}},
    }
    for section, values in CASES[case].items():
        raw[section] = values if section == "model" else {**raw.get(section, {}), **values}
    cfg = _validate_dict(raw, [])
    source = load_dataset(cfg["data"])
    single = build(cfg, source, tf.distribute.get_strategy())
    mirrored = build(cfg, source, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    # Same starting point: copy every network variable (the two builds share the seed, but be explicit).
    for a, b in [(single.generator, mirrored.generator), (single.discriminator, mirrored.discriminator)]:
        for va, vb in zip(a.variables, b.variables):
            vb.assign(va)
    if single.ema:
        for va, vb in zip(single.ema.variables, mirrored.ema.variables):
            vb.assign(va)
    nets = {"generator": (single.generator, mirrored.generator), "discriminator": (single.discriminator, mirrored.discriminator)}
    if single.ema:
        nets["ema_generator"] = (single.ema.model, mirrored.ema.model)
    initial = {name: [v.numpy() for v in a.variables] for name, (a, _) in nets.items()}
    b = cfg["data"]["batch_size"]
    pipe = lambda: make_pipeline(source, b, cfg["seed"])  # noqa: E731
    out_single = single.train_steps(iter(pipe()), tf.constant(2))
    out_mirrored = mirrored.train_steps(iter(distribute_pipeline(mirrored.strategy, pipe, b)), tf.constant(2))
    result = {"replicas": mirrored.strategy.num_replicas_in_sync}
    for name, (a, m) in nets.items():
        result[name] = max(float(np.max(np.abs(va.numpy() - vm.numpy()))) for va, vm in zip(a.variables, m.variables))
        result[name + "_moved"] = max(float(np.max(np.abs(va.numpy() - v0))) for va, v0 in zip(a.variables, initial[name]))
    result["losses"] = {k: [float(out_single[k]), float(out_mirrored[k])] for k in out_single}
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
