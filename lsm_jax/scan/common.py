"""Shared pieces of the scan strategies: the axis legend, the canonical form, the associative combine.

Axes. Shapes in `lsm_jax.scan` are written in these letters:

    B    batch: images (under reference semantics the scan runs along it: there L is B)
    L    steps of the scanned axis: an image's tokens (time)
    N    state size: the LRU's channels
    P    the axes of x before the scanned one, flattened (B for x of shape (B, L, N))
    Q    the axes of x after it, flattened (N)
    M    lanes, M = P·Q independent recurrences; the kernels lay x out time-major as (L, M)
    C    steps per chunk or kernel block (`chunk`, `block_len`)
    K    chunks: L / C, L padded to a multiple of C
    D    devices on the mesh axis 'sharded' splits L over
    E    one B·L·N buffer (in memory figures, not a shape)
    1|P  an axis of size 1 (broadcast) or P; likewise 1|L, 1|Q

The canonical form. Every strategy works on x reshaped (for free, no copy) to x3 (P, L, Q) with the
scanned axis in the middle, and `a` as a3 (1|P, 1|L, 1|Q). So a per-channel λ of shape (N,) against x
of shape (B, L, N) stays (1, 1, N): no strategy materialises it at full size. A strategy is a
`CanonicalScan`: (a3, x3, h0 (P, Q) | None, reverse) -> (h (P, L, Q), h_last (P, Q)).
"""

from __future__ import annotations

import math
from typing import Protocol

import jax
import jax.numpy as jnp


class CanonicalScan(Protocol):
    """A strategy with its options bound: a3 (1|P, 1|L, 1|Q), x3 (P, L, Q), h0 (P, Q) | None ->
    (h (P, L, Q) in x's dtype when it is a float, else the compute dtype; h_last (P, Q) in the compute
    dtype, float32 or complex64 at least). `reverse`: h_k = a_k·h_{k+1} + x_k, from h0 after the end."""

    def __call__(self, a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, /
                 ) -> tuple[jax.Array, jax.Array]: ...


def combine(left, right):
    """(a_i, x_i) ∘ (a_j, x_j) = (a_j·a_i, a_j·x_i + x_j): the recurrence's associative operator, on
    pairs of arrays of any one broadcast shape."""
    a_l, x_l = left
    a_r, x_r = right
    return a_r * a_l, a_r * x_l + x_r


def canonical_shapes(a_shape: tuple, x_shape: tuple, axis: int):
    """(x3, a3, a_pre) for x of `x_shape` scanned along `axis`: x3 = (P, L, Q), a3 = (1|P, 1|L, 1|Q), and
    a_pre, the shape `a` is broadcast to before reshaping (its groups of axes that are neither all 1
    nor full, in full)."""
    ndim = len(x_shape)
    if len(a_shape) > ndim:
        raise ValueError(f"linear_recurrence: a {a_shape} has more axes than x {x_shape}")
    a_shape = (1,) * (ndim - len(a_shape)) + tuple(a_shape)
    jnp.broadcast_shapes(a_shape, x_shape)   # raises a clear error when they do not broadcast
    groups = [range(0, axis), range(axis, axis + 1), range(axis + 1, ndim)]
    a_pre, a3, x3 = list(a_shape), [], []
    for g in groups:
        full = math.prod(x_shape[i] for i in g)
        x3.append(full)
        if all(a_shape[i] == 1 for i in g):
            a3.append(1)
        else:
            for i in g:
                a_pre[i] = x_shape[i]
            a3.append(full)
    return tuple(x3), tuple(a3), tuple(a_pre)


def to_canonical(a: jax.Array, x: jax.Array, axis: int):
    """(a3 (1|P, 1|L, 1|Q), x3 (P, L, Q)): a (broadcasting against x) and x in the canonical form."""
    x3, a3, a_pre = canonical_shapes(a.shape, x.shape, axis)
    a = jnp.broadcast_to(a.reshape((1,) * (x.ndim - a.ndim) + a.shape), a_pre)
    return a.reshape(a3), x.reshape(x3)


def result_dtype(a: jax.Array, x: jax.Array):
    """The dtype the state is carried in: float32 or complex64 at least (bf16 inputs accumulate in
    float32). Shapes do not matter."""
    dtype = jnp.result_type(a.dtype, x.dtype)
    return jnp.promote_types(dtype, jnp.float32)


def shift_along(a3: jax.Array, reverse: bool, fill) -> jax.Array:
    """a3 (1|P, 1|L, 1|Q) shifted one step against the scan direction (a_{k+1} at k forward, a_{k-1}
    reversed), `fill` at the end; the same shape. A broadcast L (size 1) stays as it is."""
    if a3.shape[1] == 1:
        return a3
    pad = jnp.full_like(a3[:, :1], fill)
    return jnp.concatenate([a3[:, 1:], pad], 1) if not reverse else jnp.concatenate([pad, a3[:, :-1]], 1)


def pad_identity(a3, x3, chunk, at_start=False):
    """(a3 (1|P, K·C, 1|Q) or unchanged, x3 (P, K·C, Q)): L padded to a multiple of C = `chunk` with
    identity steps (a=1, x=0), placed last in scan order (at the start for a reversed scan), so the
    state after them is unchanged. A constant a (L of size 1) is spread along L first."""
    pad = (-x3.shape[1]) % chunk
    if pad:
        widths = ((0, 0), (pad, 0) if at_start else (0, pad), (0, 0))
        length = x3.shape[1]
        x3 = jnp.pad(x3, widths)
        # A constant a is spread along the scan first: the padded steps need a = 1.
        a3 = jnp.broadcast_to(a3, (a3.shape[0], length, a3.shape[2])) if a3.shape[1] == 1 else a3
        a3 = jnp.pad(a3, widths, constant_values=1)
    return a3, x3


def float_planes(v: jax.Array, lanes: int):
    """(L, M) real or complex -> (re, im) float32 planes (L, lanes), zero-padded past M: the layout of
    the Pallas kernels (neither TPUs nor Triton have a complex vector type)."""
    v = v.astype(jnp.complex64)
    pad = ((0, 0), (0, lanes - v.shape[1]))
    return jnp.pad(jnp.real(v), pad), jnp.pad(jnp.imag(v), pad)


def time_major_planes(v3: jax.Array, shape: tuple, lanes: int):
    """A canonical (1|P, 1|L, 1|Q) array broadcast to `shape` = (P, L, Q), as time-major (re, im)
    planes (L, lanes), M = P·Q columns zero-padded to `lanes` (`float_planes`)."""
    p, length, q = shape
    return float_planes(jnp.moveaxis(jnp.broadcast_to(v3, shape), 1, 0).reshape(length, p * q), lanes)
