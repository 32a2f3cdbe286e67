"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN.

G: a U-Net from the input image to the target (skip connections; dropout as the only noise, active
in training, as the paper). D: a 70x70 PatchGAN that sees the target (or G's output) concatenated
with the input and scores each patch. Losses: G minimises the adversarial term plus ``l1_weight``
(lambda = 100) times the L1 distance to the target; D the adversarial pair, halved as in the paper
(``image_to_image.reference_scales``). Adam 2e-4, beta_1 0.5, batch 1 in the paper: with batch
norm at batch 1 in training mode, the normalisation is instance normalisation, as the paper notes.

Data roles: ``source`` (the input) and ``target``. A one-channel input for a colour target is
repeated across channels before G and D. ``output: chroma`` is colourisation as the reference
implementation's colorization mode does it (L -> ab in Lab there): G sees the luminance and predicts
only the two chroma channels, and the image is assembled from the input's luminance and G's chroma.
We use YUV (BT.601) instead of Lab because its Y is exactly the grey input ``data.pairs: grey``
derives, so the luminance of every output is the input's and G learns only colour.

Update: ``train.update: auto`` gives the TensorFlow pix2pix tutorial's step (one forward pass of G,
D's and G's gradients from it); ``alternating`` updates D, then G through the updated D with a fresh
forward pass (a new dropout mask).
"""

from __future__ import annotations

import tensorflow as tf

from gantrain.models.base import GAN_GROUPS, Family
from gantrain.models.image_to_image import TranslationModel, match_channels, reference_scales, spread
from gantrain.models.plan import Losses, Plan, Update
from gantrain.models.translation import check_patchgan_shape, check_unet_shape, patchgan_discriminator, unet_default_depth, unet_generator
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "ngf": Field(64, "generator base width (the U-Net's first layer; 64 in the paper)", "int", min=1),
    "ndf": Field(64, "discriminator base width (64 in the paper)", "int", min=1),
    "depth": Field(None, "U-Net downsamplings (default: log2 of the shorter image side, at most 8: 8 at 256x256, 5 at 32x32)", "int", min=1, max=10, nullable=True),
    "d_layers": Field(3, "PatchGAN stride-2 layers: 3 = 70x70 patches (the paper), 2 = 34x34, 1 = 16x16", "int", min=1, max=6),
    "g_norm": Field("batch", "normalisation in G: batch (the paper; instance normalisation at batch 1), instance or none", "str", choices=("batch", "instance", "none")),
    "d_norm": Field("batch", "normalisation in D: batch (the paper), instance or none", "str", choices=("batch", "instance", "none")),
    "dropout": Field(0.5, "dropout in the first three decoder blocks of G, active in training: the paper's only noise", "float", min=0, max=0.95),
    "l1_weight": Field(100.0, "lambda: weight of the L1 distance to the target in G's loss (100 in the paper)", "float", min=0),
    "output": Field("image", "image: G makes the target image (the paper); chroma: colourisation, G sees the luminance and predicts the two "
                    "chroma channels (YUV), the image keeps the input's luminance (the reference's colorization mode, in YUV)", "str", choices=("image", "chroma")),
}

# Largest |U| and |V| of BT.601 YUV for RGB in [0, 1]: G's tanh output is scaled to these.
UV_RANGE = (0.436, 0.615)

class Pix2PixModel(TranslationModel):
    groups = GAN_GROUPS
    averaged = ("generator",)
    translators = {"a2b": "generator"}

    def __init__(self, generator, discriminator, image_shape, l1_weight: float, chroma: bool = False):
        super().__init__(image_shape)
        self.generator, self.discriminator, self.l1_weight, self.chroma = generator, discriminator, l1_weight, chroma

    def translate(self, images, direction="a2b", networks=None, training=False):
        x = self._input(images)
        out = (networks or self.networks)["generator"](x, training=training)
        return assemble(x, out) if self.chroma else out

    def averaged_inputs(self, batch):
        # G's own input (the luminance alone when it predicts chroma), not input_roles' channel match.
        return {"generator": self._input(batch["source"])}

    def _input(self, images):
        """What G and D are conditioned on: the luminance (chroma output), else the input with the target's channels."""
        if not self.chroma:
            return match_channels(images, self.image_shape[-1])
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:
            return images
        return tf.image.rgb_to_yuv(images / 2.0 + 0.5)[..., :1] * 2.0 - 1.0

    @property
    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def plan(self, loss, options):
        g_scale, d_scale = reference_scales(loss)

        def d_update(ctx):
            source, target, fake = self._forward(ctx)
            return self._d_losses(loss, d_scale, ctx, source, target, fake)

        def g_update(ctx):
            source, target, fake = self._forward(ctx)
            return self._g_losses(loss, g_scale, options, source, target, fake)

        def joint(ctx):  # the TF tutorial's train_step: one G forward pass feeds both losses
            source, target, fake = self._forward(ctx)
            return {"discriminator": self._d_losses(loss, d_scale, ctx, source, target, fake),
                    "generator": self._g_losses(loss, g_scale, options, source, target, fake)}

        return Plan((Update("discriminator", d_update, repeat=options.d_steps), Update("generator", g_update, fresh_data=False)), joint=joint)

    def _forward(self, ctx):
        source = self._input(ctx.batch["source"])
        fake = self.generator(source, training=True)
        return source, ctx.batch["target"], assemble(source, fake) if self.chroma else fake

    def _d_losses(self, loss, scale, ctx, source, target, fake) -> Losses:
        seeds = tf.random.experimental.stateless_split(ctx.seed, 2)
        real_logits = self.discriminator([target, source], training=True)
        fake_logits = self.discriminator([fake, source], training=True)
        if loss.uses_targets:
            adversarial = loss.d_loss(real_logits, fake_logits, *ctx.targets(tf.shape(target)[0], seeds[0]))
        else:
            adversarial = loss.d_loss(real_logits, fake_logits)
        terms = {"adv_loss": scale * adversarial}
        terms.update(ctx.penalty(lambda x: self.discriminator([x, source], training=True), target, fake, seeds[1]))
        return Losses(terms, {"real": _mean_sigmoid(real_logits), "fake": _mean_sigmoid(fake_logits)})

    def _g_losses(self, loss, scale, options, source, target, fake) -> Losses:
        fake_logits = self.discriminator([fake, source], training=True)
        adversarial = loss.g_loss(fake_logits, options.g_target) if loss.uses_targets else loss.g_loss(fake_logits)
        l1 = tf.reduce_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(fake, tf.float32)))
        return Losses({"adv_loss": scale * adversarial, "l1_loss": self.l1_weight * l1})

    def grid_inputs(self, n, seed, source):
        return source.examples(spread(len(source), min(n, self.grid_pairs)))  # unjittered: the same images every run

    def grid_images(self, inputs, networks):
        output = self.translate(inputs["source"], "a2b", networks).numpy()
        return self.grid_rows([(inputs["source"], output, inputs["target"])])


