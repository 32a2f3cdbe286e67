"""Adversarial losses and penalties as pure functions on logits, in documented (d_loss, g_loss) pairs.

Every function takes raw discriminator outputs (logits / critic values, before any sigmoid), so
the maths stays numerically stable: ``softplus(x) = -log(sigmoid(-x))`` never takes the log of a
rounded 0. Shapes: ``real_logits`` and ``fake_logits`` are ``(batch, ...)``; losses are scalar
means. Pairs that use targets (BCE and least squares) take ``real_target`` / ``fake_target``,
scalars or per-example tensors, which is how label smoothing and noisy labels plug in.

| name | D loss | G loss |
|---|---|---|
| non_saturating | BCE(real, 1) + BCE(fake, 0) | BCE(fake, 1) = -log D(G(z)) |
| minimax | BCE(real, 1) + BCE(fake, 0) | log(1 - D(G(z))) |
| least_squares | (D(x) - b)^2/2 + (D(G(z)) - a)^2/2 | (D(G(z)) - c)^2/2, a=0, b=c=1 (Mao et al.) |
| wasserstein | mean D(G(z)) - mean D(x) | -mean D(G(z)) |
| hinge | mean relu(1 - D(x)) + mean relu(1 + D(G(z))) | -mean D(G(z)) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from gantrain.registry import LOSSES, PENALTIES


@dataclass(frozen=True)
class LossPair:
    d_loss: Callable[..., tf.Tensor]
    g_loss: Callable[..., tf.Tensor]
    uses_targets: bool = False  # accepts real_target / fake_target (label smoothing, noisy labels)
    bounded_output: bool = True  # D's output is read as a probability (a sigmoid), so clipping it makes no sense


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def _mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(_f32(x))


def _bce(logits, target) -> tf.Tensor:
    """Elementwise BCE of ``sigmoid(logits)`` against ``target`` in [0, 1], stable for any logit."""
    logits = _f32(logits)
    return tf.nn.relu(logits) - logits * target + tf.math.log1p(tf.exp(-tf.abs(logits)))


def _target(target, logits):
    """Broadcast a scalar or per-example (batch,) target against (batch, ...) logits."""
    target = _f32(target)
    if target.shape.rank == 1:
        target = tf.reshape(target, [-1] + [1] * (logits.shape.rank - 1))
    return target


def bce_d_loss(real_logits, fake_logits, real_target=1.0, fake_target=0.0) -> tf.Tensor:
    """Discriminator binary cross-entropy, real -> ``real_target`` (1) and fake -> ``fake_target`` (0).

    Args:
      real_logits: D's logits on real images.
      fake_logits: D's logits on generated images.
      real_target, fake_target: targets, scalars or per-example (batch,) tensors.
    Returns:
      ``mean(BCE(real)) + mean(BCE(fake))``, the sum of the two halves (as the TensorFlow DCGAN
      tutorial does), so a D at chance with hard targets scores ``2 log 2 = 1.386``.
    """
    return _mean(_bce(real_logits, _target(real_target, real_logits))) + _mean(_bce(fake_logits, _target(fake_target, fake_logits)))


def non_saturating_g_loss(fake_logits, real_target=1.0) -> tf.Tensor:
    """Generator loss ``mean(BCE(fake, real_target))`` = ``mean(-log D(G(z)))`` with the hard target."""
    return _mean(_bce(fake_logits, _target(real_target, fake_logits)))


def minimax_g_loss(fake_logits, real_target=1.0) -> tf.Tensor:
    """Generator loss ``mean(log(1 - D(G(z))))``, the original minimax objective.

    It saturates when D confidently rejects fakes early in training (tiny gradients), which is
    why non-saturating is the default.
    """
    return -_mean(tf.nn.softplus(_f32(fake_logits)))


def least_squares_d_loss(real_logits, fake_logits, real_target=1.0, fake_target=0.0) -> tf.Tensor:
    """LSGAN discriminator: ``mean((D(x) - b)^2)/2 + mean((D(G(z)) - a)^2)/2`` on the raw output."""
    return 0.5 * _mean(tf.square(_f32(real_logits) - _target(real_target, real_logits))) + 0.5 * _mean(
        tf.square(_f32(fake_logits) - _target(fake_target, fake_logits))
    )


def least_squares_g_loss(fake_logits, real_target=1.0) -> tf.Tensor:
    """LSGAN generator: ``mean((D(G(z)) - c)^2)/2`` with c = the real target."""
    return 0.5 * _mean(tf.square(_f32(fake_logits) - _target(real_target, fake_logits)))


def wasserstein_d_loss(real_logits, fake_logits) -> tf.Tensor:
    """WGAN critic loss ``mean D(G(z)) - mean D(x)`` (= Keras-GAN's real -1 / fake +1 targets).

    The critic has no sigmoid; it needs a Lipschitz constraint (weight clipping or a gradient penalty).
    """
    return _mean(fake_logits) - _mean(real_logits)


def wasserstein_g_loss(fake_logits) -> tf.Tensor:
    """WGAN generator loss ``-mean D(G(z))``."""
    return -_mean(fake_logits)


def hinge_d_loss(real_logits, fake_logits) -> tf.Tensor:
    """Hinge discriminator loss ``mean relu(1 - D(x)) + mean relu(1 + D(G(z)))`` (Miyato et al.)."""
    return _mean(tf.nn.relu(1.0 - _f32(real_logits))) + _mean(tf.nn.relu(1.0 + _f32(fake_logits)))


def hinge_g_loss(fake_logits) -> tf.Tensor:
    """Hinge generator loss ``-mean D(G(z))``."""
    return -_mean(fake_logits)


LOSSES.register("non_saturating", description="BCE for D, -log D(G(z)) for G (default)")(LossPair(bce_d_loss, non_saturating_g_loss, uses_targets=True))
LOSSES.register("minimax", description="BCE for D, log(1 - D(G(z))) for G (original GAN objective)")(LossPair(bce_d_loss, minimax_g_loss, uses_targets=True))
LOSSES.register("least_squares", description="LSGAN: squared error to targets 1 (real) / 0 (fake) on D's raw output")(
    LossPair(least_squares_d_loss, least_squares_g_loss, uses_targets=True, bounded_output=False)
)
LOSSES.register("wasserstein", description="WGAN critic: mean D(fake) - mean D(real); needs clip_value or gradient_penalty")(
    LossPair(wasserstein_d_loss, wasserstein_g_loss, bounded_output=False)
)
LOSSES.register("hinge", description="hinge loss (SNGAN, BigGAN): relu(1 - D(x)) + relu(1 + D(G(z)))")(LossPair(hinge_d_loss, hinge_g_loss, bounded_output=False))


def get_loss(name: str) -> LossPair:
    return LOSSES.get(name)


# ---------------------------------------------------------------------------------------------
# Penalties: functions of the critic, computed inside D's tape.
# ---------------------------------------------------------------------------------------------
def gradient_penalty(critic: Callable[[tf.Tensor], tf.Tensor], real_images, fake_images, alpha) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al.): ``mean((||grad_x D(x_hat)||_2 - 1)^2)``, x_hat between real and fake.

    Args:
      critic: images -> critic values (batch, 1).
      real_images, fake_images: (batch, H, W, C).
      alpha: (batch,) interpolation weights drawn uniformly in [0, 1], one per sample.
    Returns:
      The mean penalty. A tiny epsilon inside the square root keeps the gradient finite where the
      critic's gradient is exactly zero.
    """
    alpha = tf.reshape(_f32(alpha), [-1] + [1] * (real_images.shape.rank - 1))
    x_hat = alpha * _f32(real_images) + (1.0 - alpha) * _f32(fake_images)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    grads = tf.reshape(tape.gradient(scores, x_hat), [tf.shape(x_hat)[0], -1])
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


def r1_penalty(critic: Callable[[tf.Tensor], tf.Tensor], real_images) -> tf.Tensor:
    """R1 (Mescheder et al.): ``mean(||grad_x D(x)||^2) / 2`` on real images only."""
    x = _f32(real_images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = critic(x)
    grads = tf.reshape(tape.gradient(scores, x), [tf.shape(x)[0], -1])
    return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=1))


