"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from gantrain.errors import UserError

_MAGIC = {2049: 1, 2051: 3}  # labels: 1 dimension; images: 3 dimensions


def read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes; raise UserError for a wrong magic number or truncation."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{path}: cannot read IDX file ({err}); the download may be incomplete, fetch it again") from None
    if len(raw) < 4:
        raise UserError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC or _MAGIC[magic] != expect_dims:
        kind = "labels" if expect_dims == 1 else "images"
        raise UserError(f"{path}: wrong magic number {magic} for an IDX {kind} file (expected {2049 if expect_dims == 1 else 2051})")
    header = 4 + 4 * expect_dims
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expect_dims)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise UserError(f"{path}: truncated or padded IDX file: header says {dims} = {expected} bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
