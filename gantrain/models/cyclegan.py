"""CycleGAN (Zhu et al. 2017): unpaired translation between two domains A and B.

Networks: G_AB and G_BA (ResNet generators, 6 blocks at 128x128 and below, 9 at 256; U-Net as an
option) and D_A, D_B (70x70 PatchGANs), instance normalisation. Losses, as the paper and its
reference implementation:

* G (one optimizer for both generators): the adversarial terms ``D_B(G_AB(a))`` and
  ``D_A(G_BA(b))`` toward "real", plus ``cycle_weight`` (lambda = 10) x the cycle L1
  ``|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|``, plus ``identity_weight`` (0.5) x lambda x the
  identity L1 ``|G_AB(b) - b| + |G_BA(a) - a|`` (``identity_weight: 0`` switches it off);
* D (one optimizer for both critics): each critic's real/fake pair, halved, on fakes drawn from a
  history of ``pool_size`` (50) earlier fakes per domain (Shrivastava et al.), which a checkpoint
  carries, so a resumed run continues with the same pool.

The loss pair is the config's (``loss.name: least_squares`` in the paper); see
``image_to_image.reference_scales`` for how its constants match the reference's.

Update: ``train.update: auto`` gives the reference's step (G's and D's gradients from one forward
pass: D scores the fakes G made before its own update, as ``optimize_parameters`` does);
``alternating`` updates G, then D on fakes from the updated generators.
"""

from __future__ import annotations

import tensorflow as tf

from gantrain.models.base import Family
from gantrain.models.image_pool import ImagePool
from gantrain.models.image_to_image import TranslationModel, reference_scales, spread
from gantrain.models.plan import Group, Losses, Plan, Update
from gantrain.models.translation import (check_patchgan_shape, check_resnet_shape, check_unet_shape, patchgan_discriminator,
                                         resnet_generator, unet_default_depth, unet_generator)
from gantrain.registry import MODELS
from gantrain.schema import Field

SCHEMA = {
    "generator": Field("resnet", "generator architecture: resnet (the paper) or unet", "str", choices=("resnet", "unet")),
    "blocks": Field(None, "ResNet blocks (default: 6 below 256x256, 9 from 256, as the paper)", "int", min=1, max=32, nullable=True),
    "depth": Field(None, "U-Net generator: downsamplings (default: log2 of the shorter side, at most 8)", "int", min=2, max=10, nullable=True),
    "ngf": Field(64, "generator base width (64 in the paper)", "int", min=1),
    "ndf": Field(64, "discriminator base width (64 in the paper)", "int", min=1),
    "d_layers": Field(3, "PatchGAN stride-2 layers: 3 = 70x70 patches (the paper), 2 = 34x34, 1 = 16x16", "int", min=1, max=6),
    "norm": Field("instance", "normalisation in G and D: instance (the paper), batch or none", "str", choices=("instance", "batch", "none")),
    "cycle_weight": Field(10.0, "lambda: weight of the cycle-consistency L1 (10 in the paper)", "float", min=0),
    "identity_weight": Field(0.5, "identity L1 weight as a fraction of lambda (0.5 in the paper's photo tasks; 0 = off)", "float", min=0),
    "pool_size": Field(50, "earlier fakes kept per domain for D's updates (50 in the paper; 0 = D sees only the newest fakes)", "int", min=0, max=1000),
}


