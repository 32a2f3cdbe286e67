"""Conditional DCGAN: CGAN's multiplicative label fusion with the ACGAN convolutional G and D body.

G: ``z * Embedding(num_classes, latent_dim)(label)`` -> upsampling conv generator (MODELS.md 4.7).
D: ``image * reshape(Embedding(num_classes, H*W*C)(label))`` -> stride-2 conv trunk -> Dense(1).
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.base import LATENT_DIM, Family
from gantrain.models.blocks import CONV_SCHEMA, check_conv_shape, conv_trunk, upsampling_generator
from gantrain.models.conditional import ConditionalGANModel, label_times_image, label_times_noise
from gantrain.registry import MODELS

SCHEMA = {"latent_dim": LATENT_DIM, **CONV_SCHEMA}


class CDCGan(Family):
    def check(self, params, image_shape):
        return check_conv_shape(params, image_shape)

    def build(self, params, image_shape, num_classes):
        classes = max(num_classes, 1)
        z, label, x = label_times_noise(params["latent_dim"], classes)
        generator = keras.Model([z, label], upsampling_generator(x, image_shape, params), name="generator")

        images, d_label, x = label_times_image(image_shape, classes, flatten=False)
        logits = layers.Dense(1)(conv_trunk(x, params))
        discriminator = keras.Model([images, d_label], logits, name="discriminator")
        return ConditionalGANModel(generator, discriminator, params["latent_dim"], num_classes)


MODELS.register("cdcgan", description="conditional DCGAN (label embedding multiplied into z and the image)", schema=SCHEMA)(CDCGan())
