"""Turning image batches into grids and files. The only module that writes image files."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from gantrain.data.source import to_uint8


def make_grid(images, rows: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """(N, H, W, C) float [-1, 1] or uint8 -> one uint8 (rows*H + pads, cols*W + pads, C) image."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    rows = rows or max(1, int(math.floor(math.sqrt(n))))
    cols = math.ceil(n / rows)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def save_png(image: np.ndarray, path: Path, scale: int = 1) -> Path:
    """Write a uint8 (H, W, C) image atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def display_scale(height: int) -> int:
    """Small images (MNIST's 28 px) are upscaled in grids so they are readable when opened."""
    return max(1, 64 // height)
