"""Complex numbers as (re, im) pairs of real planes: complex values in bfloat16 storage.

Axes (legend: `lsm_jax.scan.common`): a pair has the shape of the complex array it stands for, each
plane that shape: x (B, L, N) is two (B, L, N) planes, h_last (B, N) two (B, N) planes. Nothing here
depends on the shape.

XLA has no bfloat16 complex type, so a complex recurrence kept in low precision travels as two real
arrays, as recurrentgemma's `Complex` does:

    from lsm_jax.scan import ComplexPair, linear_recurrence
    x = ComplexPair.from_complex(z, jnp.bfloat16)       # 4 bytes per element instead of 8
    h = linear_recurrence(lam, x, axis=1)                # a ComplexPair of bfloat16 planes
    h, h_last = linear_recurrence(lam, x, return_last=True)   # h_last: float32 planes

The state is carried and every product is taken in float32 (complex64); only what is stored is in
the planes' dtype. Every strategy accepts pairs. The XLA strategies widen the planes to complex64 where
they enter the scan, so the saving is in what the caller holds and in what the backward pass keeps:
the custom VJP saves h as planes of the input's dtype (half of complex64 for bf16) and widens it
again in the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ComplexPair(NamedTuple):
    """A complex array of any shape S as two real arrays re, im of shape S and one dtype (a pytree;
    jit/grad pass it through)."""
    re: jax.Array
    im: jax.Array

    @classmethod
    def from_complex(cls, z, dtype=jnp.bfloat16) -> 'ComplexPair':
        """Split a complex (or real) array into planes of `dtype`."""
        z = jnp.asarray(z)
        return cls(jnp.real(z).astype(dtype), jnp.imag(z).astype(dtype))

    def to_complex(self) -> jax.Array:
        """The complex64 array the planes hold."""
        return jax.lax.complex(self.re.astype(jnp.float32), self.im.astype(jnp.float32))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.re.shape)

    @property
    def ndim(self) -> int:
        return self.re.ndim

    @property
    def dtype(self):
        """The planes' dtype (the storage precision), not a complex dtype."""
        return self.re.dtype


def check_pair(value: ComplexPair, name: str) -> None:
    """A one-line ValueError when the planes of `value` differ in shape or dtype, or are not real floats."""
    re, im = jnp.asarray(value.re), jnp.asarray(value.im)
    if re.shape != im.shape or re.dtype != im.dtype:
        raise ValueError(f"linear_recurrence: {name} is a ComplexPair with planes {re.shape} {re.dtype} and "
                         f"{im.shape} {im.dtype}; both planes need one shape and dtype")
    if not jnp.issubdtype(re.dtype, jnp.floating):
        raise ValueError(f"linear_recurrence: {name} planes must be real floats (bfloat16, float16, float32), "
                         f"got {re.dtype}")


def widen(value):
    """A ComplexPair of shape S as a complex64 array of shape S; anything else (None too) as it is."""
    return value.to_complex() if isinstance(value, ComplexPair) else value


def narrow(h: jax.Array, dtype) -> ComplexPair:
    """A complex h of shape S as a ComplexPair of two `dtype` planes of shape S."""
    return ComplexPair(jnp.real(h).astype(dtype), jnp.imag(h).astype(dtype))
