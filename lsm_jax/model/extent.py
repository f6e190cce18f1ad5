"""Where the real image lies inside a padded map, so that one compiled shape serves many image sizes.

Inference pads an h×w image with zeros up to a bucket shape H×W (`lsm_jax.inference.buckets`) and
passes `Extent(h, w)` to the network. h and w are traced int32 scalars: the program is compiled once
per bucket shape, not once per image size. The network then computes, for the real pixels, exactly
what it computes at the true size:

- every spatial operation (3×3 and depthwise convolutions) first zeroes what lies outside the extent,
  so it sees the same zero border as at the true size;
- window attention pads to the window multiple of the *true* size, rolls its shifted windows at that
  size and builds the shift mask for it (`lsm_jax.model.window_attention`);
- the semantic sort puts the padded tokens after every real token, so a causal scan never carries
  them into a real token, and the raster-order modulation (Q5) reads the real tokens in their true
  raster order (`lsm_jax.model.smu`).

Everything else in the network is per token. What the padded positions hold afterwards is garbage
that never reaches a real pixel; `jnp.where` (not a multiply) keeps even a non-finite value there
from leaking.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Extent:
    """The valid top-left region of a padded token map: rows < h and columns < w (int32 scalars).

    Shapes in this module: B batch, H×W the padded map, L = H·W tokens in raster order, C channels.
    """

    h: jax.Array
    w: jax.Array

    @classmethod
    def of(cls, h, w) -> 'Extent':
        return cls(jnp.asarray(h, jnp.int32), jnp.asarray(w, jnp.int32))

    def inside(self, shape_hw: tuple[int, int], scale: int = 1) -> jax.Array:
        """(H, W) bool: True on the real image, which covers (h·scale, w·scale) at this resolution."""
        rows = jax.lax.broadcasted_iota(jnp.int32, shape_hw, 0)
        cols = jax.lax.broadcasted_iota(jnp.int32, shape_hw, 1)
        return (rows < self.h * scale) & (cols < self.w * scale)

    def zero_outside(self, x: jax.Array, scale: int = 1) -> jax.Array:
        """x (B, H, W, C) with every position outside the real image set to zero."""
        return jnp.where(self.inside(x.shape[1:3], scale)[None, :, :, None], x, jnp.zeros((), x.dtype))

    def tokens_inside(self, shape_hw: tuple[int, int]) -> jax.Array:
        """(L,) bool over the raster tokens of an H×W map."""
        return self.inside(shape_hw).reshape(-1)

    def raster_compaction(self, shape_hw: tuple[int, int]) -> jax.Array:
        """(L,) int32: the padded-map index of the l-th real token in true raster order, for l < h·w,
        then the padded positions. Raster order on the H×W map restricted to the real tokens is the
        true raster order, so a stable sort on 'is padding' gives it."""
        return jnp.argsort(~self.tokens_inside(shape_hw), stable=True).astype(jnp.int32)


def zero_outside(x: jax.Array, extent: Extent | None, scale: int = 1) -> jax.Array:
    """`extent.zero_outside(x)`, or x itself when the map is the image (no extent)."""
    return x if extent is None else extent.zero_outside(x, scale)
