"""``translate``: run a trained image-to-image model (pix2pix, cyclegan) over image files.

The networks are rebuilt from the run's config and only the translator of the asked direction is
restored (its EMA copy when the run kept one). Images keep their own size where the architecture
is fully convolutional: an image whose sides the network cannot take (a U-Net halves the image
``depth`` times) is reflection-padded up to the next size it can, translated, and cropped back. The
network is rebuilt for each new size with the trained weights; its depth and block count stay the
trained ones (``Family.params_for_size``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gantrain.data.image_folder import EXTENSIONS, eight_bit
from gantrain.data.source import to_uint8
from gantrain.errors import UserError
from gantrain.registry import MODELS
from gantrain.rundir import build_model, open_checkpoint, restore_networks


class Translator:
    """One direction of a trained translation model, at any image size the architecture allows."""

    def __init__(self, run, direction: str = "a2b", which="latest"):
        prefix, self.run_dir, self.cfg, meta = open_checkpoint(run, which)
        self.family = MODELS.get(self.cfg["model"]["family"])
        self.shape = tuple(meta["image_shape"])
        model = build_model(self.cfg, self.shape, 0)
        if not model.can_translate:
            raise UserError(f"{run}: model family {self.cfg['model']['family']!r} does not translate images (pix2pix and cyclegan do); "
                            "use gantrain sample")
        if direction not in model.translators:
            raise UserError(f"--direction {direction}: this {self.cfg['model']['family']} model translates {' and '.join(model.translators)}")
        self.direction, self.net_name = direction, model.translators[direction]
        self.model = model
        self.step, keys = restore_networks(model, self.cfg, prefix, [self.net_name], what="translator")
        self.weights_source = keys[self.net_name]
        self.weights = model.networks[self.net_name].get_weights()
        self._by_size = {self.shape[:2]: model}

    @property
    def channels(self) -> int:
        return self.shape[-1]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """float32 (H, W, C') in [-1, 1] -> the translated (H, W, C) image, at the input's size (times the scale
        of a super-resolution model)."""
        h, w = image.shape[:2]
        model, (ph, pw) = self._model_for(h, w)
        x = image
        if (ph, pw) != (h, w):
            x = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        out = model.translate(x[None], self.direction)[0].numpy()
        s = out.shape[0] // x.shape[0]  # super-resolution models enlarge their input
        return out[:h * s, :w * s]

    def _model_for(self, h: int, w: int):
        size = self._valid_size(h, w)
        if size not in self._by_size:
            params = self.family.params_for_size(self.cfg["model"], self.shape)
            model = build_model({**self.cfg, "model": params}, (*size, self.channels), 0)
            model.networks[self.net_name].set_weights(self.weights)
            self._by_size[size] = model
        return self._by_size[size], size

    def _valid_size(self, h: int, w: int) -> tuple[int, int]:
        """The smallest size >= (h, w) the network takes: the image is padded up to it."""
        params = self.family.params_for_size(self.cfg["model"], self.shape)
        for m in (2 ** k for k in range(12)):
            size = (math.ceil(h / m) * m, math.ceil(w / m) * m)
            if self.family.check(params, (*size, self.channels)) is None:
                return size
        raise UserError(f"no size near {h}x{w} fits this {self.cfg['model']['family']} model")


def read_image(path: Path, channels: int) -> np.ndarray:
    """Any image file -> float32 (H, W, channels) in [-1, 1]; one-channel files stay one channel (the model repeats them)."""
    try:
        with Image.open(path) as img:
            img = eight_bit(img)  # 16-bit PNG/PGM: scaled to 8 bits as the loaders do
            grey = img.mode in ("1", "L", "LA")  # a grey file stays grey: the model repeats it over its channels
            img = img.convert("L" if channels == 1 or grey else "RGB")
            arr = np.asarray(img, dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot read image ({err})") from None
    arr = arr[..., None] if arr.ndim == 2 else arr
    return arr / 127.5 - 1.0


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise UserError(f"{path}: no images in this folder (looked for {', '.join(sorted(EXTENSIONS))})")
        return files
    raise UserError(f"{path}: no such image or folder")


def output_paths(inputs: list[Path], source: Path, out: Path) -> list[Path]:
    """A file for a file; for a folder, the same file names under ``out``."""
    if source.is_file():
        if out.is_dir():
            return [out / source.name]
        if out.suffix.lower() not in EXTENSIONS:
            raise UserError(f"--out {out}: give an image file name (.png, .jpg, ...) or an existing folder")
        return [out]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; translating a folder writes a folder")
    return [out / p.name for p in inputs]


def translate_files(translator: Translator, source: Path, out: Path, overwrite: bool = False) -> list[Path]:
    """Translate an image or a folder of images; returns the written paths. Refuses to overwrite."""
    inputs = input_files(source)
    outputs = output_paths(inputs, source, out)
    taken = [p for p in outputs if p.exists()]
    if taken and not overwrite:
        raise UserError(f"--out {out}: {len(taken)} output file(s) already exist (e.g. {taken[0]}); pass --overwrite to replace them")
    if any(p.resolve() == q.resolve() for p, q in zip(inputs, outputs)):
        raise UserError(f"--out {out}: would overwrite the input images; choose another folder")
    written = []
    for src, dst in zip(inputs, outputs):
        image = to_uint8(translator(read_image(src, translator.channels)))
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(dst)
        except (OSError, ValueError) as err:
            raise UserError(f"{dst}: cannot write ({err})") from None
        written.append(dst)
    if not written:
        print("nothing to translate", file=sys.stderr)
    return written
