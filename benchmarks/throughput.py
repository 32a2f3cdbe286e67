"""Side-by-side training throughput: gantrain against the loops a user would otherwise write.

Variants, all on the same networks (built by gantrain's family builders) and real MNIST:
  a  gantrain       `gantrain.fit` with default settings, images/s read from its own metrics.jsonl
  b  tf.function    the TensorFlow DCGAN tutorial's loop: one tf.function step, both losses from
                    one forward pass, tf.data from_tensor_slices/shuffle/batch
  c  keras fit      a keras.Model subclass with train_step, driven by fit (keras-io style)
  d  train_on_batch the Keras-2 style: D.train_on_batch on real and fake, then combined.train_on_batch,
                    toggling D.trainable (the Keras 3 fix for the frozen-D idiom)
On request (--variants): ax / a0 gantrain with XLA forced on / off, bx the loop with XLA.

Each measurement runs in a fresh process (so peak RSS is per variant); variants alternate
(a b c d a b c d ...) for --rounds rounds and the table reports medians, so machine noise hits all
variants alike. Also measured: the input pipeline alone, which must outrun training by 10x.

    python benchmarks/throughput.py --mnist ../shared/data/mnist            # full table
    python benchmarks/throughput.py --mnist ../shared/data/mnist --quick    # smoke run
    python benchmarks/throughput.py ... --write BENCHMARKS.md               # append the table
    python benchmarks/throughput.py ... --variants a,ax,b,bx --cases dcgan_b256  # XLA on/off
    python benchmarks/throughput.py ... --baseline /tmp/old --variants a,base  # this tree against another checkout
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import emit

CASES = {  # name -> (family, batch, timed steps per window)
    "dcgan_b256": ("dcgan", 256, 6),
    "mlp_b32": ("gan", 32, 300),
    "mlp_b256": ("gan", 256, 50),
}
VARIANTS = ("a", "b", "c", "d")  # the default table; ax and bx (XLA) on request with --variants
NAMES = {"a": "gantrain", "b": "tf.function loop", "c": "keras fit/train_step", "d": "train_on_batch (Keras-2 style)",
         "base": "gantrain at --baseline (same settings as a)", "ax": "gantrain, train.jit_compile: true", "a0": "gantrain, train.jit_compile: false", "bx": "tf.function loop, jit_compile=True"}


# ------------------------------------------------------------------------------------------------
# Workers: one variant, one process; print {"ips": ..., "peak_rss_mb": ...}.
# ------------------------------------------------------------------------------------------------
def _setup(family, batch, mnist):
    import numpy as np

    from gantrain.config import validate
    from gantrain.data import load_dataset
    from gantrain.run import build_model

    cfg = validate({"model": {"family": family}, "data": {"loader": "mnist", "root": mnist, "batch_size": batch}})
    source = load_dataset(cfg["data"])
    model = build_model(cfg, source.image_shape, source.num_classes)
    x = source.images.astype(np.float32) / 127.5 - 1.0
    return cfg, model, x


def _bce(logits, target):
    import tensorflow as tf

    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target), logits=logits))


def worker_a(family, batch, steps, mnist, jit=None):  # None: gantrain's default (auto)
    import gantrain

    run = Path(tempfile.mkdtemp()) / "run"
    cfg = {"model": {"family": family}, "data": {"loader": "mnist", "root": mnist, "batch_size": batch},
           "optimizer": {"generator": {"learning_rate": 1e-4}, "discriminator": {"learning_rate": 1e-4}},
           "train": {"steps": 4 * steps, "jit_compile": jit}, "log": {"every": steps, "sample_every": 4 * steps, "checkpoint_every": 4 * steps}}
    gantrain.fit(cfg, run_dir=run, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_sec"] for r in rows[1:])  # window 1 includes tracing


def worker_b(family, batch, steps, mnist, jit=False):
    import tensorflow as tf

    _, model, x = _setup(family, batch, mnist)
    G, D = model.generator, model.discriminator
    g_opt, d_opt = tf.keras.optimizers.Adam(1e-4), tf.keras.optimizers.Adam(1e-4)
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(60000).batch(batch, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)

    @tf.function(jit_compile=jit)
    def train_step(images):
        noise = tf.random.normal([batch, model.latent_dim])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated = G(noise, training=True)
            real_output = D(images, training=True)
            fake_output = D(generated, training=True)
            gen_loss = _bce(fake_output, 1.0)
            disc_loss = _bce(real_output, 1.0) + _bce(fake_output, 0.0)
        g_opt.apply_gradients(zip(gen_tape.gradient(gen_loss, G.trainable_variables), G.trainable_variables))
        d_opt.apply_gradients(zip(disc_tape.gradient(disc_loss, D.trainable_variables), D.trainable_variables))

    it = iter(ds)
    for _ in range(max(2, steps // 10)):  # warm-up and tracing
        train_step(next(it))
    t = time.perf_counter()
    for _ in range(2 * steps):
        train_step(next(it))
    float(G.trainable_variables[0][0, 0])  # wait for the last step
    return 2 * steps * batch / (time.perf_counter() - t)


def worker_c(family, batch, steps, mnist):
    import keras
    import tensorflow as tf

    _, model, x = _setup(family, batch, mnist)
    latent_dim = model.latent_dim

    class GAN(keras.Model):
        def __init__(self, G, D):
            super().__init__()
            self.G, self.D = G, D

        def compile(self, d_opt, g_opt):
            super().compile()
            self.d_opt, self.g_opt = d_opt, g_opt

        def train_step(self, real):
            noise = tf.random.normal([tf.shape(real)[0], latent_dim])
            with tf.GradientTape() as tape:
                fake = self.G(noise, training=True)
                d_loss = _bce(self.D(real, training=True), 1.0) + _bce(self.D(fake, training=True), 0.0)
            self.d_opt.apply_gradients(zip(tape.gradient(d_loss, self.D.trainable_variables), self.D.trainable_variables))
            noise = tf.random.normal([tf.shape(real)[0], latent_dim])
            with tf.GradientTape() as tape:
                g_loss = _bce(self.D(self.G(noise, training=True), training=True), 1.0)
            self.g_opt.apply_gradients(zip(tape.gradient(g_loss, self.G.trainable_variables), self.G.trainable_variables))
            return {"d_loss": d_loss, "g_loss": g_loss}

    gan = GAN(model.generator, model.discriminator)
    gan.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(60000).batch(batch, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    gan.fit(ds, epochs=3, steps_per_epoch=steps, verbose=0, callbacks=[Timer()])
    return steps * batch / statistics.median(times[1:])


def worker_d(family, batch, steps, mnist):
    import keras
    import numpy as np

    _, model, x = _setup(family, batch, mnist)
    G, D = model.generator, model.discriminator
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    D.compile(optimizer=keras.optimizers.Adam(1e-4), loss=bce)
    z_in = keras.Input((model.latent_dim,))
    combined = keras.Model(z_in, D(G(z_in)))
    combined.compile(optimizer=keras.optimizers.Adam(1e-4), loss=bce)
    ones, zeros = np.ones((batch, 1), np.float32), np.zeros((batch, 1), np.float32)
    rng = np.random.default_rng(0)

    def step():
        real = x[rng.integers(0, len(x), batch)]
        fake = G.predict(rng.normal(size=(batch, model.latent_dim)).astype(np.float32), verbose=0)
        D.trainable = True
        D.train_on_batch(real, ones)
        D.train_on_batch(fake, zeros)
        D.trainable = False
        combined.train_on_batch(rng.normal(size=(batch, model.latent_dim)).astype(np.float32), ones)

    for _ in range(max(2, steps // 10)):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def worker_pipeline(family, batch, steps, mnist):
    """Batches per second from gantrain's input pipeline alone, in images/s."""
    from gantrain.data import load_dataset, make_pipeline

    source = load_dataset({"loader": "mnist", "root": mnist, "split": "train"})
    it = iter(make_pipeline(source, batch, seed=0))
    for _ in range(20):
        next(it)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n * batch / (time.perf_counter() - t)


