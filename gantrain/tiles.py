"""Tiled inference: run a fully convolutional network over an image of any size in bounded memory.

:func:`tiled` cuts the input into overlapping tiles of at most ``tile`` x ``tile`` pixels, runs the
network on one tile at a time and blends the outputs into one image, with no visible seams.

* **Grid.** Along each axis the tiles start every ``tile - overlap`` pixels and the last one is
  shifted back to end on the border, so every tile has the same, full size (one shape to trace)
  and nothing is padded beyond the image. An image no larger than one tile is a single call on the
  whole image, bit for bit the untiled result.
* **Blending window.** Each tile's output is weighted by a separable "feathered" window. Along an
  edge that touches another tile the weight is 0 for the first ``margin`` input pixels, then rises
  linearly over the next ``overlap - 2 * margin`` pixels to 1, and stays 1 in the middle; an edge
  on the image border keeps weight 1 up to the border. The outputs are divided by the summed
  weights. In a regular overlap the two ramps are mirror images that sum to exactly 1, so a
  pointwise network comes out unchanged and any remaining difference between neighbouring tiles
  is faded across the ramp instead of showing as a step.
* **Why a zero margin.** A tile's pixels within the receptive-field radius ``r`` of an inner edge
  saw the network's zero padding instead of the neighbouring image, so they are the least accurate
  in the tile. They get no weight at all, and since ``2 * margin <= overlap`` every pixel keeps
  a positive total weight from a tile in which it lies at least ``margin`` from every inner
  edge. Consequence: whenever ``r <= margin``, every output pixel is a weighted mean of values
  that saw its whole receptive field, and tiling is exact (to float rounding). The default
  ``margin = overlap // 4`` spends a quarter of the overlap at each side on that and half of it
  on the ramp; deeper networks (SRResNet's radius is tens of pixels) are not exact at any
  affordable overlap, but their influence fades fast with distance and the ramp hides the rest.
* **Memory.** Only one tile's network output lives at a time, next to the output image, which is
  also the accumulator: the window is normalised before accumulating, because with a grid that
  is a product of two 1-D grids, the summed weight is the product of two 1-D sums.

Distances and margins are in input pixels; with ``scale > 1`` they are ``scale`` times as many
output pixels.
"""

from __future__ import annotations

import numpy as np


