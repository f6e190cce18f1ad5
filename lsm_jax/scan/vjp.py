"""The custom VJP the strategies share: the backward pass is itself a linear recurrence.

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3, h and g (P, L, Q), h0 (P, Q).

With h_k = a_k·h_{k-1} + x_k (h_{-1} = h0) and cotangents ḡ on h and on h_last, the total cotangent of
h_k is g_k = ḡ_k + a_{k+1}·g_{k+1} (+ the h_last cotangent at the last step): the *reverse* recurrence
on the cotangents with a shifted by one step. Then dx_k = g_k, da_k = g_k·h_{k-1}, dh0 = a_0·g_0.
JAX's cotangents are transposes, not adjoints, so no conjugate appears here; in the adjoint
convention (gradients as conjugated cotangents) the same recurrence reads g = conj(a)-weighted.
`tests/test_scan.py` checks it against `jax.grad` through the sequential oracle for complex inputs.

Only h (one E-sized buffer; a and x are the caller's) is saved for the backward pass, where autodiff
through `associative_scan` keeps its log-depth tree of intermediates. For complex input given as bf16
(re, im) planes (`save_dtype`), h is saved as planes of that dtype: half the bytes of complex64.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lsm_jax.scan.common import shift_along
from lsm_jax.scan.pairs import narrow, widen


def _sum_to(value: jax.Array, shape: tuple) -> jax.Array:
    """Sum the axes that `shape` broadcasts (size 1) back to size 1."""
    axes = tuple(i for i, (s, v) in enumerate(zip(shape, value.shape)) if s == 1 and v != 1)
    return jnp.sum(value, axis=axes, keepdims=True) if axes else value


def _like(value: jax.Array, ref: jax.Array) -> jax.Array:
    """value cast to ref's dtype (the real part for a real input)."""
    if not jnp.iscomplexobj(ref) and jnp.iscomplexobj(value):
        value = jnp.real(value)
    return value.astype(ref.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def recurrence(fn, reverse: bool, has_h0: bool, save_dtype, a3, x3, h0):
    """fn(a3, x3, h0 | None, reverse) -> (h (P, L, Q), h_last (P, Q)), differentiated by the reverse
    recurrence; `fn` a `CanonicalScan`, h0 (P, Q) (zeros and ignored unless `has_h0`). `save_dtype`:
    None, or the plane dtype a complex h is saved in for the backward pass."""
    return fn(a3, x3, h0 if has_h0 else None, reverse)


def _fwd(fn, reverse, has_h0, save_dtype, a3, x3, h0):
    h, h_last = fn(a3, x3, h0 if has_h0 else None, reverse)
    saved = narrow(h, save_dtype) if save_dtype is not None and jnp.iscomplexobj(h) else h
    return (h, h_last), (a3, jnp.zeros((0,), x3.dtype), saved, h0)   # x's dtype only


def _bwd(fn, reverse, has_h0, save_dtype, res, cts):
    a3, x_dtype, saved, h0 = res
    h = widen(saved)
    ct_h, ct_last = cts
    last = 0 if reverse else -1               # the final step in scan direction
    first = -1 if reverse else 0
    y = ct_h.astype(jnp.result_type(ct_h.dtype, ct_last.dtype)).at[:, last].add(ct_last)
    # g beyond the final step is zero, so the shifted a's fill value is never used.
    g, _ = fn(shift_along(a3, reverse, 0), y, None, not reverse)
    start = (h0 if has_h0 else jnp.zeros_like(h0)).astype(h.dtype)[:, None]
    h_prev = (jnp.concatenate([start, h[:, :-1]], 1) if not reverse
              else jnp.concatenate([h[:, 1:], start], 1))
    da = _sum_to(g * h_prev, a3.shape)
    a_first = a3[:, first if a3.shape[1] > 1 else 0]
    dh0 = a_first * g[:, first]
    return _like(da, a3), _like(g, x_dtype), _like(dh0, h0)


recurrence.defvjp(_fwd, _bwd)
