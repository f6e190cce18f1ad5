"""Linear recurrences h_k = a_k ⊙ h_{k-1} + x_k along one axis, with interchangeable strategies.

Axes (the full legend: `lsm_jax.scan.common`): B batch, L steps of the scanned axis (time, tokens),
N state size; in general P and Q for the axes before and after the scanned one, so x is (P, L, Q)
up to a free reshape and h_last (P, Q).

    from lsm_jax.scan import linear_recurrence, SCAN_IMPLS
    h = linear_recurrence(a, x, axis=1)                        # x (B, L, N), a (N,): h (B, L, N)
    h, h_last = linear_recurrence(a, x, axis=1, h0=h0, reverse=True, return_last=True,
                                  impl='two_pass', chunk=128)  # h0, h_last (B, N)

The recurrence is linear with a diagonal transition, so it is an associative scan over pairs (a, x)
with (a_i, x_i) ∘ (a_j, x_j) = (a_j·a_i, a_j·x_i + x_j). The strategies, their options and what each
supports are the entries of one registry, `lsm_jax.scan.registry.STRATEGIES` (`SCAN_IMPLS`: their
names; `strategies_table()`: the table in docs/scan.md). 'auto' picks one (`pick_impl`).

Every strategy is differentiated by one custom VJP (`lsm_jax.scan.vjp`, option `custom_vjp`): the
backward pass is the reverse recurrence on the cotangents, saving only h.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.common import to_canonical
from lsm_jax.scan.pairs import ComplexPair, check_pair, narrow, widen
from lsm_jax.scan.registry import (COMMON, OPTIONS, ROW_WIDTH, SCAN_IMPLS, SCAN_OPTIONS, STRATEGIES, Option, Strategy,
                                   bind, check_options, pick_impl, strategies_table)
from lsm_jax.scan.vjp import recurrence


def linear_recurrence(a: jax.Array, x: jax.Array, *, axis: int = 1, reverse: bool = False,
                      h0: jax.Array | None = None, return_last: bool = False, impl: str = 'auto', **options):
    """h_k = a_k ⊙ h_{k-1} + x_k along `axis` from h_{-1} = h0 (zeros when None).

    x of shape (P..., L, Q...) with L at `axis`; a broadcasting against it (pass λ of shape (N,) as
    it is); h0 of x's shape without `axis`, (P..., Q...). reverse: h_k = a_k ⊙ h_{k+1} + x_k, from h0
    after the last element. x, a: float32 / complex64, or bfloat16 x (stored in bf16, carried in
    float32 where the strategy loops), or complex as a `ComplexPair` of bf16/float32 planes (then h
    is a pair of x's plane dtype and h_last a pair of float32 planes; `lsm_jax.scan.pairs`). Returns
    h (x's shape), or (h, h_last) with return_last, h_last (P..., Q...) = the state after the final
    step in scan direction. `impl` and `options`: see `lsm_jax.scan.registry`.
    """
    check_options(impl, options)
    opts = {**SCAN_OPTIONS, **options}
    pair_dtype = x.dtype if isinstance(x, ComplexPair) else None
    for name, value in (('a', a), ('x', x), ('h0', h0)):
        if isinstance(value, ComplexPair):
            check_pair(value, name)
    a, x, h0 = widen(a), widen(x), widen(h0)
    axis = axis % x.ndim
    a3, x3 = to_canonical(jnp.asarray(a), jnp.asarray(x), axis)
    p, _, q = x3.shape
    last_shape = x.shape[:axis] + x.shape[axis + 1:]
    if h0 is not None and tuple(h0.shape) != last_shape:
        raise ValueError(f"linear_recurrence: h0 has shape {tuple(h0.shape)}, expected {last_shape}")
    fn = bind(impl, opts)
    h0_3 = None if h0 is None else jnp.asarray(h0).reshape(p, q)
    if opts['custom_vjp']:
        dtype = jnp.promote_types(jnp.result_type(a3.dtype, x3.dtype), jnp.float32)
        start = jnp.zeros((p, q), dtype) if h0_3 is None else h0_3
        h, h_last = recurrence(fn, bool(reverse), h0_3 is not None, pair_dtype, a3, x3, start)
    else:
        h, h_last = fn(a3, x3, h0_3, bool(reverse))
    h, h_last = h.reshape(x.shape), h_last.reshape(last_shape)
    if pair_dtype is not None:
        h, h_last = narrow(h, pair_dtype), narrow(h_last, jnp.float32)
    return (h, h_last) if return_last else h


__all__ = ['COMMON', 'ComplexPair', 'OPTIONS', 'Option', 'ROW_WIDTH', 'SCAN_IMPLS', 'SCAN_OPTIONS', 'STRATEGIES',
           'Strategy', 'check_options', 'linear_recurrence', 'pick_impl', 'strategies_table']
