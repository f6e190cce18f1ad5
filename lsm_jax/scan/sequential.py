"""The sequential strategy: `jax.lax.scan`, one step at a time. The oracle the others are tested against."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_sequential(a: jax.Array, x: jax.Array) -> jax.Array:
    """Axis-0 recurrence h_k = a_k·h_{k-1} + x_k, h_{-1} = 0."""
    def step(h, ax):
        a_k, x_k = ax
        h = a_k * h + x_k
        return h, h
    _, hs = jax.lax.scan(step, jnp.zeros_like(x[0]), (a, x))
    return hs
