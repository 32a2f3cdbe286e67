"""Layers and normalisation choices shared by the families.

``norm`` options, each applied after a conv or dense layer unless said otherwise:

- ``batch``: BatchNormalization (statistics over the batch).
- ``layer``: LayerNormalization over the last axis: per pixel, over channels.
- ``layer_hwc``: per sample over height, width and channels, with one scale and offset per channel,
  as WGAN-GP's critic (Gulrajani et al. 2017, the official tflib ``Layernorm`` over axes [1, 2, 3]).
  On dense activations it is the same as ``layer``.
- ``instance``: per sample and per channel (GroupNormalization with one group per channel).
- ``spectral``: spectral normalisation (Miyato et al. 2018) of the layer's own kernel: a wrapper,
  :class:`SpectralNormalization`, not a layer after it. Families apply it through
  :func:`maybe_spectral` to every weight layer of D (trunk, heads, label embeddings).
- ``none``.
"""

from __future__ import annotations

import contextlib
import contextvars

import keras
from keras import layers, ops

from gantrain.schema import Field

D_NORMS = ("none", "batch", "layer", "layer_hwc", "instance", "spectral")
G_NORMS = ("batch", "instance", "none")
# The two layer norms, for the families' d_norm help.
LAYER_NORMS_HELP = "layer: per pixel, over channels; layer_hwc: per sample over height, width and channels, as WGAN-GP's critic"

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


_EPSILON = 1e-12  # as torch.nn.utils.spectral_norm: only guards a zero vector against 0 / 0


def _unit(x):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), _EPSILON)


def power_iteration(w_mat, u):
    """One step of the power method for the largest singular value (Miyato et al. 2018, Algorithm 1).

    Args:
        w_mat: (m, n) float32 matrix, a kernel reshaped to (-1, out).
        u: (n,) current estimate of the top right singular vector of ``w_mat`` (any length).

    Returns:
        ``(u_new, v)``: ``v = unit(w_mat u)`` (m,) and ``u_new = unit(w_mat^T v)`` (n,). Where
        ``w_mat u`` vanishes (a zero kernel), ``u`` is returned unchanged rather than collapsing to
        a zero vector that no later step could leave.
    """
    v = _unit(ops.matmul(w_mat, u))
    back = ops.matmul(ops.transpose(w_mat), v)
    u_new = ops.where(ops.sum(ops.square(back)) > 0, _unit(back), u)
    return u_new, v


def spectral_sigma(w_mat, u, v):
    """sigma(W) ~= v^T W u, differentiable in W only, as the paper and its reference code do.

    Args:
        w_mat: (m, n) matrix, a kernel reshaped to (-1, out).
        u: (n,) unit vector from :func:`power_iteration` (or the stored one at inference).
        v: (m,) unit vector, ``unit(w_mat u_previous)``.

    Returns:
        A scalar, at least 1e-12 so a zero kernel gives W / sigma = 0 instead of NaN. u and v are
        constants (stop_gradient): d sigma / dW = v u^T, the gradient of the paper's equation (12).
    """
    u, v = ops.stop_gradient(u), ops.stop_gradient(v)
    return ops.maximum(ops.sum(v * ops.matmul(w_mat, u)), _EPSILON)


def _kernel_variable(layer: layers.Layer):
    for name in ("kernel", "embeddings"):
        variable = getattr(layer, name, None)
        if isinstance(variable, keras.Variable):
            return variable
    raise ValueError(f"SpectralNormalization needs a layer whose kernel (or embeddings) is a plain variable; "
                     f"{type(layer).__name__} {layer.name!r} has none")


