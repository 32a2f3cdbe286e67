"""Label subsets for semi-supervised training (``data.labeled_per_class``)."""

from __future__ import annotations

import numpy as np

from gantrain.data.source import ImageSource
from gantrain.errors import UserError


def keep_labels_per_class(source, per_class: int, seed: int):
    """Keep labels on ``per_class`` randomly chosen images of each class; the rest become -1."""
    if source.num_classes < 2:
        raise UserError(f"data.labeled_per_class: {source.description} has no class labels to subsample")
    rng = np.random.default_rng(seed)
    labels = np.full_like(source.labels, -1)
    for k in range(source.num_classes):
        idx = np.flatnonzero(source.labels == k)
        if len(idx) < per_class:
            raise UserError(f"data.labeled_per_class: class {source.class_names[k]!r} has only {len(idx)} images, fewer than {per_class}")
        keep = rng.choice(idx, per_class, replace=False)
        labels[keep] = k
    return ImageSource(source.images, labels, source.class_names, f"{source.description}, {per_class} labels per class", source.location)


def labeled_subset(source):
    mask = source.labels >= 0
    if not mask.any():
        raise UserError(f"{source.description}: no labelled images for the supervised loss")
    return ImageSource(source.images[mask], source.labels[mask], source.class_names, f"{source.description} (labelled part)", source.location)


