"""The associative strategy: `jax.lax.associative_scan` over (a, x) pairs, the LRU paper's parallel form."""

from __future__ import annotations

import jax

from lsm_jax.scan.common import combine


def scan_associative(a: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """The recurrence along `axis` in log depth."""
    return jax.lax.associative_scan(combine, (a, x), axis=axis)[1]
