"""Where the time of one training step goes: the full gantrain step against its parts.

Builds a family's networks (default: the MLP GAN at batch 32) and times, in one process and
alternating, each of:
  step        gantrain's compiled step (k steps per call, as fit runs it)
  fwd+bwd     G(z), D(x), D(G(z)), both losses and both gradients; no optimizer
  apply       the two Adam updates alone, with fixed gradients
  step/xla    the full step with train.jit_compile: true
  fwd+bwd/xla, apply/xla
Each is reported in microseconds per step (median of --rounds timed windows of --steps steps).

    python benchmarks/profile_step.py --mnist ../shared/data/mnist
    python benchmarks/profile_step.py --mnist ../shared/data/mnist --family dcgan --batch 256 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", required=True)
    p.add_argument("--family", default="gan")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=200, help="steps per timed window")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()

    import tensorflow as tf

    from gantrain.config import validate
    from gantrain.data import load_dataset, make_pipeline
    from gantrain.losses import get_loss
    from gantrain.run import build_model, build_optimizers
    from gantrain.trainer import GANTrainer, TrainOptions

    variants = {}
    for jit in (False, True):
        cfg = validate({"model": {"family": a.family}, "data": {"loader": "mnist", "root": a.mnist, "batch_size": a.batch},
                        "train": {"jit_compile": jit}})
        source = load_dataset(cfg["data"])
        model = build_model(cfg, source.image_shape, source.num_classes)
        optimizers = build_optimizers(cfg, model.groups)
        trainer = GANTrainer(model, optimizers["generator"], optimizers["discriminator"], get_loss(cfg["loss"]["name"]), a.batch, 0, options=TrainOptions.from_config(cfg))
        it = iter(make_pipeline(source, a.batch, 0))
        G, D, loss = model.generator, model.discriminator, trainer.loss
        images = next(it)["image"]

        def grads():
            z = tf.random.normal([a.batch, model.latent_dim])
            with tf.GradientTape() as gt, tf.GradientTape() as dt:
                real, fake = D(images, training=True), D(G(z, training=True), training=True)
                d_loss, g_loss = loss.d_loss(real, fake), loss.g_loss(fake)
            return dt.gradient(d_loss, D.trainable_variables), gt.gradient(g_loss, G.trainable_variables)

        fixed_d, fixed_g = grads()

        def apply():
            trainer.d_optimizer.apply(fixed_d, D.trainable_variables)
            trainer.g_optimizer.apply(fixed_g, G.trainable_variables)

        def loop(fn):
            @tf.function(jit_compile=False)
            def run(k):
                total = tf.constant(0.0)
                for _ in tf.range(k):
                    out = fn()
                    total += out if out is not None else 0.0
                return total
            return run

        def fwd_bwd():
            # Returned, so the graph cannot prune the gradients as unused work.
            return tf.add_n([tf.reduce_sum(g) for g in sum(map(list, grads()), [])])

        inner = {"fwd+bwd": tf.function(fwd_bwd, jit_compile=jit), "apply": tf.function(apply, jit_compile=jit)}
        tag = "/xla" if jit else ""
        variants["step" + tag] = lambda k, trainer=trainer, it=it: trainer.train_steps(it, k)
        for name, fn in inner.items():
            variants[name + tag] = loop(fn)

    times = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up and tracing
        fn(tf.constant(2))
    for _ in range(a.rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            out = fn(tf.constant(a.steps))
            if isinstance(out, dict):
                float(next(iter(out.values())))
            times[name].append((time.perf_counter() - t) / a.steps * 1e6)
    print(f"{a.family}, batch {a.batch}: microseconds per step, median of {a.rounds} windows of {a.steps} steps")
    for name, values in times.items():
        print(f"  {name:12s} {statistics.median(values):9.0f}   ({', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