class CycleGANModel(TranslationModel):
    groups = (Group("generator", "g", ("g_ab", "g_ba")), Group("discriminator", "d", ("d_a", "d_b")))
    averaged = ("g_ab", "g_ba")
    translators = {"a2b": "g_ab", "b2a": "g_ba"}
    input_roles = {"g_ab": "domain_a", "g_ba": "domain_b"}  # each generator's own source domain

    def __init__(self, networks: dict, image_shape, cycle_weight: float, identity_weight: float, pool_size: int, per_image: bool = True):
        super().__init__(image_shape)
        self._networks = networks
        self.per_image = per_image  # the networks normalise each image on its own (instance norm or none)
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.pools = {"a": ImagePool(image_shape, capacity=pool_size, name="pool_a"), "b": ImagePool(image_shape, capacity=pool_size, name="pool_b")}

    @property
    def networks(self):
        return self._networks

    def state(self) -> dict:
        """The fake-image histories: checkpointed with the networks, so a resume draws from the same pool."""
        return {"pool_a": self.pools["a"].variables, "pool_b": self.pools["b"].variables}

    def plan(self, loss, options):
        g_scale, d_scale = reference_scales(loss)

        def g_update(ctx):
            out = self._forward(ctx, identity=bool(self.identity_weight))
            fake_logits = {"a": self._run("d_a", out["fake_a"])[0], "b": self._run("d_b", out["fake_b"])[0]}
            return self._g_losses(loss, g_scale, options, out, fake_logits)

        def d_update(ctx):
            out = self._forward(ctx, identity=False)
            pooled = self._pooled(ctx, out)
            logits = {d: self._run(f"d_{d}", out[d], pooled[d]) for d in "ab"}
            return self._d_losses(loss, d_scale, ctx, logits)

        def joint(ctx):  # the reference: D scores the fakes of this forward pass, made before G's update
            out = self._forward(ctx, identity=bool(self.identity_weight))
            pooled = self._pooled(ctx, out)
            # One critic pass per domain scores the reals and pooled fakes (D's loss) and the newest fakes
            # (G's loss); each tape differentiates its own group's loss, so the shared pass is exact.
            logits = {d: self._run(f"d_{d}", out[d], pooled[d], out[f"fake_{d}"]) for d in "ab"}
            return {"generator": self._g_losses(loss, g_scale, options, out, {d: logits[d][2] for d in "ab"}),
                    "discriminator": self._d_losses(loss, d_scale, ctx, {d: logits[d][:2] for d in "ab"})}

        return Plan((Update("generator", g_update), Update("discriminator", d_update, fresh_data=False)), joint=joint)

    def _run(self, name: str, *inputs):
        """``networks[name]`` on each input, training mode. With per-image normalisation (instance or
        none) the inputs go through as one concatenated batch, which gives each image the same output
        as a call of its own and keeps a CPU's cores busier than several small calls (this is what
        brings the pooled step level with the tutorial's pool-free one, BENCHMARKS.md); batch norm's
        statistics would mix the inputs, so there each is a call of its own."""
        net = self.networks[name]
        if len(inputs) == 1 or not self.per_image:
            return [net(x, training=True) for x in inputs]
        sizes = [tf.shape(x)[0] for x in inputs]
        return tf.split(net(tf.concat([tf.cast(x, tf.float32) for x in inputs], axis=0), training=True), sizes, axis=0)

    def _forward(self, ctx, identity: bool) -> dict:
        """The reals, the translations (``fake_b`` = G_AB(a)) and, with ``identity``, G_AB(b) and G_BA(a)."""
        a, b = ctx.batch["domain_a"], ctx.batch["domain_b"]
        if identity:
            (fake_b, same_b), (fake_a, same_a) = self._run("g_ab", a, b), self._run("g_ba", b, a)
            return {"a": a, "b": b, "fake_a": fake_a, "fake_b": fake_b, "same_a": same_a, "same_b": same_b}
        return {"a": a, "b": b, "fake_a": self._run("g_ba", b)[0], "fake_b": self._run("g_ab", a)[0]}

    def _pooled(self, ctx, out) -> dict:
        """Each domain's fakes swapped through its history pool, detached: D's update must not reach into the generators."""
        seeds = tf.random.experimental.stateless_split(ctx.seed, 4)  # [0], [1]: the pools; [2], [3]: D's targets
        return {d: self.pools[d].query(tf.stop_gradient(tf.cast(out[f"fake_{d}"], tf.float32)), seeds[i]) for i, d in enumerate("ab")}

    def _g_losses(self, loss, scale, options, out, fake_logits) -> Losses:
        def toward_real(logits):
            return scale * (loss.g_loss(logits, options.g_target) if loss.uses_targets else loss.g_loss(logits))

        a, b = out["a"], out["b"]
        terms = {
            "adv_loss": toward_real(fake_logits["b"]) + toward_real(fake_logits["a"]),
            "cycle_loss": self.cycle_weight * (_l1(self._run("g_ba", out["fake_b"])[0], a) + _l1(self._run("g_ab", out["fake_a"])[0], b)),
        }
        if self.identity_weight:
            terms["identity_loss"] = self.identity_weight * self.cycle_weight * (_l1(out["same_b"], b) + _l1(out["same_a"], a))
        return Losses(terms)

    def _d_losses(self, loss, scale, ctx, logits) -> Losses:
        """Each critic's pair: ``logits[d]`` = (on the reals of domain d, on its pooled fakes)."""
        seeds = tf.random.experimental.stateless_split(ctx.seed, 4)

        def pair(real_logits, fake_logits, seed):
            if loss.uses_targets:
                return scale * loss.d_loss(real_logits, fake_logits, *ctx.targets(tf.shape(real_logits)[0], seed))
            return scale * loss.d_loss(real_logits, fake_logits)

        return Losses({"a_loss": pair(*logits["a"], seeds[2]), "b_loss": pair(*logits["b"], seeds[3])})

    def grid_inputs(self, n, seed, source):
        k = min(n, self.grid_pairs // 2, len(source.domain_a), len(source.domain_b))
        return source.examples(spread(len(source.domain_a), k), spread(len(source.domain_b), k))

    def grid_images(self, inputs, networks):
        a, b = inputs["domain_a"], inputs["domain_b"]
        fake_b, fake_a = self.translate(a, "a2b", networks).numpy(), self.translate(b, "b2a", networks).numpy()
        return self.grid_rows([(a, fake_b, self.translate(fake_b, "b2a", networks).numpy()),
                               (b, fake_a, self.translate(fake_a, "a2b", networks).numpy())])


def default_blocks(image_shape) -> int:
    """The paper's ResNet depth: 6 blocks for 128x128 (and smaller) images, 9 for 256x256 and larger."""
    return 9 if min(image_shape[:2]) >= 256 else 6


def _l1(x, y):
    return tf.reduce_mean(tf.abs(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)))


