"""Seamless tiled inference: overlapping equal-size tiles blended with a smooth partition of unity.

Axis legend: H, W LR height/width; s the scale; n the tile side along one axis; k tiles per axis.

Along each axis the image is covered by k tiles of one size n (one shape to compile), a multiple of
the attention window where the image allows, with starts spread evenly so every neighbour pair
overlaps by at least `overlap` LR pixels. Each tile's output is weighted by a raised-cosine ramp
that is zero within `margin` pixels of the tile's inner edges (where it lacks context) and one in its
interior; the per-axis weights are normalised to sum to one, so their outer products sum to one at
every output pixel. Tiles are merged with an incremental weighted mean, so where the tiles agree
(a model without global mixing, given enough context) the result equals the whole-image output
bit for bit.

LSM's SMU token grouping and the `paper` recurrence span the whole input, so for LSM the tiled
output is close to, not equal to, the whole-image one (measured in docs/inference.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]

__all__ = ["AxisPlan", "plan_axis", "axis_weights", "blend_weights_2d", "tiled", "is_out_of_memory",
           "shrink_tile"]


@dataclass(frozen=True)
class AxisPlan:
    """Tiles along one axis: equal size `size`, LR start offsets `starts` (ascending)."""

    length: int
    size: int
    starts: tuple[int, ...]

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(s, s + self.size) for s in self.starts]


def plan_axis(length: int, tile: int, overlap: int, align: int = 1,
              sizes: Callable[[int], int] | None = None) -> AxisPlan:
    """Cover [0, length) with equal tiles of at most `tile` pixels overlapping by >= `overlap`.

    The tile count is the smallest that fits; the common size is then the smallest multiple of
    `align` that still gives the overlap (never above `tile`, which callers keep aligned), or, with
    `sizes` (a ladder: the smallest allowed size >= n), the ladder's size for it, so that images of
    many sizes share a few tile shapes (`tile` is then a ladder size too); the starts are spread
    evenly from 0 to length - size.
    """
    if tile < 1 or overlap < 0 or align < 1:
        raise ValueError(f"tile {tile}, overlap {overlap}, align {align}: need tile >= 1, overlap >= 0")
    if length <= tile:
        return AxisPlan(length, length, (0,))
    overlap = min(overlap, tile - 1)
    k = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (k - 1) * overlap) / k)
    size = min(tile, sizes(size) if sizes is not None else math.ceil(size / align) * align, length)
    if size >= length:
        return AxisPlan(length, length, (0,))
    starts = tuple(int(round(i * (length - size) / (k - 1))) for i in range(k))
    return AxisPlan(length, size, starts)


def axis_weights(plan: AxisPlan, scale: int, overlap: int, margin: int | None = None) -> np.ndarray:
    """(k, s·length) float64 blending weights at output resolution; columns sum to one.

    A tile's raw weight at an output pixel rises as a raised cosine from 0 at `margin` LR pixels from
    its nearest inner edge to 1 at `overlap - margin`; image borders are not inner edges.
    """
    overlap = min(overlap, max(plan.size - 1, 0))  # as `plan_axis` clamps it: tiles smaller than the overlap
    margin = max(0, overlap // 4) if margin is None else margin
    margin = max(0, min(margin, (overlap - 1) // 2))
    ramp = max(overlap - 2 * margin, 1)
    pos = (np.arange(plan.length * scale) + 0.5) / scale          # output pixel centres in LR units
    raw = np.zeros((len(plan.starts), pos.size))
    for i, (a, b) in enumerate(plan.spans):
        inside = (pos >= a) & (pos < b)
        d_lo = pos - a if a > 0 else np.inf
        d_hi = b - pos if b < plan.length else np.inf
        d = np.minimum(d_lo, d_hi)
        t = np.clip((d - margin) / ramp, 0.0, 1.0)
        raw[i] = np.where(inside, 0.5 - 0.5 * np.cos(np.pi * t), 0.0)
    total = raw.sum(axis=0, keepdims=True)
    # Inside an overlap of width >= `overlap` one of the two tiles is >= overlap/2 > margin from its
    # edge, so every pixel has a positive weight; check rather than divide by zero.
    if not np.all(total > 0):
        raise AssertionError(f"tile plan {plan} leaves output pixels without weight")
    return raw / total


def blend_weights_2d(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """(ky, kx, sH, sW) weights of every tile (outer products); they sum to one at every pixel."""
    return wy[:, None, :, None] * wx[None, :, None, :]


def tiled(upscale_fn: UpscaleFn, scale: int, tile: int, overlap: int = 16, *, align: int = 1,
          margin: int | None = None, sizes: Callable[[int], int] | None = None) -> UpscaleFn:
    """Wrap `upscale_fn` (float32 (h, w, c) -> (s·h, s·w, c)) to run on blended tiles of <= `tile`.

    Images no larger than `tile` go through unchanged (the whole-image result). `sizes`: the tile
    size ladder of `plan_axis`.
    """

    def fn(lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        if h <= tile and w <= tile:
            return upscale_fn(lr)
        py, px = plan_axis(h, tile, overlap, align, sizes), plan_axis(w, tile, overlap, align, sizes)
        wy, wx = axis_weights(py, scale, overlap, margin), axis_weights(px, scale, overlap, margin)
        cy, cx = np.cumsum(wy, axis=0), np.cumsum(wx, axis=0)
        c = lr.shape[2]
        out = np.zeros((h * scale, w * scale, c), np.float32)
        n_y, n_x = py.size * scale, px.size * scale
        for i, ys in enumerate(py.starts):
            y0 = ys * scale
            for j, xs in enumerate(px.starts):
                x0 = xs * scale
                sr = np.asarray(upscale_fn(lr[ys:ys + py.size, xs:xs + px.size]), np.float32)
                if sr.shape != (n_y, n_x, c):
                    raise ValueError(f"the model returned shape {sr.shape} for a {py.size}x{px.size} tile")
                ry, rx = slice(y0, y0 + n_y), slice(x0, x0 + n_x)
                # Incremental weighted mean m += (w / W)(v - m), W the weight merged so far: the rows
                # of tiles above (their y weights times the full x sum, 1) plus this row up to j.
                done = (cy[i - 1, ry] if i else np.zeros(n_y))[:, None]
                total = done + wy[i, ry][:, None] * cx[j, rx][None, :]
                wt = wy[i, ry][:, None] * wx[j, rx][None, :]
                ratio = np.divide(wt, total, out=np.zeros_like(wt), where=total > 0).astype(np.float32)
                view = out[ry, rx]
                view += ratio[..., None] * (sr - view)
        return out

    return fn


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure (numpy MemoryError, XLA RESOURCE_EXHAUSTED)."""
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                   "Allocator ran out", "Failed to allocate"))


def shrink_tile(tile: int, align: int, minimum: int) -> int | None:
    """The next smaller aligned tile after an out-of-memory error (about 0.7×, i.e. half the area),
    or None below `minimum`."""
    new = (int(tile * 0.7) // align) * align
    if new >= tile:
        new = tile - align
    return new if new >= minimum else None