def _check(tile: int, overlap: int, margin: int | None = None) -> int:
    """Validate the tiling options; return the margin (its default filled in)."""
    if not (isinstance(tile, (int, np.integer)) and isinstance(overlap, (int, np.integer))):
        raise ValueError(f"tile and overlap must be integers, got tile={tile!r}, overlap={overlap!r}")
    if not tile > 2 * overlap >= 0:
        raise ValueError(f"tile={tile}, overlap={overlap}: need tile > 2 * overlap >= 0 "
                         f"(e.g. tile {max(2 * overlap + 1, 64)} for overlap {overlap})")
    if margin is None:
        return overlap // 4
    if not 0 <= 2 * margin <= overlap:
        raise ValueError(f"margin={margin}, overlap={overlap}: need 0 <= 2 * margin <= overlap "
                         "so that every pixel keeps a positive weight")
    return int(margin)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis of ``length`` pixels (stride ``tile - overlap``).

    The last tile is shifted back to end on the border; a side no longer than ``tile`` is one tile.
    """
    _check(tile, overlap)
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = -(-(length - tile) // stride) + 1  # ceil: the last regular start reaching the border
    return [min(k * stride, length - tile) for k in range(count)]


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles of a ``height`` x ``width`` image as ``(top, left, tile_height, tile_width)``, row by row."""
    th, tw = min(tile, height), min(tile, width)
    return [(top, left, th, tw) for top in tile_starts(height, tile, overlap) for left in tile_starts(width, tile, overlap)]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many network calls :func:`tiled` makes on a ``height`` x ``width`` image (for progress bars)."""
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def feather(size: int, inner_before: bool, inner_after: bool, margin: int, ramp: int) -> np.ndarray:
    """1-D blending window over ``size`` pixels: float64 in [0, 1].

    Args:
        size: length of the tile (in output pixels).
        inner_before, inner_after: whether the start / end edge touches another tile (else it lies on
            the image border and keeps weight 1).
        margin: pixels of weight 0 next to an inner edge.
        ramp: pixels over which the weight then rises linearly to 1: ``(d - margin + 1) / (ramp + 1)``
            at distance ``d`` from the edge, so two mirrored ramps over one overlap sum to 1.

    Returns:
        The window, shape ``(size,)``.
    """
    def rise(dist: np.ndarray) -> np.ndarray:
        return np.clip((dist - margin + 1) / (ramp + 1), 0.0, 1.0)

    d = np.arange(size, dtype=np.float64)
    w = np.ones(size)
    if inner_before:
        w = np.minimum(w, rise(d))
    if inner_after:
        w = np.minimum(w, rise(size - 1 - d))
    return w


def _axis_windows(length: int, tile: int, overlap: int, margin: int, scale: int) -> list[tuple[int, np.ndarray]]:
    """Per tile along one axis: (output start, window normalised by the summed windows of the axis)."""
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length) * scale
    windows = [feather(size, k > 0, k < len(starts) - 1, margin * scale, (overlap - 2 * margin) * scale)
               for k in range(len(starts))]
    total = np.zeros(length * scale)
    for start, w in zip(starts, windows):
        total[start * scale:start * scale + size] += w
    # > 0 everywhere: each pixel lies >= margin from the inner edges of some tile (2 * margin <= overlap).
    return [(start * scale, w / total[start * scale:start * scale + size]) for start, w in zip(starts, windows)]


def tiled(fn, image: np.ndarray, scale: int, tile: int = 128, overlap: int = 16, margin: int | None = None) -> np.ndarray:
    """Apply a fully convolutional network to one image of any size, tile by tile, without seams.

    Args:
        fn: ``(1, h, w, C)`` float32 in [-1, 1] -> ``(1, h * scale, w * scale, C_out)`` (array or tensor),
            e.g. an SR generator, or a same-size translator with ``scale=1``.
        image: ``(H, W, C)``, in [-1, 1].
        scale: output pixels per input pixel along each side.
        tile: largest tile side, in input pixels.
        overlap: input pixels shared by neighbouring tiles; needs ``tile > 2 * overlap >= 0``.
        margin: input pixels of zero weight at an inner tile edge (default ``overlap // 4``); tiling is
            exact when the network's receptive-field radius is at most ``margin``. ``2 * margin <= overlap``.

    Returns:
        float32 ``(H * scale, W * scale, C_out)``.

    Raises:
        ValueError: bad options, an image that is not (H, W, C), or an output of the wrong shape.
    """
    margin = _check(tile, overlap, margin)
    if not (isinstance(scale, (int, np.integer)) and scale >= 1):
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    height, width = image.shape[:2]

    def run(top: int, left: int, h: int, w: int) -> np.ndarray:
        out = np.asarray(fn(image[None, top:top + h, left:left + w]))
        if out.ndim != 4 or out.shape[:3] != (1, h * scale, w * scale):
            raise ValueError(f"fn mapped a (1, {h}, {w}, C) tile to {out.shape}, expected (1, {h * scale}, {w * scale}, C_out): "
                             f"is scale={scale} right and is the network fully convolutional?")
        return out[0]

    if height <= tile and width <= tile:
        return run(0, 0, height, width).astype(np.float32, copy=False)  # one call: exactly the untiled result

    rows = _axis_windows(height, tile, overlap, margin, scale)
    cols = _axis_windows(width, tile, overlap, margin, scale)
    th, tw = min(tile, height), min(tile, width)
    result = None
    for top, wy in rows:
        for left, wx in cols:
            piece = run(top // scale, left // scale, th, tw)
            if result is None:
                result = np.zeros((height * scale, width * scale, piece.shape[-1]), np.float32)
            weight = (wy[:, None] * wx[None, :])[..., None]
            result[top:top + th * scale, left:left + tw * scale] += (weight * piece).astype(np.float32)
    return result
