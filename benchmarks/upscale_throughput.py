"""Throughput and peak memory of ``gantrain upscale``'s tiled inference on one large image.

Builds the generator of a super-resolution config (random weights: the cost does not depend on
them) or loads a trained run, and upscales one random SIZE x SIZE RGB image in tiles, as
``gantrain upscale`` does (``Upscaler.__call__``: gantrain/tiles.py). Each tile size runs in a fresh
process, so the peak resident memory (ru_maxrss) is that run's alone. Prints input and output
megapixels per second and the peak memory, and the memory the untiled output array needs.

    python benchmarks/upscale_throughput.py --size 2048 --tiles 128,256
    python benchmarks/upscale_throughput.py --run runs/srresnet_x4 --size 2048 --write BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from report import emit

REPO = Path(__file__).resolve().parents[1]


def worker(config: str, run: str | None, size: int, tile: int, overlap: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from gantrain.config import load_config
    from gantrain.rundir import build_model
    from gantrain.tiles import tile_count, tiled

    if run:
        from gantrain.upscale import Upscaler

        up = Upscaler(run, "latest", tile, overlap)
        scale, channels, network = up.scale, up.channels, up.network
    else:
        cfg = load_config(REPO / config)
        model = build_model(cfg, (32, 32, 3), 0)
        scale, channels, generator = model.scale, 3, model.generator
        forward = tf.function(lambda x: generator(x, training=False), input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])

        def network(batch):
            return forward(tf.constant(batch, tf.float32)).numpy()

    image = np.random.default_rng(0).uniform(-1, 1, (size, size, channels)).astype(np.float32)
    network(image[None, :tile, :tile])  # tracing, outside the timing
    t = time.perf_counter()
    out = tiled(network, image, scale, tile, overlap)
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "in_mp_s": size * size / 1e6 / seconds, "out_mp_s": out.shape[0] * out.shape[1] / 1e6 / seconds,
            "peak_mb": peak_mb, "tiles": tile_count(size, size, tile, overlap), "scale": scale, "output_mb": out.nbytes / 2**20}


def seams(run: str, tile: int, overlap: int) -> dict:
    """Tiled against untiled output of a trained run on a mosaic of its held-out images (real
    content, so any seam would show): the largest difference in 8-bit levels and the PSNR between them."""
    import numpy as np
    import tensorflow as tf

    from gantrain.data.source import to_uint8
    from gantrain.data.sr_pairs import bicubic_downscale
    from gantrain.rundir import family_source
    from gantrain.upscale import Upscaler

    up = Upscaler(run, "latest", tile, overlap)
    hr = family_source(up.cfg, "test").examples(np.arange(16))["hr"]
    rows = [np.concatenate(list(hr[r * 4:(r + 1) * 4]), axis=1) for r in range(4)]
    mosaic = np.concatenate(rows, axis=0)
    lr = bicubic_downscale(tf.constant(mosaic[None]), up.scale).numpy()[0]
    whole, tiles = to_uint8(np.clip(up.network(lr[None])[0], -1, 1)).astype(int), to_uint8(up(lr)).astype(int)
    mse = float(np.mean((whole - tiles) ** 2))
    return {"lr_size": list(lr.shape[:2]), "max_levels": int(np.abs(whole - tiles).max()),
            "psnr_tiled_vs_untiled": float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/srresnet_x4.yaml", help="the generator architecture (random weights)")
    p.add_argument("--run", help="a trained super-resolution run instead of --config")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--tiles", default="128,256")
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--write", help="append the table to this markdown file")
    p.add_argument("--seams", help="TILE: with --run, compare tiled with untiled output on a mosaic of held-out images and exit")
    p.add_argument("--worker-tile", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.run:
        a.run = str(Path(a.run).resolve())  # the workers run from the repository root
    if a.seams:
        r = seams(a.run, int(a.seams), a.overlap)
        emit(f"`gantrain upscale` tiles of {a.seams} px (overlap {a.overlap}) against one untiled pass, {a.run}, on a {r['lr_size'][0]}x{r['lr_size'][1]} "
             f"mosaic of held-out images: largest difference {r['max_levels']} of 255 levels, PSNR between them {r['psnr_tiled_vs_untiled']:.1f} dB\n", a.write)
        return
    if a.worker_tile:
        print(json.dumps(worker(a.config, a.run, a.size, a.worker_tile, a.overlap)))
        return
    lines = [f"### `gantrain upscale` on one {a.size}x{a.size} image, {dt.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} CPUs) "
             f"(`benchmarks/upscale_throughput.py`, {a.run or a.config})", "",
             "| tile (overlap) | tiles | seconds | input MP/s | output MP/s | peak RSS MB | the output array alone MB |", "|---|---|---|---|---|---|---|"]
    for tile in (int(t) for t in a.tiles.split(",")):
        cmd = [sys.executable, __file__, "--config", a.config, "--size", str(a.size), "--overlap", str(a.overlap), "--worker-tile", str(tile)]
        if a.run:
            cmd += ["--run", a.run]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        rows = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 or not rows:
            raise RuntimeError(out.stderr[-2000:])
        r = json.loads(rows[-1])
        print(f"tile {tile}: {r}", flush=True)
        lines.append(f"| {tile} ({a.overlap}) | {r['tiles']} | {r['seconds']:.1f} | {r['in_mp_s']:.3f} | {r['out_mp_s']:.2f} | {r['peak_mb']:.0f} | {r['output_mb']:.0f} |")
    emit("\n".join(lines) + "\n", a.write)


if __name__ == "__main__":
    main()
