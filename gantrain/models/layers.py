"""Layers and normalisation choices shared by the families.

``norm`` options: ``batch`` (BatchNormalization), ``layer`` (per-sample LayerNormalization),
``instance`` (per-sample, per-channel: GroupNormalization with one group per channel), ``spectral``
(spectral normalisation of the preceding conv/dense kernel, Miyato et al.; a wrapper, not a layer
after it) and ``none``.
"""

from __future__ import annotations

import contextlib
import contextvars

import keras
from keras import layers, ops

from gantrain.schema import Field

D_NORMS = ("none", "batch", "layer", "instance", "spectral")
G_NORMS = ("batch", "instance", "none")

MINIBATCH_SCHEMA = {
    "minibatch_kernels": Field(0, "minibatch discrimination in D: number of kernels B (0 = off; 100 in Salimans et al.)", "int", min=0, max=1024),
    "minibatch_kernel_dim": Field(5, "minibatch discrimination: dimension C of each kernel", "int", min=1, max=256),
}


# A context variable, not a family parameter: whether batch norm is synchronized depends on the
# strategy a model is built under, which the families need not know about.
_SYNCHRONIZED_BN = contextvars.ContextVar("synchronized_bn", default=False)


@contextlib.contextmanager
def synchronized_batch_norm(on: bool):
    """Within this block batch norm layers are built to use global-batch statistics across replicas."""
    token = _SYNCHRONIZED_BN.set(on)
    try:
        yield
    finally:
        _SYNCHRONIZED_BN.reset(token)


def batch_norm(momentum: float) -> layers.Layer:
    return layers.BatchNormalization(momentum=momentum, synchronized=_SYNCHRONIZED_BN.get())


def maybe_spectral(layer: layers.Layer, norm: str) -> layers.Layer:
    return layers.SpectralNormalization(layer) if norm == "spectral" else layer


def normalize(x, norm: str, momentum: float = 0.99):
    """Apply the normalisation named by ``norm`` after a layer (spectral is handled by maybe_spectral)."""
    if norm == "batch":
        return batch_norm(momentum)(x)
    if norm == "layer":
        return layers.LayerNormalization()(x)
    if norm == "instance":
        return layers.GroupNormalization(groups=-1)(x)
    return x


@keras.saving.register_keras_serializable(package="gantrain")
class MinibatchDiscrimination(layers.Layer):
    """Salimans et al. 2016: lets D see how similar a sample is to the rest of its batch.

    Features f (batch, A) times a tensor T (A, B, C) give M (batch, B, C); for each kernel b,
    ``c_b(i, j) = exp(-||M_i,b - M_j,b||_1)``, ``o(i)_b = sum_j c_b(i, j)`` (j != i, so a batch of one
    adds zeros); the output is ``[f, o]`` of shape (batch, A + B). Mode collapse makes o large.
    """

    def __init__(self, num_kernels: int, kernel_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim

    def build(self, input_shape):
        self.T = self.add_weight(shape=(input_shape[-1], self.num_kernels * self.kernel_dim), initializer="glorot_uniform", name="T")

    def call(self, features):
        m = ops.reshape(ops.matmul(features, self.T), (-1, self.num_kernels, self.kernel_dim))
        diffs = ops.sum(ops.abs(ops.expand_dims(m, 0) - ops.expand_dims(m, 1)), axis=-1)  # (batch, batch, B)
        o = ops.sum(ops.exp(-diffs), axis=1) - 1.0  # drop j == i, whose distance is 0 (exp = 1)
        return ops.concatenate([features, o], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_kernels)

    def get_config(self):
        return {**super().get_config(), "num_kernels": self.num_kernels, "kernel_dim": self.kernel_dim}


def minibatch(x, params: dict):
    """Insert minibatch discrimination before D's head when ``minibatch_kernels`` > 0."""
    if params.get("minibatch_kernels", 0) > 0:
        x = MinibatchDiscrimination(params["minibatch_kernels"], params["minibatch_kernel_dim"])(x)
    return x
