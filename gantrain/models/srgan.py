"""SRGAN (Ledig et al. 2017): SRResNet's generator against a discriminator on HR images.

G's loss is the content loss plus ``adversarial_weight`` (1e-3, the paper's) x the adversarial
loss (``loss.name``; non_saturating = the paper's -log D(G(LR))); D is the paper's VGG-style
network (8 conv blocks, 64 -> 512 filters, dense 1024, one logit) with global average pooling so
it takes any crop size. Start G from a trained SRResNet run (``model.init_from: runs/srresnet_...``)
as the paper does; training from scratch works too, with worse results early on.
"""

from __future__ import annotations

from gantrain.models.sr_model import GENERATOR_SCHEMA, SuperResolutionFamily, SuperResolutionModel
from gantrain.models.super_resolution import srgan_discriminator
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    **GENERATOR_SCHEMA,
    "d_width": Field(64, "discriminator base width (64 in the paper; 8 blocks up to 8x this)", "int", min=1),
    "d_dense": Field(1024, "discriminator dense layer (1024 in the paper)", "int", min=1),
    "adversarial_weight": Field(1e-3, "weight of the adversarial term in G's loss (1e-3 in the paper)", "float", min=0),
}


class SRGAN(SuperResolutionFamily):
    defaults = {"data.batch_size": 16, "optimizer.generator.learning_rate": 1e-4, "optimizer.discriminator.learning_rate": 1e-4}

    def build(self, params, image_shape, num_classes):
        discriminator = srgan_discriminator(image_shape[-1], width=params["d_width"], dense=params["d_dense"])
        return SuperResolutionModel(self.generator(params, image_shape), discriminator, image_shape, params["scale"], params["adversarial_weight"])


MODELS.register("srgan", description="SRGAN: SRResNet generator + VGG-style discriminator, content + 1e-3 x adversarial (Ledig et al. 2017)",
                schema=SCHEMA)(SRGAN())
