"""``upscale`` and the super-resolution ``eval``: a trained SR generator over images of any size.

:class:`Upscaler` restores a super-resolution run's generator (its EMA copy when the run kept one)
and applies it in overlapping tiles (gantrain/tiles.py), so a 2048x2048 photograph needs the memory
of one tile, not of the whole image's feature maps.

The evaluation follows the SR literature (Ledig et al. 2017 and the benchmarks since): each HR
image is cropped to a multiple of the scale, downscaled bicubically (with antialiasing) to its LR
input, upscaled by the model and, as the baseline, bicubically; PSNR and SSIM are taken on the Y
channel of YCbCr of the 8-bit images with ``scale`` pixels of border removed, per image, then
averaged.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from gantrain.data.sr_pairs import SRFolderPairs, bicubic_downscale, bicubic_upscale, modcrop
from gantrain.errors import UserError
from gantrain.metrics.similarity import sr_psnr, sr_ssim
from gantrain.models.image_to_image import match_channels
from gantrain.rundir import held_out_family_source
from gantrain.tiles import tiled
from gantrain.translate import Translator, input_files, read_image


class Upscaler:
    """A super-resolution run's generator as ``image (H, W, C') in [-1, 1] -> (H*s, W*s, C)``, tiled."""

    def __init__(self, run, which="latest", tile: int = 128, overlap: int = 16):
        self.translator = translator = Translator(run, "a2b", which)
        model = translator.model
        if not model.can_upscale:
            raise UserError(f"{run}: model family {translator.cfg['model']['family']!r} does not upscale images (srresnet and srgan do); "
                            "use gantrain translate")
        if not tile > 2 * overlap >= 0:
            raise UserError(f"--tile {tile} --overlap {overlap}: the tile must be more than twice the overlap (e.g. --tile 128 --overlap 16)")
        self.scale, self.channels, self.tile, self.overlap = model.scale, translator.channels, tile, overlap
        self.step, self.weights_source, self.cfg, self.run_dir = translator.step, translator.weights_source, translator.cfg, translator.run_dir
        generator = model.generator
        # One trace for every tile size: the generator is fully convolutional.
        self._forward = tf.function(lambda x: generator(x, training=False),
                                    input_signature=[tf.TensorSpec([None, None, None, self.channels], tf.float32)])

    def network(self, batch: np.ndarray) -> np.ndarray:
        """(1, h, w, C) -> (1, h*s, w*s, C), one call of the generator."""
        return self._forward(tf.constant(batch, tf.float32)).numpy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(match_channels(np.asarray(image, np.float32), self.channels))
        return np.clip(tiled(self.network, image, self.scale, self.tile, self.overlap), -1.0, 1.0)


def evaluate_sr(run, which="latest", n: int | None = None, hr_folder: Path | None = None, tile: int = 128, overlap: int = 16) -> dict:
    """The report (as ``evaluate.evaluate_run``'s): PSNR and SSIM of the model and of bicubic upscaling."""
    t0 = time.perf_counter()
    up = Upscaler(run, which, tile, overlap)
    s = up.scale
    if hr_folder is not None:
        files = input_files(Path(hr_folder))[:n]
        hrs = [modcrop(read_image(f, up.channels)[None], s)[0] for f in files]
        hrs = [np.asarray(match_channels(h, up.channels)) for h in hrs]
        least = max(4 * s, 2 * s + 11)  # SSIM's 11x11 window must fit inside the border
        small = [f"{f.name} ({h.shape[1]}x{h.shape[0]})" for f, h in zip(files, hrs) if min(h.shape[:2]) < least]
        if small:
            raise UserError(f"--hr-folder {hr_folder}: {small[0]} is too small to score at x{s} (each side needs at least {least} pixels)")
        where = f"{len(hrs)} images of {hr_folder}, whole, cropped to multiples of {s}"
        lrs = [None] * len(hrs)
    else:
        source = held_out_family_source(up.cfg)
        if source is None:
            raise UserError(f"{run}: its data has no held-out split to score on; hold some out (data.holdout for image folders, data.test_hr_dir "
                            "and data.test_lr_dir for sr_folders), or score a folder of HR images with --hr-folder DIR")
        where = f"held-out test split of {source.description}, whole images cropped to multiples of {s}"
        examples = source.examples(np.arange(len(source) if n is None else min(n, len(source))))
        hrs = list(examples["hr"])
        # Real LR images (data.loader: sr_folders) are the inputs the model is for; else LR is derived.
        lrs = list(examples["lr"]) if isinstance(source, SRFolderPairs) else [None] * len(hrs)
    psnr, ssim, base_psnr, base_ssim = [], [], [], []
    for hr, real_lr in zip(hrs, lrs):
        lr = bicubic_downscale(tf.constant(hr[None], tf.float32), s) if real_lr is None else tf.constant(real_lr[None], tf.float32)
        sr = up(lr.numpy()[0])[None]
        bicubic = bicubic_upscale(lr, s).numpy()
        try:
            psnr.append(sr_psnr(sr, hr[None], s)[0]), ssim.append(sr_ssim(sr, hr[None], s)[0])
            base_psnr.append(sr_psnr(bicubic, hr[None], s)[0]), base_ssim.append(sr_ssim(bicubic, hr[None], s)[0])
        except ValueError as err:
            raise UserError(f"cannot score a {hr.shape[1]}x{hr.shape[0]} image at x{s}: {err}") from None
    colour = up.channels == 3
    protocol = {"images": len(hrs), "real_split": where, "scale": s,
                "measured_on": ("Y of YCbCr (BT.601, as MATLAB rgb2ycbcr)" if colour else "the grey values") + f" of the 8-bit images, {s}-pixel border removed; SSIM: 11x11 Gaussian window, sigma 1.5",
                "lr_input": (f"bicubic downscaling x{s} with antialiasing of each HR image (tf.image.resize)" if lrs[0] is None
                             else "the real LR image of each pair (data.test_lr_dir)"),
                "baseline": f"bicubic upscaling x{s} of the same LR input", "tiles": f"{up.tile} px, overlap {up.overlap}"}
    rows = [{"metric": "psnr", "value": float(np.mean(psnr)), "bicubic_value": round(float(np.mean(base_psnr)), 4), "better": "higher", **protocol},
            {"metric": "ssim", "value": float(np.mean(ssim)), "bicubic_value": round(float(np.mean(base_ssim)), 5), "better": "higher", **protocol}]
    return {"run": str(run), "run_dir": str(up.run_dir), "checkpoint": str(which), "checkpoint_step": up.step,
            "generator_weights": up.weights_source, "seed": None, "results": rows, "seconds": round(time.perf_counter() - t0, 1)}
