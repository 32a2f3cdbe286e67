"""What the image-to-image families (pix2pix, cyclegan) share: translation, grids, channel matching.

A translation model maps images to images with one network per direction (``translators``:
``a2b`` -> network name). Inputs with fewer channels than the network takes (a grey input for an
RGB target, as in colourisation) are repeated across channels, so a grey photograph can be fed to
any model; the network always sees the target's channel count.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gantrain.losses import least_squares_g_loss
from gantrain.models.base import FamilyModel


class TranslationModel(FamilyModel):
    can_translate = True
    translators: dict[str, str] = {}  # direction (a2b, b2a) -> the network that translates that way
    input_roles: dict[str, str] = {}  # averaged network -> the data role it translates from in training
    grid_pairs = 6  # examples per sample grid (each a row of three images)

    def __init__(self, image_shape: tuple):
        self.image_shape = tuple(image_shape)

    def averaged_inputs(self, batch: dict) -> dict:
        """What each averaged network is fed in a training step on ``batch`` (a dict keyed by data role):
        network name -> input images. The EMA copies' standing statistics run over these."""
        return {net: match_channels(batch[role], self.image_shape[-1]) for net, role in self.input_roles.items()}

    def translate(self, images, direction: str = "a2b", networks: dict | None = None, training: bool = False):
        """Images in [-1, 1] (N, H, W, C') -> translated images (N, H, W, C); ``networks`` overrides (EMA copies)."""
        net = (networks or self.networks)[self.translators[direction]]
        return net(match_channels(images, self.image_shape[-1]), training=training)

    def grid_rows(self, triples) -> tuple[np.ndarray, int]:
        """Groups of columns, e.g. [input, output, target], each (n, H, W, C) -> (images for make_grid, row count)."""
        rows = [np.concatenate([np.asarray(match_channels(x, self.image_shape[-1])) for x in row], axis=0) for row in triples]
        images = np.concatenate(rows, axis=0)
        # Interleave so that each grid row is one example: input | output | target.
        n, k = len(triples[0][0]), len(triples[0])
        order = np.array([[r * k * n + c * n + i for c in range(k)] for r in range(len(triples)) for i in range(n)]).ravel()
        return images[order], len(triples) * n


def match_channels(images, channels: int):
    """Repeat a one-channel input to ``channels`` (grey -> RGB); refuse other mismatches."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return tf.repeat(images, channels, axis=-1)
    raise ValueError(f"the model takes {channels}-channel images, got {have} channels")


def spread(count: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``count`` items: fixed grid examples that are not all of one
    class when the files are sorted by class."""
    return np.linspace(0, count - 1, min(k, count)).round().astype(int)


def reference_scales(loss) -> tuple[float, float]:
    """(G, D) factors that turn the registry's loss pair into the pix2pix / CycleGAN references' GAN loss.

    The references (Isola et al.; Zhu et al.) weigh plain MSE or BCE for G against lambda x L1, and
    halve D's summed real and fake terms. The registry's least-squares pair carries LSGAN's 1/2 on
    both (Mao et al.): its G loss is half the references' and its D loss already the halved sum. The
    BCE-style pairs are the plain sums. So lambda = 100 (pix2pix) and 10 (CycleGAN) weigh the
    reconstruction terms exactly as in the papers with any loss.
    """
    return (2.0, 1.0) if loss.g_loss is least_squares_g_loss else (1.0, 0.5)
