"""``sample``: draw images from a checkpoint, rebuilding the generator from the run's saved config.

No dataset is read: the image shape and class count come from the run's ``meta.json``.
Conditional families accept labels (one class, a list of classes, or a per-class grid); InfoGAN
renders latent-code traversals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from gantrain.data.source import to_uint8
from gantrain.errors import UserError
from gantrain.images import display_scale, make_grid, save_png
from gantrain.models.base import GANModel
from gantrain.rundir import load_model  # noqa: F401 (gantrain.sampling.load_model is public API)


def parse_labels(model: GANModel, label: int | None, labels: str | None, per_class: int | None) -> list[int] | None:
    """The class of each requested row, or None for unconditional sampling; validates the values."""
    asked = [flag for flag, v in (("--label", label), ("--labels", labels), ("--per-class", per_class)) if v is not None]
    if not asked:
        return None
    if not model.conditional:
        raise UserError(f"{asked[0]}: this run's model family is unconditional, it takes no labels")
    if len(asked) > 1 and not (asked == ["--labels", "--per-class"]):
        raise UserError(f"use only one of --label, --labels and --per-class (got {', '.join(asked)})")
    if label is not None:
        chosen = [label]
    elif labels is not None:
        try:
            chosen = [int(x) for x in labels.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--labels {labels!r}: expected comma-separated class numbers, e.g. 0,1,2") from None
    else:
        chosen = list(range(model.num_classes))
    bad = [c for c in chosen if not 0 <= c < model.num_classes]
    if bad or not chosen:
        raise UserError(f"class {bad[0] if bad else '(none)'} is out of range: this model has classes 0..{model.num_classes - 1}")
    return chosen


def generate(model: GANModel, n: int, seed: int, labels: list[int] | None = None, batch: int = 256, generator=None) -> np.ndarray:
    """``n`` images as float32 (n, H, W, C) in [-1, 1]; the same seed gives the same images."""
    rng = tf.random.Generator.from_seed(seed)
    fixed = None if labels is None else tf.constant(labels, tf.int32)
    out = []
    for i in range(0, n, batch):
        size = min(batch, n - i)
        latent = model.sample_latent(rng, size, labels=None if fixed is None else fixed[i : i + size])
        out.append(model.generate(latent, training=False, generator=generator).numpy())
    return np.concatenate(out).astype(np.float32)  # float16 under mixed precision


def class_grid(model: GANModel, classes: list[int], per_row: int, seed: int) -> tuple[np.ndarray, int]:
    """One row per class in ``classes``, ``per_row`` images each."""
    rows = np.repeat(np.asarray(classes, dtype=np.int32), per_row).tolist()
    return generate(model, len(rows), seed, rows), len(classes)



def write_samples(images: np.ndarray, out: Path, fmt: str, rows: int | None = None) -> list[Path]:
    """Write a grid PNG, one PNG per image (``out`` is a folder) or a .npy of uint8 images."""
    out = Path(out)
    if fmt in ("grid", "npy") and out.is_dir():
        raise UserError(f"--out {out}: is a directory; give a file name (or --format png to write one file per image into it)")
    try:
        return _write(images, out, fmt, rows)
    except OSError as err:
        raise UserError(f"--out {out}: cannot write ({err.strerror or err})") from None


def _write(images: np.ndarray, out: Path, fmt: str, rows: int | None) -> list[Path]:
    if fmt == "grid":
        return [save_png(make_grid(images, rows=rows), out, scale=display_scale(images.shape[1]))]
    if fmt == "npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, to_uint8(images), allow_pickle=False)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    return [save_png(to_uint8(img), out / f"{i:05d}.png") for i, img in enumerate(images)]
