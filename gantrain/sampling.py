"""``sample``: draw images from a checkpoint, rebuilding the generator from the run's saved config.

No dataset is read: the image shape comes from the data section of the saved config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from gantrain import checkpoint as ckpt_lib
from gantrain.config import load_config
from gantrain.data.source import to_uint8
from gantrain.errors import UserError
from gantrain.images import display_scale, make_grid, save_png


def load_generator(run: str | Path, which: str | int = "latest"):
    """Returns (generator, config, step) restored from a run directory or checkpoint prefix."""
    from gantrain.run import build_networks, image_shape_of

    prefix = ckpt_lib.find_checkpoint(Path(run), which)
    run_dir = ckpt_lib.run_dir_of(prefix)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"{prefix}: no config.yaml in {run_dir}, so the networks cannot be rebuilt")
    cfg = load_config(config_path)
    networks = build_networks(cfg, image_shape_of(cfg), num_classes=0)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = ckpt_lib.make_checkpoint(step, generator=networks.generator.variables)
    ckpt_lib.restore(ckpt, prefix, what="generator")
    return networks.generator, cfg, int(step.numpy()), networks.latent_dim


def generate(run: str | Path, n: int, seed: int = 0, which: str | int = "latest", batch: int = 256) -> tuple[np.ndarray, dict, int]:
    """``n`` images as float32 (n, H, W, C) in [-1, 1]; the same seed gives the same images."""
    generator, cfg, step, latent_dim = load_generator(run, which)
    z = tf.random.stateless_normal([n, latent_dim], seed=[seed, 0])
    out = [generator(z[i : i + batch], training=False).numpy() for i in range(0, n, batch)]
    return np.concatenate(out), cfg, step


def write_samples(images: np.ndarray, out: Path, fmt: str) -> list[Path]:
    """Write a grid PNG, one PNG per image (``out`` is a folder) or a .npy of uint8 images."""
    out = Path(out)
    if fmt == "grid":
        return [save_png(make_grid(images), out, scale=display_scale(images.shape[1]))]
    if fmt == "npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, to_uint8(images), allow_pickle=False)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    return [save_png(to_uint8(img), out / f"{i:05d}.png") for i, img in enumerate(images)]
