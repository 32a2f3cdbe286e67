"""The book's 64x64 "DCGAN-anime" (Ahirwar, *Generative Adversarial Networks Projects*, ch. 4): dense + upsampling G, max-pooling D.

Generator (the book's layer table and its repository, PacktPublishing/Generative-Adversarial-Networks-Projects):
z -> Dense(g_dense) -> act -> Dense(s*s*g_widths[0]) -> BN -> act -> Reshape(s, s, g_widths[0])
-> for each further width: UpSampling2D(2) -> Conv2D(width, 5, same) -> act
-> UpSampling2D(2) -> Conv2D(channels, 5, same) -> tanh.
There is no batch norm after the convolutions, as in the book: its only BN is the one on the second
dense layer. ``g_widths`` of length L upsample L times, so the image side is ``s * 2**L``: the book's
[256, 128, 64] turns 8x8 into 64x64 (8 -> 16 -> 32 -> 64), and makes 32x32 from 4x4 or 128x128
from 16x16. ``act`` is ``g_activation``: the book gives three sets (table/repository ReLU, step
text tanh, full code LeakyReLU 0.2); ReLU is the default. The output is always tanh, whatever the
book's full code says, because the data are in [-1, 1].

Discriminator: Conv2D(d_widths[0], 5, same) -> LReLU -> MaxPool(2), then for each further width
Conv2D(width, 3, valid) -> LReLU -> MaxPool(2); Flatten -> Dense(d_dense) -> LReLU -> Dense(1).
The head is a logit: the project's losses take logits, so the book's sigmoid lives inside the loss.
The valid convolutions and floor-dividing pools need a minimum image side (20 for three widths,
:func:`d_min_size`), which :meth:`DCGanAnime.check` reports. No BN and no dropout in D, as in all
the book's code (its prose promises dropout). Beyond the book, both off by default: ``d_norm:
spectral`` and minibatch discrimination before the head, so the shared stabilisation switches apply.

With the defaults at 64x64x3: G has 34,855,811 parameters (32,768 of them BN statistics), D 20,361,473: the
book's counts less the bias of G's second dense layer (16,384), which the batch norm after it cancels.
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.base import LATENT_DIM, LEAKY_SLOPE, Family, GANModel
from gantrain.models.layers import MINIBATCH_SCHEMA, batch_norm, maybe_spectral, minibatch
from gantrain.registry import MODELS
from gantrain.schema import Field

G_ACTIVATIONS = ("relu", "leaky_relu", "tanh")
G_KERNEL, D_FIRST_KERNEL, D_KERNEL = 5, 5, 3  # the book's kernels, fixed: they are the architecture
BN_MOMENTUM = 0.99  # Keras's default, which the book's BatchNormalization() uses

SCHEMA = {
    "latent_dim": LATENT_DIM,
    "g_dense": Field(2048, "width of G's first dense layer", "int", min=1),
    "g_widths": Field([256, 128, 64], "G: channels of the reshaped dense output, then of one 5x5 conv after each further 2x upsampling; "
                      "the image side is base * 2**len(g_widths)", "int_list", min=1),
    "g_activation": Field("relu", "G's hidden activation: relu (the book's table and repository), leaky_relu (its full code, slope "
                          "model.leaky_slope) or tanh (its step text); the output is always tanh", "str", choices=G_ACTIVATIONS),
    "d_widths": Field([128, 256, 512], "D: a 5x5 same conv, then 3x3 valid convs, each followed by LeakyReLU and 2x2 max pooling",
                      "int_list", min=1),
    "d_dense": Field(1024, "width of D's hidden dense layer", "int", min=1),
    "leaky_slope": LEAKY_SLOPE,
    "d_norm": Field("none", "normalisation in D: none (the book) or spectral (every weight layer of D: convs and both dense layers)",
                    "str", choices=("none", "spectral")),
    **MINIBATCH_SCHEMA,
}


def d_min_size(n_widths: int) -> int:
    """Smallest image side the discriminator takes without a zero-sized feature map.

    Args:
        n_widths: number of conv stages (``len(d_widths)``): one 5x5 same conv, then ``n_widths - 1``
            3x3 valid convs (each takes 2 pixels off), each stage followed by a floor-dividing 2x2 max pool.

    Returns:
        The minimum side: walking back from a 1-pixel map after the last pool, a pool needs twice
        the side and a valid conv 2 more (1 -> 2 for one stage; 1 -> 4 -> 10 -> 20 for the book's three).
    """
    side = 1
    for _ in range(n_widths - 1):
        side = 2 * side + 2
    return 2 * side


def nearest_sizes(side: int, factor: int, smallest: int) -> list[int]:
    """The valid image sides (multiples of ``factor``, at least ``smallest``) next to ``side``: the one below, if any, and the one above."""
    first = -(-smallest // factor) * factor  # the smallest valid side
    below = side // factor * factor
    above = max(first, below + factor)
    return [below, above] if below >= first and below != side else [above]


def _activation(name: str, slope: float) -> layers.Layer:
    return layers.LeakyReLU(slope) if name == "leaky_relu" else layers.Activation(name)


class DCGanAnime(Family):
    def check(self, params: dict, image_shape: tuple) -> str | None:
        h, w, _ = image_shape
        if h != w:
            return "DCGAN-anime makes square images; set data.image_size to one number"
        factor = 2 ** len(params["g_widths"])
        smallest = d_min_size(len(params["d_widths"]))
        if h % factor or h < smallest:
            # Name the nearest sizes it can make, so the fix is one edit.
            near = " or ".join(str(s) for s in nearest_sizes(h, factor, smallest))
            if h % factor:
                why = f"is not a multiple of 2**len(g_widths) = {factor} (G upsamples its base map {len(params['g_widths'])} times)"
            else:
                why = (f"is below {smallest}, the smallest side D's {len(params['d_widths'])} conv + max-pool stages "
                       "(3x3 valid convs after the first) can take")
            return f"image size {h} {why}; use data.image_size {near}, or change model.g_widths / model.d_widths"
        return None

    def build(self, params: dict, image_shape: tuple, num_classes: int) -> GANModel:
        h, _, channels = image_shape
        widths, slope, act = params["g_widths"], params["leaky_slope"], params["g_activation"]
        base = h // 2 ** len(widths)

        z = keras.Input((params["latent_dim"],), name="z")
        x = _activation(act, slope)(layers.Dense(params["g_dense"])(z))
        x = batch_norm(BN_MOMENTUM)(layers.Dense(base * base * widths[0], use_bias=False)(x))  # layers.bias_before
        x = layers.Reshape((base, base, widths[0]))(_activation(act, slope)(x))
        for width in widths[1:]:
            # As the book: nearest-neighbour doubling, then a stride-1 conv (no transposed conv, whose
            # uneven kernel overlap draws checkerboards; Odena et al. 2016).
            x = layers.Conv2D(width, G_KERNEL, padding="same")(layers.UpSampling2D(2)(x))
            x = _activation(act, slope)(x)
        x = layers.UpSampling2D(2)(x)
        images = layers.Conv2D(channels, G_KERNEL, padding="same", activation="tanh")(x)
        generator = keras.Model(z, images, name="generator")

        inp = keras.Input(image_shape, name="images")
        d_norm = params["d_norm"]
        x = inp
        for i, width in enumerate(params["d_widths"]):
            conv = layers.Conv2D(width, D_FIRST_KERNEL, padding="same") if i == 0 else layers.Conv2D(width, D_KERNEL, padding="valid")
            x = layers.LeakyReLU(slope)(maybe_spectral(conv, d_norm)(x))
            x = layers.MaxPooling2D(2)(x)
        x = maybe_spectral(layers.Dense(params["d_dense"]), d_norm)(layers.Flatten()(x))
        x = minibatch(layers.LeakyReLU(slope)(x), params)
        logits = maybe_spectral(layers.Dense(1), d_norm)(x)
        discriminator = keras.Model(inp, logits, name="discriminator")
        return GANModel(generator, discriminator, params["latent_dim"], num_classes)


MODELS.register("dcgan_anime", description="the book's 64x64 DCGAN-anime: dense + upsampling/conv G, max-pooling D (any size base * 2**len(g_widths))",
                schema=SCHEMA)(DCGanAnime())
