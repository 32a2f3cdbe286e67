"""DCGAN as in the TensorFlow DCGAN tutorial (Radford et al. 2016), generalised to other sizes.

Generator: Dense(s*s*w0, no bias) -> BN -> LeakyReLU -> Reshape -> Conv2DTranspose(w1, stride 1)
-> then one stride-2 Conv2DTranspose per further width -> a stride-2 Conv2DTranspose to the image
channels with tanh (or, with ``g_upsample: nearest``, each stride-2 Conv2DTranspose becomes a 2x
nearest-neighbour UpSampling2D then a stride-1 Conv2D: Odena et al. 2016's remedy for the
checkerboard artifacts of strided transposed convolutions). So ``g_widths`` of length L upsample by 2**(L-1): the tutorial's [256, 128, 64]
turns 7x7 into 28x28, and also 8x8 into 32x32 (CIFAR-10); [512, 256, 128, 64] makes 64x64.
Discriminator: stride-2 Conv2D + LeakyReLU + Dropout per ``d_widths`` entry, Flatten, Dense(1) logit.

``arch: chen`` swaps both for Chen et al.'s MNIST networks (InfoGAN's appendix C.1 without the codes,
the networks TF-GAN's MNIST example also uses; blocks.py): FC 1024 and FC (H/4 x W/4 x 128), then
two 4x4 up-convolutions; D: two 4x4 stride-2 convs, then FC 1024, then the logit. A step costs
about twice a half-width tutorial step on a CPU (13 M parameters for Adam to update), but they reach
a given MNIST FID in a tenth of the steps (BENCHMARKS.md, the main job's search).
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.base import LATENT_DIM, LEAKY_SLOPE, Family, GANModel
from gantrain.models.blocks import chen_generator, chen_trunk, fixed_network_conflicts, quarter_size_problem
from gantrain.models.layers import D_NORMS, G_NORMS, LAYER_NORMS_HELP, MINIBATCH_SCHEMA, bias_before, maybe_spectral, minibatch, normalize
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "latent_dim": LATENT_DIM,
    "arch": Field("tutorial", "networks: tutorial (the TensorFlow tutorial's convolutional stacks; the width, kernel, upsampling and "
                  "dropout keys apply) or chen (Chen et al.'s MNIST networks with fully connected layers, fixed widths; "
                  "sides must be multiples of 4)", "str", choices=("tutorial", "chen")),
    "g_widths": Field([256, 128, 64], "generator widths: dense block, then one transposed conv each (>= 2 entries)", "int_list", min=1),
    "d_widths": Field([64, 128], "discriminator conv widths, each stride 2", "int_list", min=1),
    "g_upsample": Field("transpose", "how G doubles the size: transpose (stride-2 Conv2DTranspose, the tutorial) or nearest "
                        "(UpSampling2D then Conv2D: no checkerboard artifacts, about 1.6x G's multiply-adds)", "str",
                        choices=("transpose", "nearest")),
    "kernel_size": Field(5, "convolution kernel size", "int", min=1, max=11),
    "dropout": Field(0.3, "discriminator dropout rate", "float", min=0, max=0.95),
    "leaky_slope": LEAKY_SLOPE,
    "g_norm": Field("batch", "normalisation in G: batch (the tutorial), instance or none", "str", choices=G_NORMS),
    "d_norm": Field("none", "normalisation in D: none (the tutorial), batch, layer, layer_hwc or instance after each conv, or spectral "
                     f"(every weight layer of D: convs and the head). {LAYER_NORMS_HELP}", "str", choices=D_NORMS),
    **MINIBATCH_SCHEMA,
}


# The keys of the tutorial stacks that the fixed chen networks do not read.
_TUTORIAL_ONLY = ("g_widths", "d_widths", "g_upsample", "kernel_size", "dropout")
# Batch-norm momentum of the chen networks (Keras's default; the tutorial stacks use it too).
_CHEN_BN_MOMENTUM = 0.99


class DCGan(Family):
    def conflicts(self, params: dict) -> dict[str, str]:
        if params["arch"] != "chen":
            return {}
        return fixed_network_conflicts(params, SCHEMA, _TUTORIAL_ONLY, "sets the tutorial networks", "arch tutorial")

    def check(self, params: dict, image_shape: tuple) -> str | None:
        if params["arch"] == "chen":
            return quarter_size_problem(image_shape, "model.arch chen")
        h, w, _ = image_shape
        widths = params["g_widths"]
        if len(widths) < 2:
            return "model.g_widths needs at least 2 entries (dense block + one transposed conv)"
        factor = 2 ** (len(widths) - 1)
        if h != w:
            return "DCGAN makes square images; set data.image_size to one number"
        if h % factor:
            return f"image size {h} is not divisible by 2**(len(g_widths)-1) = {factor}; change data.image_size or model.g_widths"
        return None

    def build(self, params: dict, image_shape: tuple, num_classes: int) -> GANModel:
        if params["arch"] == "chen":
            return self._build_chen(params, image_shape, num_classes)
        h, _, channels = image_shape
        widths, k, slope = params["g_widths"], params["kernel_size"], params["leaky_slope"]
        base = h // 2 ** (len(widths) - 1)

        z = keras.Input((params["latent_dim"],), name="z")
        g_norm = params["g_norm"]
        x = layers.Dense(base * base * widths[0], use_bias=False)(z)
        if g_norm == "instance":  # instance norm needs the spatial axes: reshape first
            x = normalize(layers.Reshape((base, base, widths[0]))(x), g_norm)
        else:  # the tutorial normalises the dense output, then reshapes
            x = layers.Reshape((base, base, widths[0]))(normalize(x, g_norm))
        x = layers.LeakyReLU(slope)(x)
        upsample = _upsampler(params["g_upsample"], k)
        for i, width in enumerate(widths[1:]):
            x = upsample(x, width, 1 if i == 0 else 2)
            x = normalize(x, g_norm)
            x = layers.LeakyReLU(slope)(x)
        images = upsample(x, channels, 2, activation="tanh")
        generator = keras.Model(z, images, name="generator")

        inp = keras.Input(image_shape, name="images")
        x = inp
        d_norm = params["d_norm"]
        for width in params["d_widths"]:
            x = maybe_spectral(layers.Conv2D(width, k, strides=2, padding="same", use_bias=bias_before(d_norm)), d_norm)(x)
            x = normalize(x, d_norm)
            x = layers.LeakyReLU(slope)(x)
            x = layers.Dropout(params["dropout"])(x)
        x = minibatch(layers.Flatten()(x), params)
        logits = maybe_spectral(layers.Dense(1), d_norm)(x)
        discriminator = keras.Model(inp, logits, name="discriminator")
        return GANModel(generator, discriminator, params["latent_dim"], num_classes)

    def _build_chen(self, params: dict, image_shape: tuple, num_classes: int) -> GANModel:
        z = keras.Input((params["latent_dim"],), name="z")
        generator = keras.Model(z, chen_generator(z, image_shape, params["g_norm"], _CHEN_BN_MOMENTUM), name="generator")
        images = keras.Input(image_shape, name="images")
        features = chen_trunk(images, params, _CHEN_BN_MOMENTUM)
        logits = maybe_spectral(layers.Dense(1), params["d_norm"])(features)
        discriminator = keras.Model(images, logits, name="discriminator")
        return GANModel(generator, discriminator, params["latent_dim"], num_classes)


def _upsampler(mode: str, k: int):
    """A bias-free conv that multiplies the size by ``stride`` (1 or 2) the chosen way."""
    def transpose(x, width, stride, activation=None):
        return layers.Conv2DTranspose(width, k, strides=stride, padding="same", use_bias=False, activation=activation)(x)

    def nearest(x, width, stride, activation=None):
        if stride == 2:
            x = layers.UpSampling2D(2, interpolation="nearest")(x)
        return layers.Conv2D(width, k, padding="same", use_bias=False, activation=activation)(x)

    return transpose if mode == "transpose" else nearest


MODELS.register("dcgan", description="DCGAN, TensorFlow-tutorial architecture (28x28, 32x32, 64x64, ...)", schema=SCHEMA)(DCGan())
