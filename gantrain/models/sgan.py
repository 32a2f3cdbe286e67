"""Semi-supervised GAN (Salimans et al. 2016, "Improved Techniques for Training GANs").

D is an N-class classifier with logits ``l_1..l_N``; its real/fake logit is derived from them:
``D(x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)``, i.e. the real/fake logit is ``logsumexp(l)``.
We use this N-logit form rather than an explicit (N+1)-th "fake" class because the two are
equivalent (the fake logit can be fixed at 0 without loss of generality), the N-logit form has no
redundant parameters, and its logit plugs into every adversarial loss of the registry unchanged.

Training: the adversarial loss on all images (labelled or not) plus ``supervised_weight`` times the
class cross-entropy on a separate stream of labelled batches (``data.labeled_per_class`` keeps that
many labels per class). G is the unconditional convolutional generator. The classifier's test
accuracy is logged at every checkpoint, and ``gantrain classify RUN`` reports it.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from gantrain.losses import class_cross_entropy
from gantrain.models.base import LATENT_DIM, GANModel
from gantrain.models.layers import D_NORMS, LAYER_NORMS_HELP, maybe_spectral
from gantrain.models.blocks import CONV_SCHEMA, ConvFamily, conv_trunk, upsampling_generator
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "latent_dim": LATENT_DIM,
    **CONV_SCHEMA,
    # Batch statistics in D would mix real and fake batches into the moving averages that the
    # classifier uses at test time; per-sample layer normalisation avoids that.
    "d_norm": Field("layer", "normalisation in D: layer (default here), layer_hwc, batch or instance after each trunk conv, spectral "
                     f"(every weight layer of D: convs and the class head) or none. {LAYER_NORMS_HELP}", "str", choices=D_NORMS),
    "dropout": Field(0.3, "dropout on D's pooled features (regularises the classifier on few labels)", "float", min=0, max=0.95),
    "supervised_weight": Field(1.0, "weight of the supervised cross-entropy on labelled batches", "float", min=0),
}


class SGANModel(GANModel):
    uses_labeled_stream = True
    can_classify = True

    def __init__(self, *args, supervised_weight: float):
        super().__init__(*args)
        self.supervised_weight = supervised_weight

    def discriminate(self, images, labels, training):
        class_logits, features = self.call_discriminator(images, training)
        logits = tf.reduce_logsumexp(tf.cast(class_logits, tf.float32), axis=-1, keepdims=True)
        return {"logits": logits, "class_logits": class_logits, "features": features}

    def d_extra_losses(self, real_out, fake_out, real_labels, latent, labeled=None):
        if labeled is None:
            return {}
        labels = labeled["label"]
        class_logits = self.discriminator(labeled["image"], training=True)
        return {"supervised_loss": self.supervised_weight * class_cross_entropy(labels, class_logits, mask=labels >= 0)}

    def classify(self, images):
        return self.discriminator(images, training=False)


class SGan(ConvFamily):
    roles = ("image", "label")  # the class of each real image
    def build(self, params, image_shape, num_classes):
        z = keras.Input((params["latent_dim"],), name="z")
        generator = keras.Model(z, upsampling_generator(z, image_shape, params), name="generator")

        images = keras.Input(image_shape, name="images")
        features = layers.Dropout(params["dropout"])(conv_trunk(images, params))
        class_logits = maybe_spectral(layers.Dense(max(num_classes, 1), name="class_logits"), params["d_norm"])(features)
        discriminator = keras.Model(images, class_logits, name="discriminator")
        return SGANModel(generator, discriminator, params["latent_dim"], num_classes, supervised_weight=params["supervised_weight"])


MODELS.register("sgan", description="semi-supervised GAN: D is an N-class classifier, real/fake = logsumexp of its logits", schema=SCHEMA)(SGan())
