"""The chunked strategy: sequential inside chunks (vectorised over chunks), associative across them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.common import combine


def scan_chunked(a: jax.Array, x: jax.Array, chunk: int) -> jax.Array:
    """Axis 0 recurrence: sequential inside chunks (vectorised over chunks), associative across them."""
    length = a.shape[0]
    chunk = max(1, min(chunk, length))
    pad = (-length) % chunk
    if pad:
        # Identity steps (a=1, x=0) leave the prefix unchanged.
        a = jnp.concatenate([a, jnp.ones((pad,) + a.shape[1:], a.dtype)])
        x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
    n = a.shape[0] // chunk
    a_c = a.reshape((n, chunk) + a.shape[1:]).swapaxes(0, 1)   # (chunk, n, ...)
    x_c = x.reshape((n, chunk) + x.shape[1:]).swapaxes(0, 1)

    def step(carry, ax):
        prod, h = carry
        a_k, x_k = ax
        prod, h = a_k * prod, a_k * h + x_k
        return (prod, h), (prod, h)
    init = (jnp.ones_like(a_c[0]), jnp.zeros_like(x_c[0]))
    _, (prods, local) = jax.lax.scan(step, init, (a_c, x_c))      # local state within each chunk
    # Carry-in for chunk j is the full state at the end of chunk j-1.
    _, ends = jax.lax.associative_scan(combine, (prods[-1], local[-1]), axis=0)
    carry_in = jnp.concatenate([jnp.zeros_like(ends[:1]), ends[:-1]], axis=0)
    h = local + prods * carry_in[None]
    h = h.swapaxes(0, 1).reshape((n * chunk,) + a.shape[1:])
    return h[:length]
