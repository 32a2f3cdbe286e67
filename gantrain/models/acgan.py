"""ACGAN (Odena et al. 2017), the architecture of Keras-GAN's acgan.py in TF2.

G: ``z * Embedding(num_classes, 100)(label)`` -> Dense 1568 ReLU -> 7x7x32 -> conv 64 / up / conv 128
/ up / conv 64 (each BN 0.8 + ReLU) -> conv 1 tanh. D: conv 32/64/128 stride 2 (BN 0.8, LeakyReLU)
-> global average pool -> a real/fake logit and class logits. D does not see the label; it
predicts it. With the defaults on MNIST: G 326,857 + D 94,763 = 421,620 parameters (the reference's
422,100 less the biases of its convs right before batch norm, which cancel: layers.bias_before).

Losses: the adversarial pair on the real/fake logit plus ``class_loss_weight`` times the class
cross-entropy, for D on real images (true labels) and fakes (the labels they were drawn for), and
for G on its fakes, as the reference trains both heads.
"""

from __future__ import annotations

import keras
from keras import layers

from gantrain.losses import class_cross_entropy
from gantrain.models.base import LATENT_DIM
from gantrain.models.blocks import CONV_SCHEMA, ConvFamily, conv_trunk
from gantrain.models.conditional import ConditionalGANModel, conditional_conv_generator
from gantrain.models.layers import maybe_spectral
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "latent_dim": LATENT_DIM,
    **CONV_SCHEMA,
    "class_loss_weight": Field(1.0, "weight of the class cross-entropy next to the adversarial loss (1:1 in the reference)", "float", min=0),
}


class ACGANModel(ConditionalGANModel):
    def __init__(self, *args, class_loss_weight: float):
        super().__init__(*args)
        self.class_loss_weight = class_loss_weight

    def discriminate(self, images, labels, training):
        (logits, class_logits), features = self.call_discriminator(images, training)
        return {"logits": logits, "class_logits": class_logits, "features": features}

    def d_extra_losses(self, real_out, fake_out, real_labels, latent, labeled=None):
        ce = class_cross_entropy(real_labels, real_out["class_logits"]) + class_cross_entropy(latent["labels"], fake_out["class_logits"])
        return {"class_loss": self.class_loss_weight * ce}

    def g_extra_losses(self, fake_out, latent):
        return {"class_loss": self.class_loss_weight * class_cross_entropy(latent["labels"], fake_out["class_logits"])}


class ACGan(ConvFamily):
    roles = ("image", "label")  # the class of each real image
    def build(self, params, image_shape, num_classes):
        classes = max(num_classes, 1)
        generator = conditional_conv_generator(params, image_shape, classes)

        images = keras.Input(image_shape, name="images")
        features = conv_trunk(images, params)
        norm = params["d_norm"]
        outputs = [
            maybe_spectral(layers.Dense(1, name="validity"), norm)(features),
            maybe_spectral(layers.Dense(classes, name="class_logits"), norm)(features),
        ]
        discriminator = keras.Model(images, outputs, name="discriminator")
        return ACGANModel(generator, discriminator, params["latent_dim"], num_classes, class_loss_weight=params["class_loss_weight"])


MODELS.register("acgan", description="auxiliary-classifier GAN: D predicts the class (Odena et al. 2017; 421,620 params on MNIST)", schema=SCHEMA)(ACGan())