def assemble(luma, chroma):
    """RGB in [-1, 1] from the luminance (one channel in [-1, 1]) and G's two chroma channels (tanh, scaled to U and V)."""
    y = tf.cast(luma, tf.float32) / 2.0 + 0.5
    uv = tf.cast(chroma, tf.float32) * tf.constant(UV_RANGE)
    rgb = tf.image.yuv_to_rgb(tf.concat([y, uv], axis=-1))
    return tf.clip_by_value(rgb, 0.0, 1.0) * 2.0 - 1.0


def _mean_sigmoid(logits):
    return tf.reduce_mean(tf.sigmoid(tf.cast(logits, tf.float32)))


class Pix2Pix(Family):
    roles = ("source", "target")
    defaults = {"data.batch_size": 1}  # the paper: batch 1, where batch norm is instance norm
    unsupported = {
        "train.diffaugment": "DiffAugment would transform the input and the target differently; pix2pix uses data.jitter instead",
        "loss.feature_matching": "feature matching is defined for one-generator noise models",
    }

    def check(self, params, image_shape):
        if params["output"] == "chroma" and image_shape[-1] != 3:
            return "model.output: chroma colourises: it needs colour (3-channel) targets; set data.channels: 3"
        return check_unet_shape(image_shape, params["depth"]) or check_patchgan_shape(image_shape, params["d_layers"])

    def params_for_size(self, params, trained_shape):
        return {**params, "depth": params["depth"] or unet_default_depth(*trained_shape[:2])}

    def build(self, params, image_shape, num_classes):
        chroma = params["output"] == "chroma"
        channels = image_shape[-1]
        given = 1 if chroma else channels  # G and D are conditioned on the luminance alone when G predicts chroma
        generator = unet_generator((*image_shape[:2], given), 2 if chroma else channels, ngf=params["ngf"], depth=params["depth"],
                                   norm=params["g_norm"], dropout=params["dropout"], name="generator")
        discriminator = patchgan_discriminator(image_shape, ndf=params["ndf"], n_layers=params["d_layers"], norm=params["d_norm"],
                                               condition_channels=given, name="discriminator")
        return Pix2PixModel(generator, discriminator, image_shape, params["l1_weight"], chroma)


MODELS.register("pix2pix", description="pix2pix: paired translation, U-Net G + 70x70 PatchGAN D, adversarial + 100 x L1, batch 1 by default (Isola et al. 2017)", schema=SCHEMA)(Pix2Pix())
