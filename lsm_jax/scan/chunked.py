"""The chunked strategies: the scanned axis cut into chunks of `chunk` steps.

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q);
C = `chunk` steps per chunk, K = ceil(L / C) chunks (L padded to K·C with identity steps).

- `scan_chunked` (one pass and a fix-up): every chunk scanned from zero, vectorised over chunks (its
  cumulative products kept), the chunk ends combined associatively, then h = local + Πa·carry-in.
- `scan_two_pass`: pass 1 reads a and x once to get each chunk's summary (Πa, end state from zero);
  a short scan over the summaries gives every chunk's carry-in; pass 2 rescans each chunk from its
  carry-in and writes h. It moves 40 bytes per complex64 element (a, x twice; h once) against the
  24 of one ideal pass, and both passes slice the chunk position in place (no transposes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.associative import fold_h0
from lsm_jax.scan.common import combine, pad_identity as _pad, result_dtype
from lsm_jax.scan.sequential import scan_sequential


def _flip(a3, x3):
    return (a3 if a3.shape[1] == 1 else jnp.flip(a3, 1)), jnp.flip(x3, 1)


def scan_chunked(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, chunk: int = 256):
    """a3, x3, h0 -> (h (P, L, Q), h_last (P, Q)): one pass over (C, P, K, Q) and a fix-up (see the
    module docstring); computes in float32 / complex64."""
    compute = result_dtype(a3, x3)
    length = x3.shape[1]
    if reverse:                 # a reversed scan is the forward scan of the flipped sequence
        h, h_last = scan_chunked(*_flip(a3, x3), h0, False, chunk=chunk)
        return jnp.flip(h, 1), h_last
    chunk = max(1, min(chunk, length))
    a = jnp.broadcast_to(a3.astype(compute), x3.shape)
    x = fold_h0(a, x3.astype(compute), h0, False)
    a, x = _pad(a, x, chunk)
    p, lp, q = x.shape
    n = lp // chunk
    a_c = a.reshape(p, n, chunk, q).transpose(2, 0, 1, 3)       # (C, P, K, Q)
    x_c = x.reshape(p, n, chunk, q).transpose(2, 0, 1, 3)

    def step(carry, ax):
        prod, h = carry
        a_k, x_k = ax
        prod, h = a_k * prod, a_k * h + x_k
        return (prod, h), (prod, h)
    init = (jnp.ones_like(a_c[0]), jnp.zeros_like(x_c[0]))
    _, (prods, local) = jax.lax.scan(step, init, (a_c, x_c))     # local state within each chunk
    _, ends = jax.lax.associative_scan(combine, (prods[-1], local[-1]), axis=-2)   # over chunks
    carry_in = jnp.concatenate([jnp.zeros_like(ends[..., :1, :]), ends[..., :-1, :]], axis=-2)
    h = local + prods * carry_in[None]
    h = h.transpose(1, 2, 0, 3).reshape(p, lp, q)[:, :length]
    store = x3.dtype if jnp.issubdtype(x3.dtype, jnp.floating) else compute
    return h.astype(store), ends[:, -1]


def scan_two_pass(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, chunk: int = 256,
                  unroll: int = 1):
    """a3, x3, h0 -> (h (P, L, Q), h_last (P, Q)): summaries (Π a (1|P, K, 1|Q), end states (P, K, Q)),
    carry-ins, rescan of x as (P, K, C, Q) (see the module docstring). h is stored in x's dtype; the
    state is carried in float32 / complex64."""
    compute = result_dtype(a3, x3)
    store = x3.dtype if jnp.issubdtype(x3.dtype, jnp.floating) else compute
    length = x3.shape[1]
    chunk = max(1, min(chunk, length))
    a3, x3 = _pad(a3, x3, chunk, at_start=reverse)
    p, lp, q = x3.shape
    n = lp // chunk
    pad = lp - length
    x4 = x3.reshape(p, n, chunk, q)
    const_a = a3.shape[1] == 1
    a4 = a3[:, :, None] if const_a else a3.reshape(a3.shape[0], n, chunk, a3.shape[2])   # (1|P, K|1, C|1, 1|Q)

    def at(k):                  # chunk position of loop step k, in scan order
        return chunk - 1 - k if reverse else k

    def a_at(k):
        return (a4[:, :, 0] if const_a else jax.lax.dynamic_index_in_dim(a4, at(k), 2, False)).astype(compute)

    def summary(k, carry):
        prod, s = carry
        a_k = a_at(k)
        x_k = jax.lax.dynamic_index_in_dim(x4, at(k), 2, False).astype(compute)
        return a_k * prod, a_k * s + x_k
    prod0 = jnp.ones(a4.shape[:2] + a4.shape[3:], compute)
    prods, ends = jax.lax.fori_loop(0, chunk, summary, (prod0, jnp.zeros((p, n, q), compute)), unroll=unroll)
    # The state at each chunk's end, from the carry into the first one: a short scan over n chunks.
    full_ends, h_last = scan_sequential(prods, ends, h0, reverse)
    first = jnp.zeros((p, 1, q), compute) if h0 is None else h0[:, None].astype(compute)
    carry_in = (jnp.concatenate([first, full_ends[:, :-1]], 1) if not reverse
                else jnp.concatenate([full_ends[:, 1:], first], 1))

    def rescan(k, carry):
        h, out = carry
        h = a_at(k) * h + jax.lax.dynamic_index_in_dim(x4, at(k), 2, False).astype(compute)
        return h, jax.lax.dynamic_update_index_in_dim(out, h.astype(store), at(k), 2)
    out = jnp.empty((p, n, chunk, q), store)
    _, out = jax.lax.fori_loop(0, chunk, rescan, (carry_in, out), unroll=unroll)
    h = out.reshape(p, lp, q)
    if pad:
        h = h[:, pad:] if reverse else h[:, :length]
    return h, h_last
