"""The on-disk format of a records folder (written by ``make_dataset``, read by the 'records' data source).

A folder holds ArrayRecord shards ``shard-KKKKK-of-NNNNN.array_record`` and ``index.json``. Each record is one
tile of one array: a 6-byte header (uint16 h, uint16 w, uint8 channels, uint8 filter) and h*w*c uint8 bytes.
Filter 1 ("up") stores each row minus the row above (mod 256), which lets zstd compress photographs ~1.3x
better than raw pixels; undoing it is one ``cumsum`` over rows. The shard itself is zstd-compressed per
record (``group_size:1``, so every record can be read on its own).

Within a shard, an image's records are its tiles in row-major order, and per tile the HR array and then the
LR arrays in the index's ``scales`` order: ``key = first_record + tile * (1 + len(scales)) + array``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "CODECS", "INDEX_NAME", "shard_name", "encode_tile", "decode_tile", "subimage_hash",
           "write_json_atomic", "load_index"]

FORMAT = "lsm-jax-records/1"
INDEX_NAME = "index.json"
# codec name -> (row filter id, ArrayRecord writer options)
CODECS = {
    "up-zstd": (1, "group_size:1,zstd:3"),
    "raw": (0, "group_size:1,uncompressed"),
}
_HEADER = struct.Struct("<HHBB")


def shard_name(k: int, n: int) -> str:
    """File name of shard ``k`` of ``n``."""
    return f"shard-{k:05d}-of-{n:05d}.array_record"


def encode_tile(tile: np.ndarray, row_filter: int) -> bytes:
    """uint8 (h, w, c) -> record bytes (header + pixels, filtered by ``row_filter`` 0 = none, 1 = up)."""
    h, w, c = tile.shape
    if row_filter == 1:
        d = np.empty_like(tile)
        d[0] = tile[0]
        np.subtract(tile[1:], tile[:-1], out=d[1:])  # uint8 wraps: exactly invertible
        tile = d
    return _HEADER.pack(h, w, c, row_filter) + np.ascontiguousarray(tile).tobytes()


def decode_tile(record: bytes, out: np.ndarray | None = None) -> np.ndarray:
    """Record bytes -> uint8 (h, w, c), written into ``out`` (any strides, the right shape) if given."""
    h, w, c, row_filter = _HEADER.unpack_from(record)
    data = np.frombuffer(record, np.uint8, h * w * c, _HEADER.size).reshape(h, w, c)
    if out is None:
        out = np.empty((h, w, c), np.uint8)
    elif out.shape != (h, w, c):
        raise ValueError(f"record holds a {h}x{w}x{c} tile, expected {out.shape}")
    if row_filter == 1:
        np.cumsum(data, axis=0, dtype=np.uint8, out=out)
    elif row_filter == 0:
        out[...] = data
    else:
        raise ValueError(f"unknown row filter {row_filter} in record")
    return out


def subimage_hash(arrays: list[np.ndarray]) -> str:
    """Content hash of a sub-image (HR then LR arrays): blake2b-64 hex of their shapes and bytes."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to a temporary name, then rename: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


def load_index(folder: str | os.PathLike) -> dict[str, Any]:
    """The index of a records folder; clear errors for a missing, unfinished or foreign folder."""
    folder = Path(folder)
    p = folder / INDEX_NAME
    if not p.is_file():
        hint = " (make_dataset has not finished there; run it again to complete it)" if folder.is_dir() else ""
        raise FileNotFoundError(f"{folder}: no {INDEX_NAME}, not a records folder{hint}")
    index = json.loads(p.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{p}: format {index.get('format')!r}, expected {FORMAT!r}")
    return index
