"""Adversarial losses as pure functions on logits, in documented (d_loss, g_loss) pairs.

Every function takes raw discriminator outputs (logits, before any sigmoid) so the maths stays
numerically stable: ``softplus(x) = -log(sigmoid(-x))`` never takes the log of a rounded 0.
Shapes: ``real_logits`` and ``fake_logits`` are ``(batch, ...)``; each loss is a scalar mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import tensorflow as tf

from gantrain.registry import LOSSES


@dataclass(frozen=True)
class LossPair:
    d_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    g_loss: Callable[[tf.Tensor], tf.Tensor]


def _mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(x, tf.float32))


def bce_d_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Discriminator binary cross-entropy, real -> 1 and fake -> 0.

    Args:
      real_logits: D's logits on real images.
      fake_logits: D's logits on generated images.
    Returns:
      ``mean(-log D(x)) + mean(-log(1 - D(G(z))))``, the sum of the two halves (as the TensorFlow
      DCGAN tutorial does), so a D at chance scores ``2 log 2 = 1.386``.
    """
    return _mean(tf.nn.softplus(-tf.cast(real_logits, tf.float32))) + _mean(tf.nn.softplus(tf.cast(fake_logits, tf.float32)))


def non_saturating_g_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Generator loss ``mean(-log D(G(z)))`` (Goodfellow et al.'s practical variant)."""
    return _mean(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def minimax_g_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Generator loss ``mean(log(1 - D(G(z))))``, the original minimax objective.

    It saturates when D confidently rejects fakes early in training (tiny gradients), which is
    why non-saturating is the default.
    """
    return -_mean(tf.nn.softplus(tf.cast(fake_logits, tf.float32)))


LOSSES.register("non_saturating", description="BCE for D, -log D(G(z)) for G (default)")(LossPair(bce_d_loss, non_saturating_g_loss))
LOSSES.register("minimax", description="BCE for D, log(1 - D(G(z))) for G (original GAN objective)")(LossPair(bce_d_loss, minimax_g_loss))


def get_loss(name: str) -> LossPair:
    return LOSSES.get(name)


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
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=tf.cast(class_logits, tf.float32))
    if mask is None:
        return tf.reduce_mean(ce)
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def gaussian_code_loss(codes: tf.Tensor, predicted_mean: tf.Tensor) -> tf.Tensor:
    """InfoGAN's continuous-code term with a fixed-variance Gaussian Q: mean squared error per code."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.cast(codes, tf.float32) - tf.cast(predicted_mean, tf.float32)), axis=-1))
