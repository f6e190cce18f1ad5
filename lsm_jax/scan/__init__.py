"""Linear recurrences h_k = a_k ⊙ h_{k-1} + x_k along one axis, with interchangeable strategies.

The recurrence is linear with a diagonal transition, so it is an associative scan over pairs (a, x)
with (a_i, x_i) ∘ (a_j, x_j) = (a_j·a_i, a_j·x_i + x_j). `linear_recurrence` runs it with one of the
strategies in `SCAN_IMPLS`, chosen by `impl`:

  'associative'  jax.lax.associative_scan (the LRU paper's parallel form);
  'sequential'   jax.lax.scan, one step at a time: the oracle the others are tested against;
  'chunked'      sequential within chunks of `chunk` steps, associative across chunk summaries;
  'auto'         'sequential' when JAX's default backend is the CPU, 'associative' otherwise.

On XLA:CPU the plain sequential loop is the fastest and compiles in a fraction of the time
(measured at B=1, N=32 complex64: L=4096 0.22 ms vs 1.0 ms associative / chunked; L=16384 0.8 ms vs
6 ms; compile 0.08 s vs 1.9-2.4 s). On GPUs the associative scan is far faster than the loop.
A scanned axis of length 1 is the identity: h = x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.scan.associative import scan_associative
from lsm_jax.scan.chunked import scan_chunked
from lsm_jax.scan.sequential import scan_sequential

SCAN_IMPLS = ('associative', 'sequential', 'chunked', 'auto')


def linear_recurrence(a: jax.Array, x: jax.Array, *, axis: int, impl: str = 'associative',
                      chunk: int = 64) -> jax.Array:
    """h_k = a_k·h_{k-1} + x_k along `axis`, h_0 = x_0. a, x: same shape, complex or real."""
    if impl not in SCAN_IMPLS:
        raise ValueError(f"scan_impl must be one of {SCAN_IMPLS}, got {impl!r}")
    a, x = jnp.broadcast_arrays(a, x)
    if a.shape[axis] == 1:       # h_0 = x_0: nothing to scan (static shape check, exact)
        return x
    if impl == 'auto':
        impl = 'sequential' if jax.default_backend() == 'cpu' else 'associative'
    if impl == 'associative':
        return scan_associative(a, x, axis)
    a, x = jnp.moveaxis(a, axis, 0), jnp.moveaxis(x, axis, 0)
    h = scan_sequential(a, x) if impl == 'sequential' else scan_chunked(a, x, chunk)
    return jnp.moveaxis(h, 0, axis)


__all__ = ['SCAN_IMPLS', 'linear_recurrence']
