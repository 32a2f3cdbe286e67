"""``data.loader: sr_folders``: real (LR, HR) image pairs for super-resolution, from two folders.

For users who have real low-resolution images (a camera's small sensor, a dataset's own LR
release) rather than LR derived by bicubic downscaling: ``hr_dir/x.png`` pairs with ``lr_dir/x.*``.
Each LR image must be 1/``model.scale`` of its HR image (after cropping HR to a multiple of the
scale); the pairs may differ in size from each other. ``test_hr_dir``/``test_lr_dir`` name a
held-out pair of folders for the sample grids and ``gantrain eval``. The scale is read from the
first pair's sizes and checked against ``model.scale`` by the family.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from gantrain.data.paired_folder import ON_ERROR
from gantrain.data.sr_pairs import SCALES, load_sr_folders, matched_sr_files
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

SCHEMA = {
    "hr_dir": Field(None, "folder of the high-resolution images", "path"),
    "lr_dir": Field(None, "folder of their low-resolution versions, matched by file name without extension", "path"),
    "test_hr_dir": Field(None, "held-out HR images (grids, gantrain eval); null = none", "path", nullable=True),
    "test_lr_dir": Field(None, "their LR versions", "path", nullable=True),
    "channels": Field(3, "1 = grey, 3 = RGB", "int", choices=(1, 3)),
    "on_error": ON_ERROR,
}


def pair_scale(hr_dir: Path, lr_dir: Path) -> int:
    """The scale of the first pair (HR width // LR width), read from the file headers only."""
    hr_path, lr_path = matched_sr_files(hr_dir, lr_dir)[0]
    try:
        with Image.open(hr_path) as hr, Image.open(lr_path) as lr:
            scale = hr.size[0] // max(1, lr.size[0])
    except OSError as err:
        raise UserError(f"{hr_path} / {lr_path}: cannot read image ({err})") from None
    if scale not in SCALES:
        raise UserError(f"{lr_path}: {lr.size[0]} pixels wide against {hr.size[0]} for {hr_path.name}: not a scale of 2, 3, 4 or 8")
    return scale


class SRFolders:
    def _dirs(self, params: dict, split: str | None) -> tuple[Path, Path]:
        if split == "test":
            if params["test_hr_dir"] is None or params["test_lr_dir"] is None:
                raise UserError("data.test_hr_dir and data.test_lr_dir: both are needed for a held-out split")
            return Path(params["test_hr_dir"]), Path(params["test_lr_dir"])
        return Path(params["hr_dir"]), Path(params["lr_dir"])

    def image_shape(self, params: dict) -> tuple:
        return (None, None, params["channels"])  # the pairs may differ in size; the networks are fully convolutional

    def has_splits(self, params: dict) -> bool:
        return params["test_hr_dir"] is not None and params["test_lr_dir"] is not None

    def check(self, params: dict) -> tuple[str, ...]:
        for split in (None, "test") if self.has_splits(params) else (None,):
            hr_dir, lr_dir = self._dirs(params, split)
            for key, folder in (("data.hr_dir", hr_dir), ("data.lr_dir", lr_dir)):
                if not folder.is_dir():
                    raise UserError(f"{key}: {folder} is not a folder")
            matched_sr_files(hr_dir, lr_dir)
        return ("lr", "hr")

    def load(self, params: dict, split: str | None = None):
        hr_dir, lr_dir = self._dirs(params, split)
        self.check(params)
        return load_sr_folders(hr_dir, lr_dir, pair_scale(hr_dir, lr_dir), params["channels"], params["on_error"])


DATASETS.register("sr_folders", description="super-resolution pairs: HR images and their real LR versions in two folders, matched by name", schema=SCHEMA)(SRFolders())
