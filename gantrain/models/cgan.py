"""CGAN: the MLP GAN conditioned on a class label by multiplication (Mirza & Osindero 2014; Keras-GAN's cgan.py).

G: ``z * Embedding(num_classes, latent_dim)(label)`` -> the MLP GAN generator.
D: ``flatten(image) * Embedding(num_classes, H*W*C)(label)`` -> the MLP GAN discriminator.
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.models.blocks import mlp_discriminator, mlp_generator
from gantrain.models.layers import maybe_spectral, minibatch
from gantrain.models.conditional import ConditionalGANModel, label_times_image, label_times_noise
from gantrain.models.base import Family
from gantrain.models.gan import SCHEMA
from gantrain.registry import MODELS


class CGan(Family):
    roles = ("image", "label")  # the class of each real image
    def build(self, params, image_shape, num_classes):
        classes = max(num_classes, 1)
        z, label, x = label_times_noise(params["latent_dim"], classes)
        images = mlp_generator(x, image_shape, params["g_widths"], params["bn_momentum"], params["leaky_slope"])
        generator = keras.Model([z, label], images, name="generator")

        inp, d_label, x = label_times_image(image_shape, classes, flatten=True, norm=params["d_norm"])
        features = minibatch(mlp_discriminator(x, params["d_widths"], params["leaky_slope"], params["d_norm"]), params)
        discriminator = keras.Model([inp, d_label], maybe_spectral(layers.Dense(1), params["d_norm"])(features), name="discriminator")
        return ConditionalGANModel(generator, discriminator, params["latent_dim"], num_classes)


MODELS.register("cgan", description="conditional MLP GAN, label embedding multiplied into z and the image", schema=SCHEMA)(CGan())
