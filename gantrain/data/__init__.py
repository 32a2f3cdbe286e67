"""Dataset loaders (registered in DATASETS) and the shared tf.data pipeline."""

from gantrain.data import cifar10, image_folder, mnist, paired_folder, sr_folders, unpaired_folders  # noqa: F401
from gantrain.data.pairs import DerivedPairs, PairedSource, UnpairedSource, derive_pairs  # noqa: F401
from gantrain.data.source import ImageSource, Source, make_pipeline, shuffled_indices, to_uint8, to_unit_range  # noqa: F401
from gantrain.errors import UserError
from gantrain.registry import DATASETS

SPLITS = ("train", "test")


def check_split(split: str, flag: str = "split") -> str:
    """``split`` if it names a split; else a UserError listing the valid ones (not a KeyError later)."""
    if split not in SPLITS:
        raise UserError(f"{flag} {split!r}: valid splits are {', '.join(SPLITS)}")
    return split


def load_dataset(data_cfg: dict, split: str | None = None) -> Source:
    """Load the images named by a resolved ``data`` config section (``split`` overrides the config's).

    With ``data.pairs`` the images become (derived input, image) pairs; their jitter applies to
    training batches only, never to a held-out split.
    """
    if split is not None:
        check_split(split)
    source = DATASETS.get(data_cfg["loader"]).load(data_cfg, split)
    if data_cfg.get("pairs"):
        if not isinstance(source, ImageSource):
            raise UserError(f"data.pairs: derives pairs from a folder or dataset of images; {source.description} is already {', '.join(source.roles)} data")
        source = derive_pairs(source, data_cfg["pairs"], data_cfg["pairs_factor"], jitter=data_cfg["pairs_jitter"] and split != "test")
    return source


def check_data(data_cfg: dict) -> tuple[str, ...]:
    """Fail now, with the loader's own message, on data files a config names but that are not there.

    Returns the data roles the configured data provides per example (``image``, and ``label`` when
    it has classes), without decoding anything.
    """
    roles = tuple(DATASETS.get(data_cfg["loader"]).check(data_cfg))
    if data_cfg.get("pairs"):
        if "image" not in roles:
            raise UserError(f"data.pairs: derives pairs from images; data.loader {data_cfg['loader']!r} provides {', '.join(roles)}")
        return ("source", "target")
    return roles


def require_roles(needed, provided, family: str, data: str) -> None:
    """A family's step reads these roles from every batch; refuse data that cannot provide one."""
    missing = [role for role in needed if role not in provided]
    if missing:
        raise UserError(f"model.family {family!r} reads the data roles {', '.join(needed)} in every step, but {data} provides only "
                        f"{', '.join(provided)} (no {', '.join(missing)}; for labels use mnist, fashion_mnist, cifar10, or an "
                        "image_folder with one subfolder per class)")


def held_out_split(data_cfg: dict) -> ImageSource | None:
    """The loader's test split (held out from training: classifier accuracy, FID), or None when it
    has none (an image folder is one set of images)."""
    return load_dataset(data_cfg, split="test") if has_splits(data_cfg) else None


def has_splits(data_cfg: dict) -> bool:
    """Whether the loader has a held-out test split for this config (else one set of images)."""
    return DATASETS.get(data_cfg["loader"]).has_splits(data_cfg)
