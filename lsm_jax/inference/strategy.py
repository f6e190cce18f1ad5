"""Inference options put together: memory budget and tiles, OOM retry, self-ensemble, buckets, dtype.

    up = Upscaler.from_checkpoint(ckpt, dtype='bfloat16')
    fn = build_upscale_fn(up, InferenceOptions(max_memory=parse_size('4GB'), ensemble=True))
    sr = fn(lr)                   # (h, w, 3) float32 in [0, 1] -> (s·h, s·w, 3) float32

Order per image: the tile plan (whole image if it fits the budget), then per tile the ensemble, then
the bucket padding, then the jitted forward. An out-of-memory error shrinks the tile and retries the
image; the smaller tile is kept for the images that follow.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lsm_jax.inference.budget import (FIXED_BYTES, default_budget, format_size, tile_for_budget,
                                     whole_image_bytes)
from lsm_jax.inference.buckets import bucket_floor, bucket_side, bucketed
from lsm_jax.inference.ensemble import self_ensemble
from lsm_jax.inference.tiling import is_out_of_memory, shrink_tile, tiled

UpscaleFn = Callable[[np.ndarray], np.ndarray]
log = logging.getLogger(__name__)

__all__ = ["InferenceOptions", "TiledRunner", "build_upscale_fn"]


@dataclass
class InferenceOptions:
    """What `upscale`/`evaluate` ask for. `tile` forces a tile side; otherwise `max_memory` (bytes,
    default: from the device) decides between the whole image and tiles."""

    tile: int | None = None
    max_memory: int | None = None
    overlap: int = 16
    ensemble: bool = False
    buckets: bool = False
    min_tile: int | None = None


class TiledRunner:
    """Callable (h, w, 3) -> (s·h, s·w, 3) that picks whole-image or tiled inference per image.

    `forward` is the per-tile function (already ensembled/bucketed); `cfg` the network config (for
    the memory estimate); `align` the tile alignment (the attention window).
    """

    def __init__(self, forward: UpscaleFn, cfg, opts: InferenceOptions, *, align: int, device=None,
                 batch: int = 1, report: Callable[[str], None] | None = None):
        self.forward, self.cfg, self.opts, self.align, self.batch = forward, cfg, opts, align, batch
        self.scale = int(cfg.upscale)
        self.budget = opts.max_memory if opts.max_memory is not None else default_budget(device)
        self.cap: int | None = opts.tile      # largest tile allowed so far (shrinks after an OOM)
        self.min_tile = opts.min_tile or max(align, 2 * opts.overlap + align)
        self.report = report or (lambda line: print(line, file=sys.stderr))
        self.tiles_used: list[int | None] = []
        if self.budget <= FIXED_BYTES:
            self.report(f"note: a {format_size(self.budget)} budget is below the runtime's own "
                        f"~{format_size(FIXED_BYTES)}; using the smallest tiles")

    def tile_for(self, h: int, w: int) -> int | None:
        ens = 8 if self.opts.ensemble else 1
        if self.cap is None and whole_image_bytes(self.cfg, h, w, ens, self.batch) <= self.budget:
            return None
        side = tile_for_budget(self.cfg, self.budget, align=self.align, image_hw=(h, w), ensemble=ens,
                               batch=self.batch, minimum=self.min_tile)
        if self.cap is not None:
            side = min(side, self.cap)
        if self.opts.buckets:       # a ladder size: its tiles reach the bucketed forward unpadded
            side = max(bucket_floor(side, self.align), self.align)
        return None if side >= max(h, w) else side

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        tile = self.tile_for(h, w)
        while True:
            try:
                sizes = (lambda n: bucket_side(n, self.align)) if self.opts.buckets else None
                fn = self.forward if tile is None else tiled(self.forward, self.scale, tile, self.opts.overlap,
                                                             align=self.align, sizes=sizes)
                out = fn(lr)
                self.tiles_used.append(tile)
                return out
            except Exception as exc:  # noqa: BLE001 - only allocation failures are retried
                if not is_out_of_memory(exc):
                    raise
                current = tile if tile is not None else (max(h, w) // self.align) * self.align
                smaller = shrink_tile(current, self.align, self.min_tile)
                if smaller is not None and self.opts.buckets:
                    smaller = bucket_floor(smaller, self.align)
                if smaller is None:
                    raise MemoryError(f"out of memory even with {current}x{current} tiles "
                                      f"(budget {format_size(self.budget)}): {exc}") from exc
                self.report(f"out of memory with {'the whole image' if tile is None else f'{tile}px tiles'}; "
                            f"retrying with {smaller}px tiles")
                tile = self.cap = smaller


def build_upscale_fn(upscaler, opts: InferenceOptions, *, report=None) -> TiledRunner:
    """The full per-image function for an `Upscaler` (which carries its network config as `.cfg`)."""
    cfg = upscaler.cfg
    align = max(int(v) for v in cfg.split_size)
    fn: UpscaleFn = upscaler
    if opts.buckets:
        fn = bucketed(upscaler.in_shape, align)
    batch = 1
    if opts.ensemble:
        # Batch the transforms (4 per shape) only where images in a batch do not interact.
        batch_fn = upscaler.batch if upscaler.batch_independent and not opts.buckets else None
        batch = 4 if batch_fn is not None else 1
        fn = self_ensemble(fn, batch_fn=batch_fn)
    return TiledRunner(fn, cfg, opts, align=align, device=upscaler.device, batch=batch, report=report)
