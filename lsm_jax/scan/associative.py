"""The associative strategy: `jax.lax.associative_scan` over (a, x) pairs, the LRU paper's parallel form.

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.common import combine, result_dtype


def fold_h0(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool) -> jax.Array:
    """x3 (P, L, Q) with h0 (P, Q) folded into its first step in scan order (x_0 += a_0·h0), so that a
    scan from zero gives the scan from h0; a3 (1|P, 1|L, 1|Q). x3 itself when h0 is None."""
    if h0 is None:
        return x3
    first = -1 if reverse else 0
    a_first = a3[:, first if a3.shape[1] > 1 else 0]
    return x3.at[:, first].add((a_first * h0).astype(x3.dtype))


def scan_associative(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool):
    """a3 (1|P, 1|L, 1|Q), x3 (P, L, Q), h0 (P, Q) | None -> (h (P, L, Q), h_last (P, Q)) in log depth;
    computes in float32 / complex64 (a3 broadcast to (P, L, Q): associative_scan needs equal shapes)."""
    compute = result_dtype(a3, x3)
    a = jnp.broadcast_to(a3.astype(compute), x3.shape)   # associative_scan needs equal shapes
    x = fold_h0(a, x3.astype(compute), h0, reverse)
    _, h = jax.lax.associative_scan(combine, (a, x), axis=1, reverse=reverse)
    h_last = h[:, 0] if reverse else h[:, -1]
    store = x3.dtype if jnp.issubdtype(x3.dtype, jnp.floating) else compute
    return h.astype(store), h_last
