"""A side-by-side grid of super-resolution runs on the same held-out images, for the README.

Columns: LR (nearest-upscaled) | bicubic | one column per run | HR, on evenly spread held-out images
of the first run's data (LR = the same antialiased bicubic downscale ``gantrain eval`` uses). Every
pixel is enlarged ``--zoom`` times (nearest) so 32x32 photos can be seen.

    python benchmarks/sr_comparison_grid.py runs/srresnet_x4 runs/srgan_x4 --out docs/images/sr_cifar10_x4.png
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf
from PIL import Image

from gantrain.data.source import to_uint8
from gantrain.data.sr_pairs import bicubic_downscale, bicubic_upscale
from gantrain.models.image_to_image import spread
from gantrain.rundir import family_source
from gantrain.upscale import Upscaler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--zoom", type=int, default=2)
    p.add_argument("--gap", type=int, default=2)
    a = p.parse_args()
    ups = [Upscaler(run) for run in a.runs]
    s = ups[0].scale
    held = family_source(ups[0].cfg, "test")
    hr = held.examples(spread(len(held), a.rows))["hr"]
    lr = bicubic_downscale(tf.constant(hr), s).numpy()
    columns = [np.repeat(np.repeat(lr, s, axis=1), s, axis=2), bicubic_upscale(tf.constant(lr), s).numpy()]
    columns += [np.stack([up(x) for x in lr]) for up in ups] + [hr]
    h, w, c = hr.shape[1:]
    zh, zw, g = h * a.zoom, w * a.zoom, a.gap
    canvas = np.full((a.rows * (zh + g) - g, len(columns) * (zw + g) - g, c), 255, np.uint8)
    for j, col in enumerate(columns):
        for i, img in enumerate(col):
            big = np.repeat(np.repeat(to_uint8(np.clip(img, -1, 1)), a.zoom, axis=0), a.zoom, axis=1)
            canvas[i * (zh + g):i * (zh + g) + zh, j * (zw + g):j * (zw + g) + zw] = big
    Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(a.out, optimize=True)
    print(f"wrote {a.out}: columns LR | bicubic | {' | '.join(a.runs)} | HR")


if __name__ == "__main__":
    main()
