"""InfoGAN (Chen et al. 2016): structured latent codes whose mutual information with G's output is maximised.

Latent: noise ``z`` (62-d for MNIST), one categorical code with ``categories`` values (one-hot) and
``continuous_codes`` codes ~ U(-1, 1), concatenated into G. A Q head shares D's trunk and predicts
the codes of a fake image: categorical logits and the means of a fixed-variance Gaussian for the
continuous codes.

Two network choices (``arch``):

- ``acgan``: ACGAN's convolutional G and D body (blocks.py), D's features globally average-pooled.
- ``chen``: the paper's MNIST networks (Chen et al. 2016, appendix C.1; openai/InfoGAN's
  regularized_gan.py). G: FC 1024 -> BN -> ReLU -> FC (H/4 x W/4 x 128) -> BN -> ReLU -> 4x4
  stride-2 up-convolution 64 -> BN -> ReLU -> 4x4 stride-2 up-convolution to the image (tanh).
  D: 4x4 stride-2 conv 64 -> lReLU -> 4x4 stride-2 conv 128 -> BN -> lReLU -> FC 1024 -> BN ->
  lReLU, shared; D's head FC 1; Q: FC 128 -> BN -> lReLU -> the code heads. Unlike the pooled
  trunk, the FC 1024 keeps where strokes are, which is what tells a 4 from a 9.

The mutual-information lower bound becomes ``info_weight * (CE(categorical) + continuous_weight *
squared error(continuous))``, added to both G's loss and D's (the Q head is part of D's variables,
so D's optimizer trains it). No labels are used: the categorical code is unsupervised, so
``--label k`` at sampling time fixes the code's value, not a dataset class.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gantrain.errors import UserError
from gantrain.losses import class_cross_entropy, gaussian_code_loss
from gantrain.models.base import GANModel
from gantrain.models.blocks import CONV_SCHEMA, ConvFamily, chen_generator, chen_trunk, conv_trunk, fixed_network_conflicts, upsampling_generator
from gantrain.models.layers import bias_before, maybe_spectral, normalize
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "latent_dim": Field(62, "size of the incompressible noise z ~ N(0, 1) (62 for MNIST in the paper)", "int", min=1, max=4096),
    "categories": Field(None, "values of the categorical code (default: the dataset's class count, or 10)", "int", min=2, max=1000, nullable=True),
    "continuous_codes": Field(2, "number of continuous codes ~ U(-1, 1)", "int", min=0, max=32),
    "info_weight": Field(1.0, "lambda: weight of the mutual-information term (1 for discrete codes in the paper)", "float", min=0),
    "continuous_weight": Field(0.1, "relative weight of the continuous-code term within it", "float", min=0),
    "arch": Field("acgan", "networks: acgan (ACGAN's convolutional body, g_widths/d_widths apply) or chen (the paper's "
                  "MNIST networks with fully connected layers; fixed widths)", "str", choices=("acgan", "chen")),
    **CONV_SCHEMA,
}
# The ACGAN-body keys the fixed-width chen networks do not read.
_ACGAN_ONLY = ("g_base_channels", "g_widths", "d_widths")


class InfoGANModel(GANModel):
    conditional = True  # --label picks the categorical code
    labels_are_classes = False  # ... which is unsupervised: code k need not be digit k
    has_codes = True

    def __init__(self, generator, discriminator, latent_dim, categories, continuous, info_weight, continuous_weight):
        super().__init__(generator, discriminator, latent_dim, categories)
        self.continuous = continuous
        self.info_weight, self.continuous_weight = info_weight, continuous_weight

    def sample_latent(self, rng, batch, labels=None):
        if labels is None:
            labels = rng.uniform([batch], 0, self.num_classes, dtype=tf.int32)
        return {
            "z": rng.normal([batch, self.latent_dim]),
            "labels": tf.cast(labels, tf.int32),  # the categorical code
            "codes": rng.uniform([batch, self.continuous], -1.0, 1.0),
        }

    def generator_inputs(self, latent):
        onehot = tf.one_hot(latent["labels"], self.num_classes)
        return tf.concat([latent["z"], onehot, latent["codes"]], axis=-1)

    def discriminate(self, images, labels, training):
        outputs, features = self.call_discriminator(images, training)
        logits, cat_logits = outputs[0], outputs[1]
        code_means = outputs[2] if self.continuous else None
        return {"logits": logits, "cat_logits": cat_logits, "code_means": code_means, "features": features}

    def info_loss(self, fake_out, latent):
        loss = class_cross_entropy(latent["labels"], fake_out["cat_logits"])
        if self.continuous:
            loss += self.continuous_weight * gaussian_code_loss(latent["codes"], fake_out["code_means"])
        return self.info_weight * loss

    def d_extra_losses(self, real_out, fake_out, real_labels, latent, labeled=None):
        return {"info_loss": self.info_loss(fake_out, latent)}

    def g_extra_losses(self, fake_out, latent):
        return {"info_loss": self.info_loss(fake_out, latent)}

    def grid_latent(self, n, seed):
        per_row = max(1, n // self.num_classes)
        labels = np.repeat(np.arange(self.num_classes, dtype=np.int32), per_row)
        return self.sample_latent(tf.random.Generator.from_seed(seed), len(labels), labels), self.num_classes

    def traversal(self, code: str, steps: int, seed: int, generator=None) -> tuple[np.ndarray, int]:
        """One row per categorical value; continuous code ``c<i>`` swept from -2 to 2 across columns.

        The noise z is the same in every cell and the other continuous codes are 0, so a row shows
        only what that code controls.
        """
        names = [f"c{i + 1}" for i in range(self.continuous)]
        if code not in names:
            raise UserError(f"--traverse {code!r}: this model's continuous codes are {', '.join(names) or 'none'}")
        index = names.index(code)
        rows, cols = self.num_classes, steps
        z = tf.random.stateless_normal([1, self.latent_dim], seed=[seed, 0])
        sweep = np.linspace(-2.0, 2.0, cols, dtype=np.float32)
        codes = np.zeros((rows * cols, self.continuous), np.float32)
        codes[:, index] = np.tile(sweep, rows)
        latent = {"z": tf.repeat(z, rows * cols, axis=0), "labels": tf.constant(np.repeat(np.arange(rows), cols), tf.int32), "codes": tf.constant(codes)}
        return self.generate(latent, training=False, generator=generator).numpy(), rows


class InfoGan(ConvFamily):
    def conflicts(self, params):
        if params["arch"] != "chen":
            return {}
        return fixed_network_conflicts(params, SCHEMA, _ACGAN_ONLY, "sets a width of the acgan networks", "arch acgan")

    def build(self, params, image_shape, num_classes):
        categories = params["categories"] or (num_classes if num_classes >= 2 else 10)
        continuous = params["continuous_codes"]
        chen = params["arch"] == "chen"
        latent = keras.Input((params["latent_dim"] + categories + continuous,), name="latent")
        if chen:
            g_out = chen_generator(latent, image_shape, params["g_norm"], params["bn_momentum"])
        else:
            g_out = upsampling_generator(latent, image_shape, params)
        generator = keras.Model(latent, g_out, name="generator")

        images = keras.Input(image_shape, name="images")
        features = chen_trunk(images, params, params["bn_momentum"]) if chen else conv_trunk(images, params)
        norm = params["d_norm"]
        q = maybe_spectral(layers.Dense(128, use_bias=not chen or bias_before(norm)), norm)(features)
        if chen:  # the paper's Q normalises its hidden layer; the acgan body's Q never did
            q = normalize(q, norm, params["bn_momentum"])
        q = layers.LeakyReLU(params["leaky_slope"])(q)
        outputs = [
            maybe_spectral(layers.Dense(1, name="validity"), norm)(features),
            maybe_spectral(layers.Dense(categories, name="q_categorical"), norm)(q),
        ]
        if continuous:  # no head without codes: its weights would get no gradient
            outputs.append(maybe_spectral(layers.Dense(continuous, name="q_continuous"), norm)(q))
        discriminator = keras.Model(images, outputs, name="discriminator")
        return InfoGANModel(generator, discriminator, params["latent_dim"], categories, continuous, params["info_weight"], params["continuous_weight"])


MODELS.register("infogan", description="InfoGAN: categorical + continuous latent codes, Q head on D's trunk", schema=SCHEMA)(InfoGan())
