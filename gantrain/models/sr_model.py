"""What the super-resolution families (srresnet, srgan) share: the model, its data and its content loss.

Both train a generator from LR to HR images (data roles ``lr`` and ``hr``; batches are random HR
crops with LR = bicubic downscaling of them, made by ``gantrain/data/sr_pairs.py``). SRResNet
(Ledig et al. 2017, the pre-training stage) minimises the content loss alone; SRGAN adds
``adversarial_weight`` (1e-3) x the adversarial loss of a discriminator on HR images. The content
loss is the config's ``loss.content`` (pixel MSE by default; see gantrain/content.py).

Inference is fully convolutional: ``translate`` takes LR images of any size and returns them
``scale`` times larger; ``gantrain upscale`` runs it in tiles (gantrain/tiles.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from gantrain.content import FeatureContent, content_loss
from gantrain.data.source import ImageSource
from gantrain.data.sr_pairs import SCALES, SRFolderPairs, bicubic_upscale, sr_pairs
from gantrain.errors import UserError
from gantrain.models.base import GAN_GROUPS, Family
from gantrain.models.image_to_image import TranslationModel, spread
from gantrain.models.plan import Group, Losses, Plan, Update
from gantrain.models.super_resolution import srresnet_generator
from gantrain.schema import Field

GENERATOR_SCHEMA = {
    "scale": Field(4, "upscaling factor: 2, 3, 4 (the paper) or 8", "int", choices=SCALES),
    "width": Field(64, "generator feature maps (64 in the paper)", "int", min=1),
    "blocks": Field(16, "generator residual blocks (16 in the paper)", "int", min=1, max=64),
}
# The feature layers the content loss reads by default, per feature network.
DEFAULT_LAYER = {"vgg19": "block5_conv4", "classifier": "block2_conv2"}  # the paper's VGG54; the classifier's last conv
DEFAULT_PREPROCESS = {"vgg19": "caffe", "classifier": "none"}
# The paper rescales VGG feature maps by 1/12.75 (so the squared error by its square): the MSE then
# has the size of a pixel MSE. Our classifiers' features are already of that order.
DEFAULT_SCALE = {"vgg19": 1.0 / 12.75**2, "classifier": 1.0}


def content_spec(loss_cfg: dict) -> dict:
    """The ``content_loss`` spec of a resolved ``loss`` config section, every default filled in."""
    network = loss_cfg["content_network"]
    return {
        "name": loss_cfg["content"] or "pixel_mse",
        "network": network,
        "layer": loss_cfg["content_layer"] or DEFAULT_LAYER[network],
        "weights": loss_cfg["content_weights"],
        "preprocess": loss_cfg["content_preprocess"] or DEFAULT_PREPROCESS[network],
        "scale": loss_cfg["content_scale"] or DEFAULT_SCALE[network],
    }


class SuperResolutionModel(TranslationModel):
    can_upscale = True
    translators = {"a2b": "generator"}
    input_roles = {"generator": "lr"}
    averaged = ("generator",)

    def __init__(self, generator, discriminator, image_shape, scale: int, adversarial_weight: float = 0.0):
        super().__init__(image_shape)
        self.generator, self.discriminator = generator, discriminator
        self.scale, self.adversarial_weight = scale, adversarial_weight
        self.groups = GAN_GROUPS if discriminator is not None else (Group("generator", "g", ("generator",)),)

    @property
    def networks(self):
        nets = {"generator": self.generator}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets

    def translate(self, images, direction="a2b", networks=None, training=False):
        """LR images in [-1, 1] (N, h, w, C), any size -> (N, h * scale, w * scale, C)."""
        return (networks or self.networks)["generator"](tf.cast(images, tf.float32), training=training)

    def plan(self, loss, options):
        content = content_loss(content_spec(options.content))
        # Checked here, when the trainer is built: before fit clears or writes anything.
        problem = content.check_shape(self.image_shape) if isinstance(content, FeatureContent) else None
        if problem:
            raise UserError(f"loss.content_weights / loss.content_layer: {problem}")

        def g_losses(ctx, sr):
            terms = {"content_loss": content(sr, ctx.batch["hr"])}
            if self.discriminator is not None:
                logits = self.discriminator(sr, training=True)
                adversarial = loss.g_loss(logits, options.g_target) if loss.uses_targets else loss.g_loss(logits)
                terms["adv_loss"] = self.adversarial_weight * adversarial
            return Losses(terms)

        def d_losses(ctx, sr):
            hr = ctx.batch["hr"]
            seeds = tf.random.experimental.stateless_split(ctx.seed, 2)
            real_logits, fake_logits = self.discriminator(hr, training=True), self.discriminator(tf.stop_gradient(sr), training=True)
            if loss.uses_targets:
                adversarial = loss.d_loss(real_logits, fake_logits, *ctx.targets(tf.shape(hr)[0], seeds[0]))
            else:
                adversarial = loss.d_loss(real_logits, fake_logits)
            terms = {"adv_loss": adversarial}
            terms.update(ctx.penalty(lambda x: self.discriminator(x, training=True), hr, sr, seeds[1]))
            return Losses(terms, {"real": tf.reduce_mean(tf.sigmoid(real_logits)), "fake": tf.reduce_mean(tf.sigmoid(fake_logits))})

        def forward(ctx):
            return self.generator(ctx.batch["lr"], training=True)

        g_update = Update("generator", lambda ctx: g_losses(ctx, forward(ctx)))
        if self.discriminator is None:
            return Plan((g_update,))

        def joint(ctx):  # one generator pass feeds both updates (the tutorials' step)
            sr = forward(ctx)
            return {"discriminator": d_losses(ctx, sr), "generator": g_losses(ctx, sr)}

        # The book's SRGAN draws a new batch for G's step; we follow the paper's alternating minibatch
        # updates on one batch.
        d_update = Update("discriminator", lambda ctx: d_losses(ctx, forward(ctx)), repeat=options.d_steps)
        return Plan((d_update, Update("generator", g_update.loss, fresh_data=False)), joint=joint)

    def grid_inputs(self, n, seed, source):
        examples = source.examples(spread(len(source), min(n, self.grid_pairs)))
        if isinstance(examples["hr"], list):  # pairs of different sizes (real LR folders): their common top-left window
            h = min(x.shape[0] for x in examples["lr"])
            w = min(x.shape[1] for x in examples["lr"])
            s = self.scale
            examples = {"lr": np.stack([x[:h, :w] for x in examples["lr"]]), "hr": np.stack([x[:h * s, :w * s] for x in examples["hr"]])}
        return examples

    def grid_images(self, inputs, networks):
        """Rows of LR (nearest-upscaled) | bicubic | SR | HR."""
        lr, hr = inputs["lr"], inputs["hr"]
        nearest = np.repeat(np.repeat(lr, self.scale, axis=1), self.scale, axis=2)
        bicubic = bicubic_upscale(tf.constant(lr), self.scale).numpy()
        return self.grid_rows([(nearest, bicubic, self.translate(lr, "a2b", networks).numpy(), hr)])


class SuperResolutionFamily(Family):
    roles = ("lr", "hr")
    uses_content = True
    unsupported = {
        "train.diffaugment": "DiffAugment would move HR and SR apart from the LR input; super-resolution uses data.hr_size crops with flips and rotations",
        "loss.feature_matching": "feature matching is defined for one-generator noise models",
        "data.pairs": "super-resolution makes its own (LR, HR) pairs at model.scale; drop data.pairs",
    }

    def source(self, source, params, data_cfg, split):
        held_out = split == "test"
        if isinstance(source, SRFolderPairs):  # real LR images (data.loader: sr_folders)
            if source.scale != params["scale"]:
                raise UserError(f"model.scale {params['scale']}: the LR images of {source.description} are 1/{source.scale} of their HR images; "
                                f"set model.scale: {source.scale}")
            return dataclasses.replace(source, hr_size=None if held_out else data_cfg["hr_size"], augment=not held_out)
        if not isinstance(source, ImageSource) or set(source.roles) - {"image", "label"}:
            raise UserError(f"model.family {params['family']!r} makes (LR, HR) pairs from images or reads real pairs (data.loader: sr_folders); "
                            f"{source.description} provides {', '.join(source.roles)}")
        # Held-out images are scored whole; training batches are random crops with flips and rotations.
        return sr_pairs(source, params["scale"], None if held_out else data_cfg["hr_size"], augment=not held_out)

    def check(self, params, image_shape):
        if None not in image_shape[:2] and min(image_shape[:2]) < params["scale"]:
            return f"images smaller than model.scale {params['scale']} cannot be downscaled"
        return None

    def generator(self, params, image_shape):
        return srresnet_generator(image_shape[-1], params["scale"], width=params["width"], blocks=params["blocks"])
