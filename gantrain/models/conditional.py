"""The label-conditioned GANModel shared by CGAN, CDCGAN and ACGAN.

Fake labels are drawn uniformly over the classes; G receives ``[z, labels]``. Label fusion is by
multiplication (Mirza & Osindero 2014): an embedding of the label, the size of what it multiplies, keeps
a low-dimensional label from being swamped by the 100-d noise, as concatenation can be.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gantrain.models.base import GANModel
from gantrain.models.blocks import upsampling_generator
from gantrain.models.layers import maybe_spectral


class ConditionalGANModel(GANModel):
    conditional = True
    d_takes_labels = True  # CGAN/CDCGAN: D sees the label; ACGAN predicts it instead

    def sample_latent(self, rng, batch, labels=None):
        z = rng.normal([batch, self.latent_dim])
        if labels is None:
            labels = rng.uniform([batch], 0, self.num_classes, dtype=tf.int32)
        return {"z": z, "labels": tf.cast(labels, tf.int32)}

    def generator_inputs(self, latent):
        return [latent["z"], latent["labels"]]

    def discriminate(self, images, labels, training):
        logits, features = self.call_discriminator([images, labels], training)
        return {"logits": logits, "features": features}

    def grid_latent(self, n, seed):
        per_row = max(1, n // self.num_classes)
        labels = np.repeat(np.arange(self.num_classes, dtype=np.int32), per_row)
        return self.sample_latent(tf.random.Generator.from_seed(seed), len(labels), labels), self.num_classes


def label_times_noise(latent_dim: int, num_classes: int):
    """Inputs (z, label) and ``z * Embedding(num_classes, latent_dim)(label)``."""
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    return z, label, layers.Multiply()([z, layers.Embedding(num_classes, latent_dim)(label)])


def label_times_image(image_shape: tuple, num_classes: int, flatten: bool, norm: str = "none"):
    """Inputs (image, label) and the image multiplied by an image-sized label embedding.

    ``norm`` is D's normalisation: with ``spectral`` the embedding, a linear map of the one-hot
    label, is spectrally normalised like D's other weight layers.
    """
    images = keras.Input(image_shape, name="images")
    label = keras.Input((), dtype="int32", name="label")
    size = int(np.prod(image_shape))
    embedded = maybe_spectral(layers.Embedding(num_classes, size), norm)(label)
    if flatten:
        return images, label, layers.Multiply()([layers.Flatten()(images), embedded])
    return images, label, layers.Multiply()([images, layers.Reshape(image_shape)(embedded)])


def conditional_conv_generator(params: dict, image_shape: tuple, classes: int):
    """``[z, label]`` -> the shared upsampling conv generator fed ``z * label embedding`` (CDCGAN, ACGAN)."""
    z, label, x = label_times_noise(params["latent_dim"], classes)
    return keras.Model([z, label], upsampling_generator(x, image_shape, params), name="generator")
