"""Side-by-side training throughput of pix2pix, CycleGAN, SRResNet and SRGAN: gantrain against hand-written loops.

Variants, on the same networks (built by gantrain's family builders from the shipped config), the
same batch size, image size and input pipeline (the config's data, CIFAR-10 JPEGs here):
  a  gantrain       `gantrain.fit` on the shipped config, images/s read from its metrics.jsonl
  b  tutorial loop  a hand-written tf.function step written like TensorFlow's pix2pix tutorial
                    (two tapes, one forward pass) or CycleGAN tutorial (one persistent tape, four
                    optimizers, no history pool), with the config's losses; for SRResNet a one-tape
                    MSE step, for SRGAN the paper's alternating D-then-G step
Each measurement runs in a fresh process; variants alternate (a b a b ...) for --rounds rounds and
the table reports medians, so machine noise hits both alike.

    python benchmarks/translation_throughput.py --rounds 3
    python benchmarks/translation_throughput.py --rounds 3 --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit

REPO = Path(__file__).resolve().parents[1]
# name -> (shipped config, overrides that make both variants train the same thing, timed steps per window)
CASES = {
    # The tutorial's G makes RGB and keeps no average of its weights: time pix2pix the same way.
    "pix2pix_cifar10_b16": ("configs/pix2pix_cifar10_colorize.yaml", ["model.output=image", "train.ema_decay=null"], 60),
    # The tutorial's step has the identity loss: both variants compute it (the shipped config has it off).
    "cyclegan_cifar10_b4": ("configs/cyclegan_horse2deer.yaml", ["model.identity_weight=0.5"], 30),
    # The tutorial has no history pool: the same without it on gantrain's side.
    "cyclegan_cifar10_b4_nopool": ("configs/cyclegan_horse2deer.yaml", ["model.identity_weight=0.5", "model.pool_size=0"], 30),
    "srresnet_cifar10_x4_b16": ("configs/srresnet_x4.yaml", [], 60),
    # Pixel MSE and no init_from, so the benchmark needs neither the classifier nor the SRResNet run.
    "srgan_cifar10_x4_b16": ("configs/srgan_x4.yaml", ["loss.content=pixel_mse", "loss.content_network=vgg19", "loss.content_layer=null",
                                                       "loss.content_weights=null", "model.init_from=null"], 30),
}
NAMES = {"a": "gantrain", "b": "tutorial-style tf.function loop"}


def _config(case: str):
    from gantrain.config import load_config

    path, overrides, _ = CASES[case]
    return load_config(REPO / path, overrides)


def worker_a(case: str, steps: int) -> float:
    import gantrain

    path, overrides, _ = CASES[case]
    run = Path(tempfile.mkdtemp()) / "run"
    sets = overrides + [f"train.steps={4 * steps}", f"log.every={steps}", f"log.sample_every={4 * steps}", f"log.checkpoint_every={4 * steps}",
                        "optimizer.generator.schedule=constant", "optimizer.discriminator.schedule=constant",
                        "optimizer.generator.decay_start=null", "optimizer.discriminator.decay_start=null"]
    gantrain.fit(str(REPO / path), overrides=sets, run_dir=run, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_sec"] for r in rows[1:])  # window 1 includes tracing


def worker_b(case: str, steps: int) -> float:
    import keras
    import tensorflow as tf

    from gantrain.rundir import build_model, family_source

    cfg = _config(case)
    source = family_source(cfg)
    model = build_model(cfg, source.image_shape, 0)
    batch = cfg["data"]["batch_size"]
    it = iter(source.pipeline(batch, cfg["seed"]))
    adam = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)  # noqa: E731
    mse = lambda logits, target: tf.reduce_mean(tf.square(logits - target))  # noqa: E731
    l1 = lambda x, y: tf.reduce_mean(tf.abs(x - y))  # noqa: E731

    if cfg["model"]["family"] == "pix2pix":
        G, D = model.generator, model.discriminator
        g_opt, d_opt = adam(), adam()

        def bce(logits, target):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))

        @tf.function
        def train_step(batch_):
            x, y = tf.repeat(batch_["source"], 3, axis=-1), batch_["target"]
            with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
                gen_output = G(x, training=True)
                disc_real, disc_generated = D([y, x], training=True), D([gen_output, x], training=True)
                gen_loss = bce(disc_generated, 1.0) + 100.0 * l1(y, gen_output)
                disc_loss = bce(disc_real, 1.0) + bce(disc_generated, 0.0)
            g_opt.apply_gradients(zip(gen_tape.gradient(gen_loss, G.trainable_variables), G.trainable_variables))
            d_opt.apply_gradients(zip(disc_tape.gradient(disc_loss, D.trainable_variables), D.trainable_variables))

        probe = G.trainable_variables[0]
    elif cfg["model"]["family"] == "srresnet":  # a Keras-example-style step: one tape, pixel MSE
        G, opt = model.generator, keras.optimizers.Adam(1e-4)

        @tf.function
        def train_step(batch_):
            with tf.GradientTape() as tape:
                loss = mse(G(batch_["lr"], training=True), batch_["hr"])
            opt.apply_gradients(zip(tape.gradient(loss, G.trainable_variables), G.trainable_variables))

        probe = G.trainable_variables[0]
    elif cfg["model"]["family"] == "srgan":  # the paper's alternating step: D, then G through the updated D
        G, D = model.generator, model.discriminator
        g_opt, d_opt = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)

        def bce(logits, target):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))

        @tf.function
        def train_step(batch_):
            lr, hr = batch_["lr"], batch_["hr"]
            with tf.GradientTape() as d_tape:
                sr = G(lr, training=True)
                d_loss = bce(D(hr, training=True), 1.0) + bce(D(sr, training=True), 0.0)
            d_opt.apply_gradients(zip(d_tape.gradient(d_loss, D.trainable_variables), D.trainable_variables))
            with tf.GradientTape() as g_tape:
                sr = G(lr, training=True)
                g_loss = mse(sr, hr) + 1e-3 * bce(D(sr, training=True), 1.0)
            g_opt.apply_gradients(zip(g_tape.gradient(g_loss, G.trainable_variables), G.trainable_variables))

        probe = G.trainable_variables[0]
    else:
        n = model.networks
        G, F, DX, DY = n["g_ab"], n["g_ba"], n["d_a"], n["d_b"]
        opts = [adam() for _ in range(4)]

        @tf.function
        def train_step(batch_):
            real_x, real_y = batch_["domain_a"], batch_["domain_b"]
            with tf.GradientTape(persistent=True) as tape:
                fake_y, fake_x = G(real_x, training=True), F(real_y, training=True)
                cycled_x, cycled_y = F(fake_y, training=True), G(fake_x, training=True)
                same_x, same_y = F(real_x, training=True), G(real_y, training=True)
                disc_real_x, disc_real_y = DX(real_x, training=True), DY(real_y, training=True)
                disc_fake_x, disc_fake_y = DX(fake_x, training=True), DY(fake_y, training=True)
                cycle = 10.0 * (l1(real_x, cycled_x) + l1(real_y, cycled_y))
                g_loss = mse(disc_fake_y, 1.0) + cycle + 5.0 * l1(real_y, same_y)
                f_loss = mse(disc_fake_x, 1.0) + cycle + 5.0 * l1(real_x, same_x)
                dx_loss = 0.5 * (mse(disc_real_x, 1.0) + mse(disc_fake_x, 0.0))
                dy_loss = 0.5 * (mse(disc_real_y, 1.0) + mse(disc_fake_y, 0.0))
            for opt, loss, net in zip(opts, (g_loss, f_loss, dx_loss, dy_loss), (G, F, DX, DY)):
                opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))

        probe = G.trainable_variables[0]

    for _ in range(max(2, steps // 10)):  # warm-up and tracing
        train_step(next(it))
    t = time.perf_counter()
    for _ in range(3 * steps):
        train_step(next(it))
    float(tf.reduce_sum(probe))  # wait for the last step
    return 3 * steps * batch / (time.perf_counter() - t)


WORKERS = {"a": worker_a, "b": worker_b}


def measure(variant: str, case: str, quick: bool) -> float:
    steps = max(4, CASES[case][2] // 5) if quick else CASES[case][2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, __file__, "--worker", variant, "--case", case, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, cwd=REPO)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{variant}/{case} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])["ips"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    p.add_argument("--write", help="append the table to this markdown file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps({"ips": WORKERS[a.worker](a.case, a.steps)}))
        return
    lines = [f"### Image-to-image training throughput, {dt.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} CPUs), "
             f"medians of {a.rounds} alternating rounds (`benchmarks/translation_throughput.py`)", "",
             "| case | variant | images/s (median) | all rounds | gantrain / this |", "|---|---|---|---|---|"]
    for case in a.cases.split(","):
        results = {v: [] for v in NAMES}
        for r in range(a.rounds):
            for v in NAMES:
                results[v].append(measure(v, case, a.quick))
                print(f"round {r + 1} {case} {v}: {results[v][-1]:.1f} images/s", flush=True)
        med = {v: statistics.median(x) for v, x in results.items()}
        for v in NAMES:
            lines.append(f"| {case} | {v}: {NAMES[v]} | {med[v]:.1f} | {', '.join(f'{x:.1f}' for x in results[v])} | {med['a'] / med[v]:.2f}x |")
    emit("\n".join(lines) + "\n", a.write)


if __name__ == "__main__":
    main()
