"""Network pieces shared by several families, so each family file only says how it differs.

- ``mlp_generator`` / ``mlp_discriminator``: the MLP GAN's stacks (Keras-GAN's gan.py).
- ``upsampling_generator`` / ``conv_trunk``: the ACGAN convolutional G and D body (Keras-GAN's acgan.py),
  which CDCGAN, ACGAN, SGAN and InfoGAN share. The generator makes H x W from an (H/4, W/4)
  base with two UpSampling2D steps, so the image sides must be multiples of 4.
- ``chen_generator`` / ``chen_trunk``: Chen et al.'s MNIST networks with fully connected layers
  (InfoGAN appendix C.1), ``model.arch: chen`` of InfoGAN and DCGAN; sides multiples of 4 too.
"""

from __future__ import annotations

import math

from keras import layers

from gantrain.models.base import Family
from gantrain.models.layers import D_NORMS, G_NORMS, LAYER_NORMS_HELP, MINIBATCH_SCHEMA, batch_norm, bias_before, maybe_spectral, minibatch, normalize
from gantrain.schema import Field

CONV_SCHEMA = {
    "g_base_channels": Field(32, "channels of the generator's first (H/4 x W/4) feature map", "int", min=1),
    "g_widths": Field([64, 128, 64], "generator conv widths: before the first upsampling, after it, after the second", "int_list", min=1),
    "d_widths": Field([32, 64, 128], "discriminator stride-2 conv widths, then global average pooling", "int_list", min=1),
    "bn_momentum": Field(0.8, "BatchNormalization momentum (0.8 as in the Keras-GAN/ACGAN reference)", "float", min=0, max=1),
    "leaky_slope": Field(0.2, "LeakyReLU negative slope in D", "float", min=0, max=1),
    "d_norm": Field("batch", "normalisation in D: batch (the reference), layer, layer_hwc or instance after each trunk conv, spectral "
                     f"(every weight layer of D: convs, heads and any label embedding) or none. {LAYER_NORMS_HELP}", "str", choices=D_NORMS),
    "g_norm": Field("batch", "normalisation in G: batch (the reference), instance or none", "str", choices=G_NORMS),
    **MINIBATCH_SCHEMA,
}


class ConvFamily(Family):
    """A family built on the shared convolutional G and D body: it shares the shape rule."""

    def check(self, params: dict, image_shape: tuple) -> str | None:
        return check_conv_shape(params, image_shape)


def quarter_size_problem(image_shape: tuple, generator: str) -> str | None:
    """Why ``generator``, which doubles an (H/4, W/4) map twice, cannot make ``image_shape`` (or None)."""
    h, w, _ = image_shape
    if h % 4 or w % 4:
        return f"{generator} upsamples H/4 x W/4 twice, so both sides must be multiples of 4 (got {h}x{w})"
    return None


def check_conv_shape(params: dict, image_shape: tuple) -> str | None:
    problem = quarter_size_problem(image_shape, "the convolutional generator")
    if problem:
        return problem
    if len(params["g_widths"]) != 3:
        return "model.g_widths needs exactly 3 entries (before, between and after the two upsamplings)"
    return None


def mlp_generator(x, image_shape: tuple, widths, bn_momentum: float, slope: float):
    for width in widths:
        x = layers.Dense(width)(x)
        x = layers.LeakyReLU(slope)(x)
        x = batch_norm(bn_momentum)(x)
    x = layers.Dense(math.prod(image_shape), activation="tanh")(x)
    return layers.Reshape(image_shape)(x)


def mlp_discriminator(x, widths, slope: float, norm: str = "none"):
    """Flattened image features -> hidden LeakyReLU layers (the caller adds the output head)."""
    for width in widths:
        x = maybe_spectral(layers.Dense(width), norm)(x)
        x = layers.LeakyReLU(slope)(x)
    return x


