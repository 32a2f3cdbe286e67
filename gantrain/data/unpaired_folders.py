"""The ``unpaired_folders`` loader: two image domains for CycleGAN, as an :class:`UnpairedSource`.

Where the domains are read from:

* ``root`` in the CycleGAN datasets' layout: ``trainA/ trainB/`` (and ``testA/ testB/`` for the
  test split) under it;
* or any two folders, ``domain_a`` and ``domain_b`` (the test split from ``domain_a_test`` and
  ``domain_b_test``), e.g. two class folders of one image folder: ``cifar10-jpeg-test/horse`` and
  ``cifar10-jpeg-test/deer``.

``holdout`` holds a fraction of each domain out as the test split instead: which images is fixed
by the sorted file names and a fixed-seed permutation (:func:`holdout_indices`), never by the
run's seed, so training, evaluation and the domain classifier agree on it. The domains may differ
in size; images are decoded as by ``paired_folder`` (any mode and size, resized and centre-cropped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gantrain.data.holdout import held_out_indices
from gantrain.data.paired_folder import IMAGE_SIZE, ON_ERROR, decode_all, image_files, kept, no_images, read_image
from gantrain.data.pairs import UnpairedSource
from gantrain.errors import UserError
from gantrain.registry import DATASETS
from gantrain.schema import Field

ROLES = ("domain_a", "domain_b")
NAMED = ("domain_a", "domain_b", "domain_a_test", "domain_b_test")
LAYOUT = "trainA/ trainB/ testA/ testB/"
SCHEMA = {
    "root": Field(None, f"folder in the CycleGAN layout ({LAYOUT}); or set domain_a and domain_b instead", "path", nullable=True),
    "domain_a": Field(None, "folder of domain A's images (any two folders, instead of root)", "path", nullable=True),
    "domain_b": Field(None, "folder of domain B's images", "path", nullable=True),
    "domain_a_test": Field(None, "folder of domain A's test images (with domain_a; else no test split unless holdout)", "path", nullable=True),
    "domain_b_test": Field(None, "folder of domain B's test images (with domain_b)", "path", nullable=True),
    "holdout": Field(0.0, "fraction of each domain held out as the test split, the same images whatever the seed (0 = none)", "float", min=0, max=0.9),
    "split": Field("train", "train or test", "str", choices=("train", "test")),
    "image_size": IMAGE_SIZE,
    "channels": Field(3, "1 = grey, 3 = RGB (both domains; images are converted)", "int", choices=(1, 3)),
    "on_error": ON_ERROR,
    "jitter": Field(False, "pix2pix random jitter: resize to 286/256 of the size, random crop back and random left-right mirroring, each domain on its own", "bool"),
}


def _has_test_folders(root: Path) -> bool:
    return (root / "testA").is_dir() and (root / "testB").is_dir()


def domain_folders(params: dict, split: str) -> list[tuple[str, Path]]:
    """[(config key, folder)] of domains A and B for ``split``; a UserError for a missing or contradictory setting."""
    holdout = params["holdout"]
    named = [key for key in NAMED if params[key]]
    if params["root"] and named:
        raise UserError(f"data.root and data.{named[0]}: set one: root for the CycleGAN layout ({LAYOUT}), or domain_a and domain_b for any two folders")
    if params["root"]:
        root = Path(params["root"])
        if not root.is_dir():
            raise UserError(f"data.root: {root} is not a folder")
        tests = _has_test_folders(root)
        if holdout and tests:
            raise UserError(f"data.holdout: {root} has testA/ and testB/ already; set data.holdout: 0 to test on them, or remove them")
        if split == "test" and not holdout and not tests:
            raise UserError(f"data.split: {root} has no testA/ and testB/ for the test split; add them, or hold part of trainA/ and trainB/ out with data.holdout (e.g. 0.1)")
        prefix = "test" if split == "test" and not holdout else "train"
        folders = [("data.root", root / f"{prefix}A"), ("data.root", root / f"{prefix}B")]
    else:
        for key in ("domain_a", "domain_b"):
            if not params[key]:
                raise UserError(f"data.{key}: required: unpaired_folders reads data.root ({LAYOUT}) or the two folders data.domain_a and data.domain_b")
        tests = [key for key in ("domain_a_test", "domain_b_test") if params[key]]
        if len(tests) == 1:
            other = "domain_b_test" if tests[0] == "domain_a_test" else "domain_a_test"
            raise UserError(f"data.{tests[0]}: set data.{other} too (a test split needs both domains), or neither")
        if holdout and tests:
            raise UserError("data.holdout: the test split comes from data.domain_a_test and data.domain_b_test already; set data.holdout: 0, or drop those two")
        if split == "test" and not holdout and not tests:
            raise UserError("data.split: no test split: set data.domain_a_test and data.domain_b_test, or hold part of each domain out with data.holdout (e.g. 0.1)")
        keys = ("domain_a_test", "domain_b_test") if split == "test" and not holdout else ("domain_a", "domain_b")
        folders = [(f"data.{key}", Path(params[key])) for key in keys]
    for key, folder in folders:
        if not folder.is_dir():
            where = f" (the CycleGAN layout has {LAYOUT} under data.root)" if key == "data.root" else ""
            raise UserError(f"{key}: {folder} is not a folder{where}")
    return folders


def holdout_indices(n: int, fraction: float, split: str, folder: Path) -> np.ndarray:
    """Sorted indices of ``split`` ('train' or 'test') among ``n`` sorted files when ``fraction`` is held out
    as the test split: the first ``max(1, round(fraction * n))`` of a permutation seeded with ``data.holdout.SPLIT_SEED``."""
    test = np.zeros(n, bool)
    test[held_out_indices(np.full(n, -1), fraction, "image")] = True  # image_folder's rule: the same files of a folder
    keep = np.flatnonzero(test if split == "test" else ~test)
    if not len(keep):
        raise UserError(f"data.holdout: holding out {fraction:g} of the {n} images in {folder} leaves no {split} images; change data.holdout or add images")
    return keep


def domain_files(params: dict, split: str) -> list[tuple[str, Path, list[Path]]]:
    """[(key, folder, files)] per domain for ``split``, the holdout applied: listing only, nothing decoded."""
    out = []
    for key, folder in domain_folders(params, split):
        files = image_files(folder)
        if not files:
            raise no_images(key, folder)
        if params["holdout"]:
            files = [files[i] for i in holdout_indices(len(files), params["holdout"], split, folder)]
        out.append((key, folder, files))
    return out


class UnpairedFolders:
    def image_shape(self, params: dict) -> tuple:
        return (*params["image_size"], params["channels"])

    def has_splits(self, params: dict) -> bool:
        if params["holdout"]:
            return True
        if params["root"]:
            return Path(params["root"]).is_dir() and _has_test_folders(Path(params["root"]))
        return bool(params["domain_a_test"] and params["domain_b_test"])

    def check(self, params: dict) -> tuple[str, ...]:
        """Both domains' folders of the split (and of the test split, when there is one) exist and hold images; nothing is decoded."""
        for split in dict.fromkeys([params["split"], *(["test"] if self.has_splits(params) else [])]):
            domain_files(params, split)
        return ROLES

    def load(self, params: dict, split: str | None = None) -> UnpairedSource:
        split = split or params["split"]
        size, channels, on_error = tuple(params["image_size"]), params["channels"], params["on_error"]
        domains, parts = [], []
        for key, folder, files in domain_files(params, split):
            decoded = decode_all(lambda path: read_image(path, size, channels, on_error), files)
            keep = kept(decoded, "image files", folder, key)
            domains.append(np.stack([decoded[i] for i in keep]))
            parts.append(f"{folder} ({len(keep)} images)")
        held = f", {params['holdout']:g} held out" if params["holdout"] else ""
        description = f"unpaired_folders {split}{held}: A = {parts[0]}, B = {parts[1]}"
        location = " | ".join(str(folder.resolve()) for _, folder in domain_folders(params, split))
        return UnpairedSource(domains[0], domains[1], description, location, jitter=params["jitter"])


DATASETS.register("unpaired_folders", description=f"two image domains for CycleGAN: {LAYOUT} under root, or any two folders (domain_a, domain_b)", schema=SCHEMA)(UnpairedFolders())