@keras.saving.register_keras_serializable(package="gantrain")
class SpectralNormalization(layers.Wrapper):
    """Spectral normalisation (Miyato et al. 2018): the wrapped layer computes with W / sigma(W).

    The trainable variable stays W; sigma(W), the largest singular value of the kernel reshaped to
    (-1, out) (the reference code's reshape, up to a transpose), is estimated by power iteration
    with a persistent vector ``u`` of size ``out``: a non-trainable variable, so checkpoints carry
    it. Works for any layer with a ``kernel`` or ``embeddings`` variable (Dense, Conv*, Embedding).

    - ``training=True``: ``u`` takes one power-iteration step and is stored, then
      ``sigma = v^T W u`` (:func:`spectral_sigma`; u, v held constant, so the gradient reaches W
      through sigma as in the paper and the official Chainer/PyTorch code).
    - ``training=False`` (or None): the stored ``u``, unchanged: ``v = unit(W u)``, ``sigma = |W u|``.

    Every training-mode call advances ``u``, the generator's update included (the trainer calls D
    with training=True there), which is what ``torch.nn.utils.spectral_norm`` does. That changes
    only the estimate: W itself is never written, so a generator step leaves D's trainable
    variables untouched.

    Precision and devices: the wrapper computes in the variable dtype and does not autocast, so
    under mixed precision sigma and ``u`` are computed in float32 from the float32 variable; the
    wrapped layer casts W / sigma to its compute dtype as it would cast W. ``u`` is assigned in replica context under a
    tf.distribute strategy with aggregation ``only_first_replica``: every replica holds the first
    replica's value (all compute the same one: u depends on W and u only, never on the batch).
    Its initial value is drawn with ``seed``, or, when None, with a seed from keras's seed
    machinery, so ``keras.utils.set_random_seed`` makes it reproducible.
    """

    def __init__(self, layer: layers.Layer, seed: int | None = None, **kwargs):
        # The wrapper itself computes in the variable dtype (float32 under mixed precision) and
        # does not autocast, so it reads W and u unrounded; the wrapped layer keeps its own policy.
        kwargs.update(autocast=False, dtype=layer.dtype_policy.variable_dtype)
        super().__init__(layer, **kwargs)
        self.seed = seed

    def build(self, input_shape=None):
        super().build(input_shape)
        kernel = _kernel_variable(self.layer)
        self.u = self.add_weight(
            shape=(kernel.shape[-1],),
            initializer=keras.initializers.RandomNormal(seed=self.seed),
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
            name="u",
        )

    def call(self, inputs, training=None):
        kernel = _kernel_variable(self.layer)
        w_mat = ops.reshape(ops.convert_to_tensor(kernel), (-1, kernel.shape[-1]))
        if training:
            u, v = power_iteration(w_mat, self.u.value)
            self.u.assign(u)
        else:
            u = _unit(self.u.value)
            v = _unit(ops.matmul(w_mat, u))
        normalized = ops.reshape(w_mat / spectral_sigma(w_mat, u, v), kernel.shape)
        # The wrapped layer reads its kernel through a StatelessScope mapping, so it computes with
        # W / sigma while W stays the variable the optimizer updates. Its other variables are
        # mapped to their current values so an enclosing stateless scope still applies to them.
        mapping = [(kernel, normalized)] + [(w, w.value) for w in self.layer.weights if w is not kernel]
        with keras.StatelessScope(state_mapping=mapping, initialize_variables=False):
            return self.layer(inputs)

    def compute_output_spec(self, inputs, training=None):
        return self.layer.compute_output_spec(inputs)  # the wrapped layer's output, in its compute dtype

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def maybe_spectral(layer: layers.Layer, norm: str) -> layers.Layer:
    """``layer`` wrapped in :class:`SpectralNormalization` when ``norm`` is ``spectral``, else ``layer``.

    The one entry point the families use for every weight layer of D.
    """
    return SpectralNormalization(layer) if norm == "spectral" else layer


def bias_before(norm: str) -> bool:
    """Whether the layer in front of ``normalize(x, norm)`` should add a bias.

    Batch and instance norm subtract each channel's own mean, so a per-channel bias just before
    them cancels exactly: its true gradient is zero and its computed one rounding noise, which
    Adam, dividing by the gradient's own size, turns into full-size steps (three ACGAN steps came
    out 3e-5 apart on two CPUs' kernels). Layer norm keeps part of a per-channel bias.
    """
    return norm not in ("batch", "instance")


def normalize(x, norm: str, momentum: float = 0.99):
    """Apply the normalisation named by ``norm`` after a layer (spectral is handled by maybe_spectral)."""
    if norm == "batch":
        return batch_norm(momentum)(x)
    if norm == "layer":
        return layers.LayerNormalization()(x)
    if norm == "layer_hwc":
        # One group holding every channel: moments over all of (H, W, C) per sample, and a scale and
        # offset per channel, exactly tflib's Layernorm in WGAN-GP's critic (its epsilon, 1e-5).
        # LayerNormalization(axis=[1, 2, 3]) would take the same moments but learn a scale per
        # (h, w, c) position, a parameter count that grows with the image.
        return layers.GroupNormalization(groups=1, epsilon=1e-5)(x)
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
    """Insert minibatch discrimination before D's head when ``minibatch_kernels`` > 0.

    Its T tensor is left out of spectral normalisation: T is not a linear map on D's path whose
    largest singular value bounds D's slope (its products enter L1 distances between samples and an
    exponential), so W / sigma(W) would not make D Lipschitz; Miyato et al. normalise conv and
    linear layers only.
    """
    if params.get("minibatch_kernels", 0) > 0:
        x = MinibatchDiscrimination(params["minibatch_kernels"], params["minibatch_kernel_dim"])(x)
    return x