@dataclass(frozen=True)
class Penalty:
    """A regulariser of D the trainer adds to D's loss: ``compute(critic, real, fake, uniform)``.

    ``critic`` maps images to D's logits; ``uniform(images)`` draws one U(0, 1) number per sample
    (from the trainer's stateless, replica-aware stream). ``per_sample``: the penalty constrains
    D's gradient at each sample, so D must treat the samples of a batch independently (the config
    refuses batch norm, minibatch discrimination and dropout in D with it).
    """

    compute: Callable
    per_sample: bool = True


PENALTIES.register("gradient_penalty", description="WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on real/fake interpolates")(
    Penalty(lambda critic, real, fake, uniform: gradient_penalty(critic, real, fake, uniform(real))))
PENALTIES.register("r1", description="R1 (Mescheder et al. 2018): ||grad D(x)||^2 / 2 on real images")(
    Penalty(lambda critic, real, fake, uniform: r1_penalty(critic, real)))


def feature_matching_loss(real_features, fake_features) -> tf.Tensor:
    """Salimans et al.: ``||mean f(x) - mean f(G(z))||_2^2`` over D's features at a chosen layer."""
    real_mean = tf.reduce_mean(tf.reshape(_f32(real_features), [tf.shape(real_features)[0], -1]), axis=0)
    fake_mean = tf.reduce_mean(tf.reshape(_f32(fake_features), [tf.shape(fake_features)[0], -1]), axis=0)
    return tf.reduce_sum(tf.square(real_mean - fake_mean))


# ---------------------------------------------------------------------------------------------
# Auxiliary terms used by families with extra heads (ACGAN's class head, SGAN, InfoGAN's Q head).
# ---------------------------------------------------------------------------------------------
def class_cross_entropy(labels: tf.Tensor, class_logits: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Mean sparse categorical cross-entropy ``-log softmax(class_logits)[label]``.

    Args:
      labels: int (batch,) class indices.
      class_logits: (batch, num_classes) logits.
      mask: optional bool (batch,): only these rows count (e.g. labelled examples); an all-false
        mask gives 0, not NaN.
    """
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=_f32(class_logits))
    if mask is None:
        return tf.reduce_mean(ce)
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def gaussian_code_loss(codes: tf.Tensor, predicted_mean: tf.Tensor) -> tf.Tensor:
    """InfoGAN's continuous-code term with a fixed-variance Gaussian Q: mean squared error per code."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(_f32(codes) - _f32(predicted_mean)), axis=-1))
