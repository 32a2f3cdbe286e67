"""The generic GAN training step: explicit tapes, explicit variable lists, one optimizer per network.

The trainer sees only built objects (a GANModel, optimizers, a loss pair, iterators). The model
decides what the latent inputs are and which extra loss terms exist (class heads, Q heads); the
adversarial loss pair is applied to ``out["logits"]`` whatever the family. All state lives in
TensorFlow variables (weights, optimizer slots, the noise RNG), never in Python, so the compiled
step is replayable, checkpointable and ready to be wrapped in a tf.distribute strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gantrain.losses import LossPair
from gantrain.models.base import GANModel


class GANTrainer:
    def __init__(
        self,
        model: GANModel,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss: LossPair,
        batch_size: int,
        seed: int,
        d_steps: int = 1,
        jit_compile: bool = False,
    ):
        self.model = model
        self.generator = model.generator
        self.discriminator = model.discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.loss = loss
        self.batch_size, self.d_steps = batch_size, d_steps
        # Noise comes from a counter-based generator whose state is a variable: checkpointed with
        # the weights, so a resumed run draws exactly the noise the uninterrupted one would have.
        self.rng = tf.random.Generator.from_seed(seed)
        # Build optimizer slots now, not lazily inside the first traced call, so they exist before
        # a checkpoint is restored into them.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)
        self._d_update = tf.function(self._d_update_eager, jit_compile=jit_compile)
        self._g_update = tf.function(self._g_update_eager, jit_compile=jit_compile)
        self.train_step = tf.function(self._train_step_eager)

    def _d_update_eager(self, real_images, labels, latent, labeled=None):
        D, model = self.discriminator, self.model
        with tf.GradientTape() as tape:
            fake_images = model.generate(latent, training=True)
            real_out = model.discriminate(real_images, labels, training=True)
            fake_out = model.discriminate(fake_images, latent.get("labels"), training=True)
            adversarial = self.loss.d_loss(real_out["logits"], fake_out["logits"])
            extra = model.d_extra_losses(real_out, fake_out, labels, latent, labeled)
            d_loss = tf.add_n([adversarial, *extra.values()])
        grads = tape.gradient(d_loss, D.trainable_variables)
        _check_gradients(grads, D.trainable_variables, "discriminator")
        self.d_optimizer.apply(grads, D.trainable_variables)
        return {
            "d_loss": d_loss,
            **({"d_adv_loss": adversarial} if extra else {}),
            **{f"d_{k}": v for k, v in extra.items()},
            # Mean D(x) and D(G(z)) as probabilities: 0.5/0.5 is the equilibrium.
            "d_real": tf.reduce_mean(tf.sigmoid(tf.cast(real_out["logits"], tf.float32))),
            "d_fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake_out["logits"], tf.float32))),
        }

    def _g_update_eager(self, latent):
        G, model = self.generator, self.model
        with tf.GradientTape() as tape:
            fake_out = model.discriminate(model.generate(latent, training=True), latent.get("labels"), training=True)
            adversarial = self.loss.g_loss(fake_out["logits"])
            extra = model.g_extra_losses(fake_out, latent)
            g_loss = tf.add_n([adversarial, *extra.values()])
        grads = tape.gradient(g_loss, G.trainable_variables)
        _check_gradients(grads, G.trainable_variables, "generator")
        self.g_optimizer.apply(grads, G.trainable_variables)
        return {"g_loss": g_loss, **({"g_adv_loss": adversarial} if extra else {}), **{f"g_{k}": v for k, v in extra.items()}}

    def _train_step_eager(self, iterator, labeled_iterator=None):
        """One generator update preceded by ``d_steps`` discriminator updates on fresh real batches."""
        for _ in range(self.d_steps):  # unrolled at trace time: d_steps is a small constant
            real_images, labels = next(iterator)
            labeled = next(labeled_iterator) if labeled_iterator is not None else None
            latent = self.model.sample_latent(self.rng, self.batch_size)
            metrics = self._d_update(real_images, labels, latent, labeled)
        metrics.update(self._g_update(self.model.sample_latent(self.rng, self.batch_size)))
        return metrics


def _check_gradients(grads, variables, network: str) -> None:
    # A None gradient means a variable is off the loss path (MODELS.md K5): fail at trace time with
    # the variable names instead of letting Keras warn and silently skip it.
    missing = [v.path for g, v in zip(grads, variables) if g is None]
    if missing:
        raise ValueError(f"{network}: no gradient for {len(missing)} variable(s), they are not on the loss path: {missing[:5]}")
