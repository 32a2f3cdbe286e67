"""The generic GAN training step: explicit tapes, explicit variable lists, one optimizer per network.

The trainer sees only built objects (networks, optimizers, a loss pair, an iterator). All its
state lives in TensorFlow variables (weights, optimizer slots, the noise RNG), never in Python,
so the compiled step is replayable, checkpointable and ready to be wrapped in a tf.distribute
strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gantrain.losses import LossPair
from gantrain.models.base import Networks


class GANTrainer:
    def __init__(
        self,
        networks: Networks,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss: LossPair,
        batch_size: int,
        seed: int,
        d_steps: int = 1,
        jit_compile: bool = False,
    ):
        self.generator = networks.generator
        self.discriminator = networks.discriminator
        self.latent_dim = networks.latent_dim
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

    def noise(self, batch: int) -> tf.Tensor:
        return self.rng.normal([batch, self.latent_dim])

    def _d_update_eager(self, real_images, labels, z):
        D, G = self.discriminator, self.generator
        with tf.GradientTape() as tape:
            fake_images = G(z, training=True)
            real_logits = D(real_images, training=True)
            fake_logits = D(fake_images, training=True)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
        grads = tape.gradient(d_loss, D.trainable_variables)
        _check_gradients(grads, D.trainable_variables, "discriminator")
        self.d_optimizer.apply(grads, D.trainable_variables)
        return {
            "d_loss": d_loss,
            # Mean D(x) and D(G(z)) as probabilities: 0.5/0.5 is the equilibrium.
            "d_real": tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            "d_fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
        }

    def _g_update_eager(self, z):
        D, G = self.discriminator, self.generator
        with tf.GradientTape() as tape:
            fake_logits = D(G(z, training=True), training=True)
            g_loss = self.loss.g_loss(fake_logits)
        grads = tape.gradient(g_loss, G.trainable_variables)
        _check_gradients(grads, G.trainable_variables, "generator")
        self.g_optimizer.apply(grads, G.trainable_variables)
        return {"g_loss": g_loss}

    def _train_step_eager(self, iterator):
        """One generator update preceded by ``d_steps`` discriminator updates on fresh real batches."""
        for _ in range(self.d_steps):  # unrolled at trace time: d_steps is a small constant
            real_images, labels = next(iterator)
            metrics = self._d_update(real_images, labels, self.noise(self.batch_size))
        metrics.update(self._g_update(self.noise(self.batch_size)))
        return metrics


def _check_gradients(grads, variables, network: str) -> None:
    # A None gradient means a variable is off the loss path (MODELS.md K5): fail at trace time with
    # the variable names instead of letting Keras warn and silently skip it.
    missing = [v.path for g, v in zip(grads, variables) if g is None]
    if missing:
        raise ValueError(f"{network}: no gradient for {len(missing)} variable(s), they are not on the loss path: {missing[:5]}")
