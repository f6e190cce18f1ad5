"""Few compiled shapes for many image sizes: bucket shapes (the compile cache: `lsm_jax.runtime.compile_cache`).

A jitted forward compiles once per input shape (about 1 s for a tiny model on CPU, tens of seconds
for LSM). `bucketed` runs each image inside the next bucket shape (sides that are multiples of the
attention window, from a geometric ladder, see `bucket_side`), so a folder of differently sized
photos compiles a handful of times. The bucket is exact: the image is zero-padded and the network is
told where it lies (`lsm_jax.model.extent`), so the output equals the forward at the image's own
size; `tests/test_buckets_exact.py` checks this through `lsm-upscale`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]
InShapeFn = Callable[[np.ndarray, tuple[int, int]], np.ndarray]   # (image, bucket shape) -> output

__all__ = ["bucket_floor", "bucket_side", "bucketed"]


def bucket_side(side: int, window: int) -> int:
    """The smallest bucket side >= `side`, a multiple of `window`.

    In windows: 1, 2, 3, 4, then two sizes per octave up to 32 windows (6, 8, 12, 16, 24, 32: a
    side grows by at most 1/2, where compiling costs more than the padded pixels), then four per
    octave (40, 48, 56, 64, 80, ...: at most 1/4, where the pixels cost more).
    """
    if side < 1 or window < 1:
        raise ValueError(f"side {side} and window {window} must be positive")
    units = math.ceil(side / window)
    if units <= 4:
        return units * window
    octave = 4
    while True:
        steps = (1, 1.5, 2) if octave < 32 else (1, 1.25, 1.5, 1.75, 2)
        for m in steps:
            if m * octave >= units:
                return int(m * octave) * window
        octave *= 2


def bucket_floor(side: int, window: int) -> int:
    """The largest bucket side <= `side` (at least `window`): a tile cap whose tiles need no padding."""
    units = max(side // window, 1)
    while bucket_side(units * window, window) != units * window:
        units -= 1
    return units * window


def bucketed(in_shape_fn: InShapeFn, window: int) -> UpscaleFn:
    """Wrap `in_shape_fn(lr, shape)` (e.g. `Upscaler.in_shape`) to run each image in its bucket shape."""

    def fn(lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        return in_shape_fn(lr, (bucket_side(h, window), bucket_side(w, window)))

    return fn