WORKERS = {"a": worker_a, "b": worker_b, "c": worker_c, "d": worker_d, "pipeline": worker_pipeline,
           "ax": lambda *args: worker_a(*args, jit=True), "a0": lambda *args: worker_a(*args, jit=False), "bx": lambda *args: worker_b(*args, jit=True)}


def measure(variant, case, mnist, quick, baseline=None):
    family, batch, steps = CASES[case]
    steps = max(2, steps // 5) if quick else steps
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if variant == "base":  # the same worker, importing gantrain from the other checkout
        env["PYTHONPATH"] = os.pathsep.join([baseline, env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--worker", "a" if variant == "base" else variant, "--case", case, "--mnist", mnist, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{variant}/{case} failed:\n{out.stderr[-2000:]}")
    result = json.loads(lines[-1])
    expected = Path(baseline if variant == "base" else Path(__file__).parent.parent).resolve()
    if not Path(result["gantrain"]).resolve().is_relative_to(expected):
        raise RuntimeError(f"{variant}/{case} imported gantrain from {result['gantrain']}, not from {expected}")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True, help="folder with the MNIST IDX files")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(NAMES)}; a is always run")
    p.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    p.add_argument("--write", help="append the table to this markdown file")
    p.add_argument("--baseline", help="another gantrain checkout (e.g. a git worktree of an older commit): variant 'base' trains with it")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    mnist = str(Path(a.mnist).resolve())
    if a.worker:
        family, batch, _ = CASES[a.case]
        ips = WORKERS[a.worker](family, batch, a.steps, mnist)
        import gantrain

        print(json.dumps({"ips": ips, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gantrain": str(Path(gantrain.__file__).parent.parent)}))
        return
    lines = [f"### Training throughput, {dt.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
             f"TensorFlow {__import__('tensorflow').__version__}, medians of {a.rounds} alternating rounds", "",
             "| case | variant | images/s (median) | all rounds | gantrain / this | peak RSS MB |", "|---|---|---|---|---|---|"]
    variants = ["a"] + [v for v in a.variants.split(",") if v != "a"]
    unknown = [v for v in variants if v not in NAMES]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(NAMES)}")
    if "base" in variants and not a.baseline:
        p.error("variant base needs --baseline PATH (a checkout of the gantrain to compare with)")
    for case in a.cases.split(","):
        results = {v: [] for v in variants}
        for r in range(a.rounds):
            for v in variants:
                results[v].append(measure(v, case, mnist, a.quick, a.baseline))
                print(f"round {r + 1} {case} {v}: {results[v][-1]['ips']:.1f} images/s", flush=True)
        med = {v: statistics.median(x["ips"] for x in results[v]) for v in variants}
        for v in variants:
            rounds = ", ".join(f"{x['ips']:.0f}" for x in results[v])
            peak = max(x["peak_rss_mb"] for x in results[v])
            lines.append(f"| {case} | {v}: {NAMES[v]} | {med[v]:.1f} | {rounds} | {med['a'] / med[v]:.2f}x | {peak:.0f} |")
        pipe = measure("pipeline", case, mnist, a.quick)["ips"]
        lines.append(f"| {case} | input pipeline alone | {pipe:.0f} | | {pipe / med['a']:.1f}x training's rate | |")
    emit("\n".join(lines) + "\n", a.write)


if __name__ == "__main__":
    main()
