"""Dataset loaders (registered in DATASETS) and the shared tf.data pipeline."""

from gantrain.data import cifar10, image_folder, mnist  # noqa: F401
from gantrain.data.source import ImageSource, make_pipeline, to_uint8, to_unit_range  # noqa: F401
from gantrain.registry import DATASETS


def load_dataset(data_cfg: dict, split: str | None = None) -> ImageSource:
    """Load the images named by a resolved ``data`` config section."""
    return DATASETS.get(data_cfg["loader"]).load(data_cfg, split)


def has_splits(data_cfg: dict) -> bool:
    """Whether the loader has a held-out test split for this config (else one set of images)."""
    return DATASETS.get(data_cfg["loader"]).has_splits(data_cfg)
