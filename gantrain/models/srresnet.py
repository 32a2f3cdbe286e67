"""SRResNet (Ledig et al. 2017): the super-resolution generator trained alone on a content loss.

The paper's pre-training stage for SRGAN and a strong PSNR-oriented model of its own: G (9x9 conv +
PReLU, residual blocks, sub-pixel upsampling; gantrain/models/super_resolution.py) minimises pixel
MSE between G(LR) and HR (``loss.content``; l1 or a feature loss on request). Adam 1e-4 and batch
16 of 96x96 HR crops in the paper. An SRGAN run starts from one with ``model.init_from``.
"""

from __future__ import annotations

from gantrain.models.sr_model import GENERATOR_SCHEMA, SuperResolutionFamily, SuperResolutionModel
from gantrain.registry import MODELS


class SRResNet(SuperResolutionFamily):
    unsupported = {
        **SuperResolutionFamily.unsupported,
        "train.d_steps": "SRResNet has no discriminator (srgan has one)",
        "loss.penalty": "SRResNet has no discriminator (srgan has one)",
    }
    defaults = {"data.batch_size": 16, "optimizer.generator.learning_rate": 1e-4}  # the paper's

    def build(self, params, image_shape, num_classes):
        return SuperResolutionModel(self.generator(params, image_shape), None, image_shape, params["scale"])


MODELS.register("srresnet", description="SRResNet: super-resolution generator trained on pixel MSE (Ledig et al. 2017), x2/x3/x4/x8",
                schema=GENERATOR_SCHEMA)(SRResNet())
