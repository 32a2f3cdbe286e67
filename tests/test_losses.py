import math

import numpy as np
import pytest
import tensorflow as tf

from gantrain.losses import bce_d_loss, get_loss, minimax_g_loss, non_saturating_g_loss


def sp(x):  # softplus, by hand
    return math.log1p(math.exp(x))


# (real_logits, fake_logits, expected d_loss, expected non-saturating g_loss, expected minimax g_loss)
CASES = [
    ([0.0], [0.0], 2 * math.log(2), math.log(2), -math.log(2)),
    ([2.0, -1.0], [0.5, -3.0], (sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2, (sp(-0.5) + sp(3)) / 2, -(sp(0.5) + sp(-3)) / 2),
    ([10.0], [-10.0], sp(-10) + sp(-10), sp(10), -sp(-10)),
]


@pytest.mark.parametrize("real, fake, d, g_ns, g_mm", CASES)
def test_loss_values_by_hand(real, fake, d, g_ns, g_mm):
    real, fake = tf.constant(real), tf.constant(fake)
    assert float(bce_d_loss(real, fake)) == pytest.approx(d, rel=1e-6)
    assert float(non_saturating_g_loss(fake)) == pytest.approx(g_ns, rel=1e-6)
    assert float(minimax_g_loss(fake)) == pytest.approx(g_mm, rel=1e-6)


def test_losses_stay_finite_for_extreme_logits():
    big = tf.constant([1e4, -1e4])
    for value in (bce_d_loss(big, big), non_saturating_g_loss(big), minimax_g_loss(big)):
        assert np.isfinite(float(value))


def test_registered_pairs():
    pair = get_loss("non_saturating")
    assert pair.g_loss is non_saturating_g_loss and pair.d_loss is bce_d_loss
    assert get_loss("minimax").g_loss is minimax_g_loss