def upsampling_generator(x, image_shape: tuple, params: dict):
    """Latent vector -> Dense(H/4*W/4*base, ReLU) -> conv/BN/ReLU with two 2x upsamplings -> tanh image."""
    h, w, channels = image_shape
    base = params["g_base_channels"]
    first, second, third = params["g_widths"]
    m = params["bn_momentum"]
    x = layers.Dense((h // 4) * (w // 4) * base, activation="relu")(x)
    x = layers.Reshape((h // 4, w // 4, base))(x)
    for width, upsample in ((first, True), (second, True), (third, False)):
        x = layers.Conv2D(width, 3, padding="same", use_bias=bias_before(params["g_norm"]))(x)
        x = normalize(x, params["g_norm"], m)
        x = layers.Activation("relu")(x)
        if upsample:
            x = layers.UpSampling2D()(x)
    return layers.Conv2D(channels, 3, padding="same", activation="tanh")(x)


def conv_trunk(x, params: dict):
    """Image -> stride-2 conv/norm/LeakyReLU per d_widths -> global average pooled features
    (then minibatch discrimination features when switched on)."""
    norm = params["d_norm"]
    for width in params["d_widths"]:
        x = maybe_spectral(layers.Conv2D(width, 3, strides=2, padding="same", use_bias=bias_before(norm)), norm)(x)
        x = normalize(x, norm, params["bn_momentum"])
        x = layers.LeakyReLU(params["leaky_slope"])(x)
    return minibatch(layers.GlobalAveragePooling2D()(x), params)


def chen_generator(x, image_shape: tuple, norm: str, momentum: float):
    """Chen et al.'s MNIST G (InfoGAN appendix C.1): two FC layers, then two 4x4 stride-2
    up-convolutions (H/4 -> H). The FC 1024 and FC (H/4 x W/4 x 128) decide where strokes go."""
    h, w, channels = image_shape
    for units in (1024, (h // 4) * (w // 4) * 128):
        x = layers.Dense(units, use_bias=bias_before(norm))(x)
        x = layers.Activation("relu")(normalize(x, norm, momentum))
    x = layers.Reshape((h // 4, w // 4, 128))(x)
    x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=bias_before(norm))(x)
    x = layers.Activation("relu")(normalize(x, norm, momentum))
    return layers.Conv2DTranspose(channels, 4, strides=2, padding="same", activation="tanh")(x)


def chen_trunk(x, params: dict, momentum: float):
    """Chen et al.'s MNIST D body: conv 64, conv 128 + norm, FC 1024 + norm (LeakyReLU each); InfoGAN's
    Q head shares it. Reads d_norm, leaky_slope and the minibatch keys."""
    norm, slope = params["d_norm"], params["leaky_slope"]
    x = maybe_spectral(layers.Conv2D(64, 4, strides=2, padding="same"), norm)(x)  # no norm on D's first layer
    x = layers.LeakyReLU(slope)(x)
    x = maybe_spectral(layers.Conv2D(128, 4, strides=2, padding="same", use_bias=bias_before(norm)), norm)(x)
    x = layers.LeakyReLU(slope)(normalize(x, norm, momentum))
    x = maybe_spectral(layers.Dense(1024, use_bias=bias_before(norm)), norm)(layers.Flatten()(x))
    x = layers.LeakyReLU(slope)(normalize(x, norm, momentum))
    return minibatch(x, params)


# Instance norm needs spatial axes: on an FC layer's output each unit would be its own group of one.
_SPATIAL_NORMS = ("instance",)


def fixed_network_conflicts(params: dict, schema: dict, unread: tuple, why: str, instead: str) -> dict[str, str]:
    """Conflicts for a family's fixed-width networks with fully connected layers (``arch: chen``):
    every key in ``unread`` set away from its default (the chen networks would silently ignore it),
    and a spatial normalisation in G or D."""
    found = {key: f"{why}; model.arch chen has the paper's fixed networks: remove it or use {instead}"
             for key in unread if params[key] != schema[key].default}
    for key in ("g_norm", "d_norm"):
        if params[key] in _SPATIAL_NORMS:
            found[key] = (f"{params[key]} normalises over height and width, which the fully connected layers of model.arch "
                          "chen do not have; use batch or none (or layer, layer_hwc, spectral in D)")
    return found
