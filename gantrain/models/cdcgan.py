"""Conditional DCGAN: CGAN's multiplicative label fusion with the ACGAN convolutional G and D body.

G: ``z * Embedding(num_classes, latent_dim)(label)`` -> upsampling conv generator (the ACGAN body, see acgan.py).
D: ``image * reshape(Embedding(num_classes, H*W*C)(label))`` -> stride-2 conv trunk -> Dense(1).
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.base import LATENT_DIM
from gantrain.models.blocks import CONV_SCHEMA, ConvFamily, conv_trunk
from gantrain.models.conditional import ConditionalGANModel, conditional_conv_generator, label_times_image
from gantrain.models.layers import maybe_spectral
from gantrain.registry import MODELS

SCHEMA = {"latent_dim": LATENT_DIM, **CONV_SCHEMA}


class CDCGan(ConvFamily):
    roles = ("image", "label")  # the class of each real image
    def build(self, params, image_shape, num_classes):
        classes = max(num_classes, 1)
        generator = conditional_conv_generator(params, image_shape, classes)

        images, d_label, x = label_times_image(image_shape, classes, flatten=False, norm=params["d_norm"])
        logits = maybe_spectral(layers.Dense(1), params["d_norm"])(conv_trunk(x, params))
        discriminator = keras.Model([images, d_label], logits, name="discriminator")
        return ConditionalGANModel(generator, discriminator, params["latent_dim"], num_classes)


MODELS.register("cdcgan", description="conditional DCGAN (label embedding multiplied into z and the image)", schema=SCHEMA)(CDCGan())
