"""Geometric self-ensemble (the "+" rows of SR papers, LSM+): the 8 flips/transposes, averaged.

Each of the 8 elements g of the dihedral group of the square is applied to the LR image, the model
runs on g(x), the output is mapped back with g⁻¹, and the 8 float32 results are averaged before any
rounding. The 8 values of each pixel are sorted before summing, so the mean does not depend on the
order of the transforms: the ensemble is then exactly equivariant, E(g(x)) = g(E(x)) bit for bit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]
BatchFn = Callable[[np.ndarray], np.ndarray]

__all__ = ["TRANSFORMS", "apply", "invert", "self_ensemble"]

# (transpose, flip rows, flip columns): all 8 combinations; applied as transpose, then the flips.
TRANSFORMS: tuple[tuple[bool, bool, bool], ...] = tuple(
    (t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True))


def apply(x: np.ndarray, g: tuple[bool, bool, bool]) -> np.ndarray:
    """g(x) for an (H, W, ...) array."""
    t, fy, fx = g
    if t:
        x = np.swapaxes(x, 0, 1)
    if fy:
        x = x[::-1]
    if fx:
        x = x[:, ::-1]
    return x


def invert(y: np.ndarray, g: tuple[bool, bool, bool]) -> np.ndarray:
    """g⁻¹(y): undo the flips, then the transpose."""
    t, fy, fx = g
    if fx:
        y = y[:, ::-1]
    if fy:
        y = y[::-1]
    if t:
        y = np.swapaxes(y, 0, 1)
    return y


def _mean_sorted(outs: list[np.ndarray]) -> np.ndarray:
    """Mean over the 8 outputs: sorted per pixel (order-free, so exactly equivariant), then summed
    pairwise (8 equal values give exactly that value back: 2v, 4v, 8v are exact)."""
    stack = np.sort(np.stack(outs, axis=0), axis=0)
    while stack.shape[0] > 1:
        stack = stack[0::2] + stack[1::2]
    return stack[0] * np.float32(1.0 / len(outs))


def self_ensemble(upscale_fn: UpscaleFn, batch_fn: BatchFn | None = None) -> UpscaleFn:
    """Wrap `upscale_fn` ((h, w, 3) -> (s·h, s·w, 3)) into its 8-transform self-ensemble.

    `batch_fn` ((B, h, w, 3) -> (B, s·h, s·w, 3)), when given, runs the transforms of one shape as
    one batch (4 + 4, or all 8 for a square image). Only pass it for a model whose batch elements
    are independent (`paper` semantics): under `reference` semantics images in a batch interact.
    """

    def fn(lr: np.ndarray) -> np.ndarray:
        lr = np.asarray(lr, np.float32)
        inputs = [np.ascontiguousarray(apply(lr, g)) for g in TRANSFORMS]
        if batch_fn is None:
            raw = [np.asarray(upscale_fn(x), np.float32) for x in inputs]
        else:
            raw = [None] * len(inputs)
            shapes: dict[tuple, list[int]] = {}
            for i, x in enumerate(inputs):
                shapes.setdefault(x.shape, []).append(i)
            for idx in shapes.values():
                ys = np.asarray(batch_fn(np.stack([inputs[i] for i in idx])), np.float32)
                for i, y in zip(idx, ys):
                    raw[i] = y
        return _mean_sorted([np.ascontiguousarray(invert(y, g)) for y, g in zip(raw, TRANSFORMS)])

    return fn
