"""Few compiled shapes for many image sizes: bucketed padding, and JAX's persistent compile cache.

A jitted forward compiles once per input shape (about 1 s for a tiny model on CPU, tens of seconds
for LSM). `bucketed` reflect-pads each image up to the next bucket side (a multiple of the attention
window from a geometric ladder, see `bucket_side`) and crops the output, so a folder of
differently sized photos compiles a handful of times. Padding changes what attention and the SMU see
near the border, so `evaluate` keeps it off unless asked (measured in docs/readme/inference.md).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]

__all__ = ["bucket_side", "bucketed", "cache_dir", "enable_compilation_cache"]

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


def bucketed(upscale_fn: UpscaleFn, scale: int, window: int) -> UpscaleFn:
    """Wrap `upscale_fn` to run on images reflect-padded (bottom/right) to bucket shapes, cropped back."""

    def fn(lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        hb, wb = bucket_side(h, window), bucket_side(w, window)
        if (hb, wb) == (h, w):
            return upscale_fn(lr)
        # numpy's reflect repeats the mirror for pads larger than the image.
        padded = np.pad(lr, ((0, hb - h), (0, wb - w), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        return np.asarray(upscale_fn(padded))[: h * scale, : w * scale]

    return fn


def cache_dir() -> Path:
    """The user's compile cache folder: $LSM_JAX_CACHE_DIR, else $XDG_CACHE_HOME/lsm-jax/jax, else
    ~/.cache/lsm-jax/jax."""
    if os.environ.get("LSM_JAX_CACHE_DIR"):
        return Path(os.environ["LSM_JAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lsm-jax" / "jax"


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in `directory` (default `cache_dir()`).

    Returns the folder, or None (with a warning) if it cannot be created: a cache is never a reason
    to fail a run.
    """
    import jax

    path = Path(directory) if directory is not None else cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("compile cache disabled: cannot create %s (%s)", path, exc)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Cache every compile that takes a noticeable time (the default 1 s misses the tiny models).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
