"""The sequential strategy: `jax.lax.scan`, one step at a time. The oracle the others are tested against.

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.common import result_dtype


def scan_sequential(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *,
                    unroll: int = 1):
    """a3 (1|P, 1|L, 1|Q), x3 (P, L, Q), h0 (P, Q) | None -> (h (P, L, Q), h_last (P, Q)).

    h is stored in x's dtype (bf16 storage); the carried state is float32 / complex64.
    """
    compute = result_dtype(a3, x3)
    p, _, q = x3.shape
    init = jnp.zeros((p, q), compute) if h0 is None else h0.astype(compute)
    xs = jnp.moveaxis(x3, 1, 0)                      # (L, P, Q): lax.scan runs over the leading axis
    store = x3.dtype if x3.dtype != compute and jnp.issubdtype(x3.dtype, jnp.floating) else compute
    if a3.shape[1] == 1:                             # a constant along the scan: a loop invariant
        a_const = a3[:, 0].astype(compute)

        def step(h, x_k):
            h = a_const * h + x_k.astype(compute)
            return h, h.astype(store)
        h_last, hs = jax.lax.scan(step, init, xs, reverse=reverse, unroll=unroll)
    else:
        def step(h, ax):
            a_k, x_k = ax
            h = a_k.astype(compute) * h + x_k.astype(compute)
            return h, h.astype(store)
        h_last, hs = jax.lax.scan(step, init, (jnp.moveaxis(a3, 1, 0), xs), reverse=reverse, unroll=unroll)
    return jnp.moveaxis(hs, 0, 1), h_last
