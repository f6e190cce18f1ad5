"""MATLAB-compatible bicubic ``imresize`` in JAX (jit-able, uint8 and float).

This reproduces MATLAB's ``imresize(img, scale, 'bicubic')`` (antialiasing on):

- Keys cubic kernel with a = -0.5, widened by ``1/scale`` when downscaling;
- the sample positions ``u = x/scale + (1 - 1/scale)/2`` (1-based) and
  symmetric ("mirror with repeat") border handling;
- output size ``ceil(in * scale)``;
- the two 1-D passes in MATLAB's order (the axis with the smaller scale first,
  rows first on a tie), and for integer images the round-half-away-from-zero
  and saturation after *each* pass, as ``imresizemex`` does.

The 1-D weights depend only on static shapes and scales, so they are computed
once on the host in float64 (as MATLAB does) and become constants under
``jax.jit``. For rational scales (every integer factor, 3/4, 3/2, ...) the
weights repeat with the output phase, so each pass is a few strided
multiply-adds over a mirror-padded copy; other scales use a per-pixel gather.
Both are elementwise float32 sums, not matmuls, so TF32/bf16 matmul precision
settings cannot change the result.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["imresize", "modcrop", "output_size", "resize_weights"]

_KERNEL_WIDTH = 4.0  # support of the Keys cubic kernel


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 (float64)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


def _contributions(in_len: int, out_len: int, scale: float, antialiasing: bool):
    """MATLAB ``contributions`` before mirroring: float64 weights and raw 0-based indices (out, P)."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f"imresize: lengths must be >= 1, got in={in_len}, out={out_len}")
    width = _KERNEL_WIDTH
    if scale < 1 and antialiasing:
        # Stretch the kernel to low-pass before decimation (MATLAB's antialiasing).
        def kernel(x):
            return scale * _cubic(scale * x)

        width = _KERNEL_WIDTH / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    w = kernel(u[:, None] - idx)
    w = w / np.sum(w, axis=1, keepdims=True)
    keep = np.any(w != 0, axis=0)  # MATLAB drops all-zero columns
    return w[:, keep], idx[:, keep].astype(np.int64) - 1


def _mirror(idx: np.ndarray, in_len: int) -> np.ndarray:
    """MATLAB's symmetric border: 0-based index into 0..n-1, n-1..0, repeated."""
    m = np.mod(idx, 2 * in_len)
    return np.where(m < in_len, m, 2 * in_len - 1 - m)


