"""What a model family provides: its config schema, a shape check and a builder.

A family file subclasses :class:`Family` and registers an instance with
``MODELS.register(name, schema=...)``. The trainer only ever sees the built :class:`Networks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from gantrain.schema import Field


@dataclass
class Networks:
    generator: keras.Model  # z (batch, latent_dim) -> images (batch, H, W, C) in [-1, 1]
    discriminator: keras.Model  # images -> logits (batch, 1)
    latent_dim: int


class Family:
    """Base class: override :meth:`build`, and :meth:`check` when some image shapes are impossible."""

    def check(self, params: dict, image_shape: tuple) -> str | None:
        """Return why this family cannot make ``image_shape`` images, or None if it can."""
        return None

    def build(self, params: dict, image_shape: tuple, num_classes: int) -> Networks:
        raise NotImplementedError  # every registered family overrides this; base is abstract


LATENT_DIM = Field(100, "size of the noise vector z ~ N(0, 1)", "int", min=1, max=4096)
LEAKY_SLOPE = Field(0.2, "LeakyReLU negative slope", "float", min=0, max=1)
