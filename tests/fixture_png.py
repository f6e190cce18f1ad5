"""Test inputs: seeded random pixels and an independent minimal PNG writer (not the code under test)."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def rng_img(shape, dtype=np.uint8, seed=0):
    hi = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, hi + 1, shape, dtype=np.int64).astype(dtype)


def plain_png(pixels: np.ndarray, interlace: bool = False) -> bytes:
    """An independent minimal PNG writer (filter type 0 only; optional Adam7) for test inputs."""
    a = pixels if pixels.ndim == 3 else pixels[..., None]
    h, w, c = a.shape
    depth = 8 * a.dtype.itemsize
    be = a.astype(a.dtype.newbyteorder(">"))
    passes = [(0, 0, 1, 1)]
    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)]
        passes.append((0, 1, 1, 2))
    stream = b""
    for x0, y0, dx, dy in passes:
        sub = be[y0::dy, x0::dx]
        if sub.size:
            stream += b"".join(b"\x00" + row.tobytes() for row in sub)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace))
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(stream)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body
