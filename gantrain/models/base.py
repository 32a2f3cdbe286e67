"""What a model family provides: its config schema, a shape check and a builder of its model.

A family file subclasses :class:`Family` (registered with ``MODELS.register(name, schema=...)``)
whose ``build`` returns a :class:`FamilyModel`: the named networks, the optimizer groups that
train them, the data roles and the plan of one training step (models/plan.py). The generic
trainer executes that plan; it never asks which family it trains.

:class:`GANModel` is the FamilyModel of the one-generator/one-discriminator families: latent
``{"z"}``, D returns ``{"logits"}``, and the adversarial step of models/adversarial.py, which a
subclass extends with labels, codes or extra loss terms through the hooks below.
"""

from __future__ import annotations

import abc

import keras
import tensorflow as tf
from keras.tree import flatten as tree_flatten

from gantrain.models.adversarial import adversarial_plan
from gantrain.models.plan import Group, Plan
from gantrain.schema import Field

# The optimizer groups of the one-G/one-D families, in the order their learning rates are logged.
GAN_GROUPS = (Group("generator", "g", ("generator",)), Group("discriminator", "d", ("discriminator",)))


class FamilyModel(abc.ABC):
    """What the generic trainer, the loop and the commands need from a built family.

    ``networks``: name -> keras.Model; ``groups``: the optimizer groups (each network in one);
    ``averaged``: the networks ``train.ema_decay`` keeps an average of (grids and sampling use the
    averages). The capability flags are declared here, never discovered with hasattr.
    """

    conditional = False  # True when G takes a class label (sampling accepts --label)
    labels_are_classes = True  # False when the "label" is an unsupervised code (InfoGAN)
    uses_labeled_stream = False  # True when the D loss needs a separate stream of labelled batches
    can_classify = False  # True when D has a class head for real images (classify(images) -> logits; sgan)
    has_codes = False  # True when G has latent codes to traverse (traversal(code, steps, seed); infogan)
    can_translate = False  # True when a generator maps input images to output images (image-to-image families)
    can_upscale = False  # True when the translator enlarges its input by ``scale`` (super-resolution: gantrain upscale)
    generates = False  # True when a "generator" network draws images from latent inputs alone (sample, eval metrics)
    class_names: list = []  # set from the run's meta.json when a trained model is loaded
    groups: tuple[Group, ...] = ()
    averaged: tuple[str, ...] = ()

    @property
    @abc.abstractmethod
    def networks(self) -> dict[str, keras.Model]:
        """Every network the family trains, by name (checkpoints key on these names)."""

    @abc.abstractmethod
    def plan(self, loss, options) -> Plan:
        """The updates of one training step, built from the configured loss pair and TrainOptions."""

    def sample_latent(self, rng: tf.random.Generator, batch: int, labels=None) -> dict:
        """The latent inputs of one step, drawn from the trainer's generator (none by default)."""
        return {}

    def state(self) -> dict:
        """Variables of the family's own algorithm a checkpoint must carry (name -> list), e.g. a history of fakes."""
        return {}

    @abc.abstractmethod
    def grid_inputs(self, n: int, seed: int, source) -> dict:
        """Fixed inputs of the sample grids written during training (noise, or images from ``source``)."""

    @abc.abstractmethod
    def grid_images(self, inputs: dict, networks: dict):
        """(images in [-1, 1], rows or None) of a grid from ``inputs``; ``networks`` has the averages substituted."""