@functools.lru_cache(maxsize=256)
def resize_weights(
    in_len: int, out_len: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions``: 1-D weights and source indices.

    Returns ``(weights (out_len, P) float64, indices (out_len, P) int32)`` with
    0-based, already mirrored indices; ``out[i] = sum_p w[i,p] * in[idx[i,p]]``.
    """
    w, idx = _contributions(in_len, out_len, scale, antialiasing)
    return w, _mirror(idx, in_len).astype(np.int32)


@functools.lru_cache(maxsize=256)
def _polyphase_plan(in_len: int, out_len: int, scale: float, antialiasing: bool):
    """Structure of a rational resize, or None when there is none to exploit.

    For scale = q/step (small integers), output ``r + k*q`` uses the weights of
    output ``r`` on the taps shifted by ``k*step``: the resize is ``q`` strided
    correlations of the mirror-padded input (no per-pixel gather). Returns
    ``(pad_index (L,), weights (q, P), offsets (q, P) into the padded axis, step, q)``;
    taps need not be contiguous (MATLAB drops all-zero columns).
    """
    w, idx = _contributions(in_len, out_len, scale, antialiasing)
    frac = Fraction(scale).limit_denominator(64)
    q, step = frac.numerator, frac.denominator
    if q > 16 or abs(float(frac) - scale) > 1e-12 or out_len < q:
        return None
    k = np.arange(out_len) // q
    r = np.arange(out_len) % q
    if not np.array_equal(idx, idx[r] + (k * step)[:, None]) or not np.allclose(w, w[r], rtol=0, atol=1e-12):
        return None
    lo, hi = int(idx.min()), int(idx.max()) + 1
    pad_index = _mirror(np.arange(lo, hi), in_len).astype(np.int32)
    return pad_index, w[:q], idx[:q] - lo, step, q


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_len * scale)``.

    A product within 1e-9 of an integer counts as that integer, so that e.g.
    ``510 * (1/3)`` gives 170 whatever the last bit of ``1/3`` is.
    """
    v = in_len * scale
    r = round(v)
    return int(r) if abs(v - r) < 1e-9 else int(math.ceil(v))


def modcrop(img, scale: int):
    """Crop ``img`` (H, W, ...) to ``(H - H % scale, W - W % scale, ...)`` from the top left."""
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def _spatial_axes(ndim: int) -> tuple[int, int]:
    if ndim == 2:
        return 0, 1
    if ndim in (3, 4):
        return ndim - 3, ndim - 2
    raise ValueError(
        f"imresize: expected an image (H, W), (H, W, C) or (N, H, W, C), got {ndim} dims"
    )


def _gather_axis(x: jax.Array, w: jax.Array, idx: jax.Array, axis: int) -> jax.Array:
    """General path: out[i] = sum_p w[i,p] * x[idx[i,p]] along ``axis``."""
    x = jnp.moveaxis(x, axis, 0)
    g = x[idx]  # (out, P, ...)
    w = w.reshape(w.shape + (1,) * (x.ndim - 1))
    return jnp.moveaxis(jnp.sum(g * w, axis=1), 0, axis)


def _polyphase_axis(x, pad_index, w, axis, offsets, step, q, out_len):
    """Rational path: ``q`` strided correlations of the mirror-padded input, interleaved."""
    x = jnp.take(x, pad_index, axis=axis)
    n0 = -(-out_len // q)
    phases = []
    for r in range(q):
        n = (out_len - r + q - 1) // q
        acc = None
        for t in range(w.shape[1]):
            a = offsets[r][t]
            term = jax.lax.slice_in_dim(x, a, a + (n - 1) * step + 1, stride=step, axis=axis) * w[r, t]
            acc = term if acc is None else acc + term
        if n < n0:  # the last phases can be one short; padded, then cut after interleaving
            widths = [(0, 0)] * x.ndim
            widths[axis] = (0, n0 - n)
            acc = jnp.pad(acc, widths)
        phases.append(acc)
    if q == 1:
        return phases[0]
    y = jnp.stack(phases, axis=axis + 1)
    y = y.reshape(y.shape[:axis] + (n0 * q,) + y.shape[axis + 2 :])
    return jax.lax.slice_in_dim(y, 0, out_len, axis=axis)


@functools.partial(jax.jit, static_argnames=("plans", "int_dtype"))
def _imresize_impl(x, arrays, *, plans, int_dtype):
    # plans: per pass (axis, None) for the gather path or (axis, (offsets, step, q, out_len)).
    for (axis, plan), (a, b) in zip(plans, arrays):
        if plan is None:
            x = _gather_axis(x, a, b, axis)
        else:
            x = _polyphase_axis(x, b, a, axis, *plan)
        if int_dtype is not None:
            # imresizemex rounds half away from zero and saturates after every pass.
            info = np.iinfo(int_dtype)
            x = jnp.clip(jnp.floor(x + 0.5), info.min, info.max)
    if int_dtype is not None:
        x = x.astype(int_dtype)
    return x


def imresize(
    img,
    scale: float | Sequence[float] | None = None,
    *,
    output_shape: Sequence[int] | None = None,
    antialiasing: bool = True,
) -> jax.Array:
    """MATLAB ``imresize(img, scale, 'bicubic')``; works eagerly and under ``jax.jit``.

    Args:
      img: (H, W), (H, W, C) or (N, H, W, C); uint8/uint16 (MATLAB's integer
        path, rounded after each pass) or float (no rounding, no clamping).
      scale: one factor, or (scale_h, scale_w); e.g. 0.5 or 1/3 to downscale.
      output_shape: (out_h, out_w) instead of ``scale``; the per-axis scale is
        then ``out/in`` as in MATLAB. If both are given, ``scale`` sets the
        kernel and ``output_shape`` the size.
      antialiasing: widen the kernel when downscaling (MATLAB's default).

    Returns:
      The resized image, same rank and dtype as ``img`` (float16/bfloat16 are
      computed in float32), spatial size ``ceil(in * scale)``.
    """
    x = jnp.asarray(img)
    ah, aw = _spatial_axes(x.ndim)
    in_hw = (x.shape[ah], x.shape[aw])
    if scale is None and output_shape is None:
        raise ValueError("imresize: give scale or output_shape")
    if scale is not None:
        sc = tuple(float(s) for s in (scale if isinstance(scale, (tuple, list)) else (scale, scale)))
        if len(sc) != 2 or min(sc) <= 0:
            raise ValueError(f"imresize: scale must be positive (one value or two), got {scale!r}")
        out_hw = tuple(output_size(n, s) for n, s in zip(in_hw, sc))
    if output_shape is not None:
        out_hw = tuple(int(n) for n in output_shape)
        if len(out_hw) != 2 or min(out_hw) < 1:
            raise ValueError(f"imresize: output_shape must be two positive ints, got {output_shape!r}")
        if scale is None:
            sc = tuple(o / n for o, n in zip(out_hw, in_hw))

    dtype = x.dtype
    if jnp.issubdtype(dtype, jnp.integer):
        if dtype not in (jnp.uint8, jnp.uint16):
            raise TypeError(f"imresize: integer input must be uint8 or uint16, got {dtype}")
        int_dtype, compute = np.dtype(dtype), jnp.float32
    elif jnp.issubdtype(dtype, jnp.floating):
        int_dtype = None
        compute = dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32
    else:
        raise TypeError(f"imresize: expected an integer or float image, got {dtype}")

    # MATLAB processes the axis with the smaller scale first (stable on ties: rows first).
    passes = ((ah, 0), (aw, 1)) if sc[0] <= sc[1] else ((aw, 1), (ah, 0))
    plans, arrays = [], []
    for axis, k in passes:
        poly = _polyphase_plan(in_hw[k], out_hw[k], sc[k], antialiasing)
        if poly is None:
            w, i = resize_weights(in_hw[k], out_hw[k], sc[k], antialiasing)
            plans.append((axis, None))
            arrays.append((jnp.asarray(w, compute), jnp.asarray(i)))
        else:
            pad_index, w, offsets, step, q = poly
            offsets = tuple(tuple(int(v) for v in row) for row in offsets)
            plans.append((axis, (offsets, step, q, out_hw[k])))
            arrays.append((jnp.asarray(w, compute), jnp.asarray(pad_index)))
    y = _imresize_impl(x.astype(compute), tuple(arrays), plans=tuple(plans), int_dtype=int_dtype)
    if int_dtype is None and y.dtype != dtype:
        y = y.astype(dtype)
    return y