class CycleGan(Family):
    roles = ("domain_a", "domain_b")
    defaults = {"data.batch_size": 1}  # the paper's batch size
    unsupported = {
        "train.diffaugment": "DiffAugment is not part of CycleGAN; use data.jitter (resize, crop, flip) as the paper",
        "loss.feature_matching": "feature matching is defined for one-generator noise models",
        "loss.penalty": "the critics see pooled fakes of earlier generators; a gradient penalty between them and the reals is not CycleGAN",
    }

    def check(self, params, image_shape):
        g = check_resnet_shape(image_shape) if params["generator"] == "resnet" else check_unet_shape(image_shape, params["depth"])
        return g or check_patchgan_shape(image_shape, params["d_layers"])

    def params_for_size(self, params, trained_shape):
        h, w = trained_shape[:2]
        return {**params, "blocks": params["blocks"] or default_blocks(trained_shape), "depth": params["depth"] or unet_default_depth(h, w)}

    def build(self, params, image_shape, num_classes):
        channels, norm = image_shape[-1], params["norm"]
        blocks = params["blocks"] or default_blocks(image_shape)

        def generator(name):
            if params["generator"] == "resnet":
                return resnet_generator(image_shape, channels, ngf=params["ngf"], blocks=blocks, norm=norm, name=name)
            return unet_generator(image_shape, channels, ngf=params["ngf"], depth=params["depth"], norm=norm, dropout=0.0, name=name)

        def critic(name):
            return patchgan_discriminator(image_shape, ndf=params["ndf"], n_layers=params["d_layers"], norm=norm, name=name)

        networks = {"g_ab": generator("g_ab"), "g_ba": generator("g_ba"), "d_a": critic("d_a"), "d_b": critic("d_b")}
        return CycleGANModel(networks, image_shape, params["cycle_weight"], params["identity_weight"], params["pool_size"], per_image=norm != "batch")


MODELS.register("cyclegan", description="CycleGAN: unpaired translation, two ResNet G + two PatchGAN D, cycle and identity L1, batch 1 by default (Zhu et al. 2017)", schema=SCHEMA)(CycleGan())
