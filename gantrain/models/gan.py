"""The MLP GAN of Goodfellow et al. as in Keras-GAN's ``gan.py``.

With the defaults the parameter counts equal the reference: generator 1,493,520
(1,489,936 trainable), discriminator 533,505. D outputs a logit; the reference's final sigmoid
lives inside the loss instead, which keeps the parameter count and is numerically safer.
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.base import LATENT_DIM, LEAKY_SLOPE, Family, GANModel
from gantrain.models.blocks import mlp_discriminator, mlp_generator
from gantrain.models.layers import MINIBATCH_SCHEMA, maybe_spectral, minibatch
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "latent_dim": LATENT_DIM,
    "g_widths": Field([256, 512, 1024], "generator hidden layer widths", "int_list", min=1),
    "d_widths": Field([512, 256], "discriminator hidden layer widths", "int_list", min=1),
    "bn_momentum": Field(0.8, "generator BatchNormalization momentum (0.8 as in the reference)", "float", min=0, max=1),
    "leaky_slope": LEAKY_SLOPE,
    "d_norm": Field("none", "normalisation of D: none (the reference) or spectral (every dense layer of D, the head and any label embedding included)", "str", choices=("none", "spectral")),
    **MINIBATCH_SCHEMA,
}


class MLPGan(Family):
    def build(self, params: dict, image_shape: tuple, num_classes: int) -> GANModel:
        z = keras.Input((params["latent_dim"],), name="z")
        images = mlp_generator(z, image_shape, params["g_widths"], params["bn_momentum"], params["leaky_slope"])
        generator = keras.Model(z, images, name="generator")

        inp = keras.Input(image_shape, name="images")
        features = mlp_discriminator(layers.Flatten()(inp), params["d_widths"], params["leaky_slope"], params["d_norm"])
        head = maybe_spectral(layers.Dense(1), params["d_norm"])
        discriminator = keras.Model(inp, head(minibatch(features, params)), name="discriminator")
        return GANModel(generator, discriminator, params["latent_dim"], num_classes)


MODELS.register("gan", description="MLP GAN (Goodfellow et al.; Keras-GAN gan.py)", schema=SCHEMA)(MLPGan())
