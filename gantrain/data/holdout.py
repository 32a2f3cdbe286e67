"""A held-out test split for data that has none (an image folder): ``data.holdout``.

The split depends only on the data and the fraction, never on the run's seed, so every run and
every evaluation on the same data holds out the same images. ``by: image`` holds out a fraction of
the images of each class (of all images when unlabelled); ``by: class`` holds out whole classes
(e.g. whole subjects of a face dataset, so a model is judged on people it never saw).
"""

from __future__ import annotations

import math

import numpy as np

from gantrain.data.source import ImageSource
from gantrain.errors import UserError

SPLIT_SEED = 20171  # fixed: the split is a property of the data, not of a run


def holdout_split(source: ImageSource, fraction: float, by: str, split: str) -> ImageSource:
    """The ``train`` or ``test`` part of ``source`` with ``fraction`` held out."""
    test = held_out_indices(source.labels, fraction, by)
    mask = np.zeros(len(source), bool)
    mask[test] = True
    keep = mask if split == "test" else ~mask
    if not keep.any():
        raise UserError(f"data.holdout: {fraction} of {source.description} leaves no {split} images; change data.holdout")
    what = f"held-out {fraction:g} by {by}" if split == "test" else f"without the held-out {fraction:g} by {by}"
    return ImageSource(source.images[keep], source.labels[keep], source.class_names, f"{source.description}, {split} split ({what})", source.location)


def held_out_indices(labels: np.ndarray, fraction: float, by: str) -> np.ndarray:
    rng = np.random.default_rng(SPLIT_SEED)
    if by == "class":
        classes = np.unique(labels[labels >= 0])
        if len(classes) < 2:
            raise UserError("data.holdout_by: class needs labelled data (class subfolders); use holdout_by: image")
        count = min(len(classes) - 1, max(1, math.ceil(fraction * len(classes))))
        chosen = rng.permutation(classes)[:count]
        return np.flatnonzero(np.isin(labels, chosen))
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    out = [g[rng.permutation(len(g))[: max(1, round(fraction * len(g)))]] for g in groups]
    return np.sort(np.concatenate(out)) if out else np.array([], int)