class GANModel(FamilyModel):
    generates = True
    groups = GAN_GROUPS
    averaged = ("generator",)

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int, num_classes: int = 0):
        self.generator = generator  # latent inputs -> images (batch, H, W, C) in [-1, 1]
        self.discriminator = discriminator  # images (and labels) -> logits
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self._feature_model = None

    @property
    def networks(self) -> dict[str, keras.Model]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def plan(self, loss, options) -> Plan:
        return adversarial_plan(self, loss, options)

    def enable_features(self, layer: str | None = None) -> None:
        """Make D also return intermediate features (for feature matching).

        ``layer`` names a layer of D whose output is used; by default the input of D's first output
        head, i.e. the penultimate representation. The wrapper shares D's variables.
        """
        D = self.discriminator
        if layer is not None:
            features = D.get_layer(layer).output
        else:
            head = next(l for l in reversed(D.layers) if any(o is l.output for o in tree_flatten(D.outputs)))
            features = head.input
        self._feature_model = keras.Model(D.inputs, [*tree_flatten(D.outputs), features])

    def call_discriminator(self, inputs, training: bool):
        """D's outputs (as D returns them) and the feature tensor, or None when features are off."""
        if self._feature_model is None:
            return self.discriminator(inputs, training=training), None
        *outs, features = self._feature_model(inputs, training=training)
        return (outs[0] if len(outs) == 1 else outs), features

    # -- latent ------------------------------------------------------------------------------
    def sample_latent(self, rng: tf.random.Generator, batch: int, labels=None) -> dict:
        """Generator inputs for ``batch`` samples. ``labels`` fixes the class (or code) when given."""
        return {"z": rng.normal([batch, self.latent_dim])}

    def generator_inputs(self, latent: dict):
        return latent["z"]

    def generate(self, latent: dict, training: bool, generator: keras.Model | None = None):
        """Images from ``latent``; ``generator`` overrides G (e.g. its EMA copy for sampling)."""
        return (generator or self.generator)(self.generator_inputs(latent), training=training)

    # -- discriminator ------------------------------------------------------------------------
    def discriminate(self, images, labels, training: bool) -> dict:
        """D's outputs; ``logits`` is the real/fake logit every adversarial loss uses."""
        logits, features = self.call_discriminator(images, training)
        return {"logits": logits, "features": features}

    # -- extra loss terms (name -> scalar), added to the adversarial losses -------------------
    def d_extra_losses(self, real_out: dict, fake_out: dict, real_labels, latent: dict, labeled=None) -> dict:
        return {}

    def g_extra_losses(self, fake_out: dict, latent: dict) -> dict:
        return {}

    # -- sampling grids -----------------------------------------------------------------------
    def grid_latent(self, n: int, seed: int) -> tuple[dict, int | None]:
        """Latent inputs for a fixed sample grid, and its row count (None: square-ish).

        Conditional models override this to put one class per row.
        """
        rng = tf.random.Generator.from_seed(seed)
        return self.sample_latent(rng, n), None

    def grid_inputs(self, n: int, seed: int, source) -> dict:
        latent, rows = self.grid_latent(n, seed)
        return {"latent": latent, "rows": rows}

    def grid_images(self, inputs: dict, networks: dict):
        return self.generate(inputs["latent"], training=False, generator=networks["generator"]).numpy(), inputs["rows"]


class Family(abc.ABC):
    """Base class: override :meth:`build`, and :meth:`check` when some image shapes are impossible.

    ``roles``: the data roles one training step reads from every batch (data/source.py); ``fit``
    and ``validate`` refuse data that cannot provide them. ``extra_optimizers``: optimizer groups
    beyond ``generator`` and ``discriminator`` (name -> one-line doc); the config then takes an
    ``optimizer.<name>`` section for each (Adam by default).
    """

    roles: tuple[str, ...] = ("image",)
    extra_optimizers: dict[str, str] = {}
    # Config keys (dotted) this family cannot honour, with the reason: validation refuses any value
    # but the key's default, in one line.
    unsupported: dict[str, str] = {}
    # The family's own defaults for general keys (dotted), used where the config does not set them
    # (pix2pix and CycleGAN train at batch 1, as their papers).
    defaults: dict = {}
    # Whether the family's loss has a content term (loss.content*: super-resolution); the others refuse those keys.
    uses_content = False

    def source(self, source, params: dict, data_cfg: dict, split: str | None):
        """The data this family trains on, made from the loader's ``source`` (``split``: None for
        training, "test" for held-out evaluation). Most families take it as it is; super-resolution
        turns images into (LR, HR) pairs at its own scale."""
        return source

    def check(self, params: dict, image_shape: tuple) -> str | None:
        """Return why this family cannot make ``image_shape`` images, or None if it can."""
        return None

    def conflicts(self, params: dict) -> dict[str, str]:
        """Model keys whose values do not go together, each with why and what to do (none by default)."""
        return {}

    def params_for_size(self, params: dict, trained_shape: tuple) -> dict:
        """Parameters that rebuild the trained networks' weights at another image size (fully
        convolutional families): every size-derived default fixed at its trained value."""
        return params

    @abc.abstractmethod
    def build(self, params: dict, image_shape: tuple, num_classes: int) -> FamilyModel:
        """Build the networks for ``image_shape`` images (and ``num_classes`` classes, 0 = unlabelled)."""


LATENT_DIM = Field(100, "size of the noise vector z ~ N(0, 1)", "int", min=1, max=4096)
LEAKY_SLOPE = Field(0.2, "LeakyReLU negative slope", "float", min=0, max=1)
