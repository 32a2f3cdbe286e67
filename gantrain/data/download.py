"""The one place datasets are downloaded: Keras's cache (``~/.keras/<subdir>``), online only."""

from __future__ import annotations

from pathlib import Path


class DownloadError(Exception):
    """A download failed (usually: no internet). Loaders turn it into a UserError with a fix."""


def fetch(fname: str, origin: str, cache_subdir: str, extract: bool = False) -> Path:
    """Return the cached file, downloading it first if it is not there yet."""
    import keras

    try:
        return Path(keras.utils.get_file(fname, origin=origin, cache_subdir=cache_subdir, extract=extract))
    except Exception as err:  # keras raises a bare Exception for any fetch failure
        raise DownloadError(str(err).splitlines()[0][:200]) from None
