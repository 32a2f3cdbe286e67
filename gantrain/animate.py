"""``gantrain sample RUN --animate progress.gif``: the training's sample grids as an animated GIF.

``fit`` saves a grid from the same fixed noise every ``log.sample_every`` steps
(samples/step_NNNNNN.png), so played in step order they show the generator learning, as at the end
of the TensorFlow DCGAN tutorial. Each frame is one grid, unchanged, below a white band that
names its step (Pillow's default font), so no generated pixel is covered. ``every`` keeps every
Nth grid, and always the last one (the trained generator).

GIF stores at most 256 colours per frame: grey grids come through exactly, colour grids are
reduced to a 256-colour palette by Pillow.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gantrain.errors import UserError
from gantrain.rundir import SAMPLES

GRID_NAME = re.compile(r"^step_(\d+)\.png$")
BAND_PAD = 3  # pixels above and below the step's text
BACKGROUND, INK = 255, 0  # white like the grids' padding, black text


def sample_grids(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every saved grid, in step order."""
    folder = Path(run_dir) / SAMPLES
    grids = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = GRID_NAME.match(path.name)  # skips the hidden temporary files of a grid being written
            if match:
                grids.append((int(match.group(1)), path))
    return sorted(grids)


def pick_every(items: list, every: int) -> list:
    """Every ``every``-th item from the first, plus the last one when that stride skips it."""
    kept = items[::every]
    if items and kept[-1] is not items[-1]:
        kept.append(items[-1])
    return kept


def band_height(font) -> int:
    """The band's height: the tallest text it can hold (digits, letters with descenders) plus padding."""
    *_, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), "step 0123456789gjpqy", font=font)
    return bottom + 2 * BAND_PAD


def frame(grid: Image.Image, step: int, font, band: int) -> Image.Image:
    """``grid`` below a ``band``-pixel band reading "step N"."""
    mode = "L" if grid.mode in ("L", "1") else "RGB"
    grid = grid.convert(mode)
    out = Image.new(mode, (grid.width, grid.height + band), BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
    out.paste(grid, (0, band))
    ImageDraw.Draw(out).text((BAND_PAD, BAND_PAD), f"step {step}", fill=INK if mode == "L" else (INK,) * 3, font=font)
    return out


def same_canvas(frames: list[Image.Image]) -> list[Image.Image]:
    """Frames of one mode and size, as a GIF needs: a resume may change log.num_samples (the grid's
    size), so smaller frames are padded with white at the right and bottom, and grey frames next
    to colour ones become RGB."""
    mode = "RGB" if any(f.mode == "RGB" for f in frames) else "L"
    size = (max(f.width for f in frames), max(f.height for f in frames))
    out = []
    for f in frames:
        f = f.convert(mode)
        if f.size != size:
            canvas = Image.new(mode, size, BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
            canvas.paste(f, (0, 0))
            f = canvas
        out.append(f)
    return out


def animate(run_dir, out_gif, fps: float = 4, every: int = 1) -> list[int]:
    """Write the run's sample grids, in step order, as an animated GIF that loops.

    Args:
      run_dir: the run directory (its samples/ folder holds the grids).
      out_gif: the .gif file to write (its folder is created).
      fps: frames per second (GIF keeps frame times in hundredths of a second).
      every: keep every Nth grid, starting with the first; the last grid is always kept.
    Returns:
      the steps of the frames written, in order.
    """
    run_dir, out_gif = Path(run_dir), Path(out_gif)
    if out_gif.suffix.lower() != ".gif":
        raise UserError(f"--animate {out_gif}: give a .gif file name")
    if not fps > 0:
        raise UserError(f"--fps {fps}: must be above 0")
    if every < 1:
        raise UserError(f"--every {every}: must be 1 or more")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    grids = pick_every(sample_grids(run_dir), every)
    if not grids:
        raise UserError(f"{run_dir / SAMPLES}: no sample grids (step_NNNNNN.png) to animate; fit saves one every log.sample_every steps")
    font = ImageFont.load_default()
    band = band_height(font)
    frames = []
    for step, path in grids:
        try:
            with Image.open(path) as grid:
                frames.append(frame(grid, step, font, band))
        except OSError as err:
            raise UserError(f"{path}: cannot read this sample grid ({err}); delete it and run again") from None
    frames = same_canvas(frames)
    try:
        out_gif.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_gif.with_name(f".{out_gif.name}.tmp")
        # Frames are never identical (their bands differ), so Pillow keeps every one of them.
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
        os.replace(tmp, out_gif)
    except OSError as err:
        raise UserError(f"--animate {out_gif}: cannot write ({err.strerror or err})") from None
    return [step for step, _ in grids]
