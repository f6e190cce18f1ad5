"""The CML block's token mixer (spec §4): the semantic modulating unit (SMU) around an LRU.

The SMU scores every token against a learned prototype dictionary, categorises tokens by their best
prototype, and sorts them so that the LRU runs over semantically grouped sequences. Its softmax
weights Mk modulate the LRU (λ, B·u, Re/Im of the state) and enhance the output (Mk·V).

Three semantics switches (`lsm_jax.model.semantics`, resolved once by the network) decide what the recurrence sees:
`scan_axis` ('batch' as the reference, Q1; 'tokens' as the paper), `mk_a_batch_mean` (Q6) and
`modulation_order` ('raster' as the reference, Q5; 'sorted' gathers Mk with the tokens).

Shapes (legend in `lsm_jax.model.layers`): tokens u (B, L, C) against prototypes (T, C) give
scores S and weights Mk (B, L, T) and a category per token (B, L); Mk's four quarters (B, L, N),
N = T/4, modulate the LRU's λ, B·u, Re h and Im h.
"""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
from flax import nnx

from lsm_jax.model.extent import Extent, zero_outside
from lsm_jax.model.layers import Conv, DepthwiseConv3x3, Linear, param, sow
from lsm_jax.model.lru import LRUCore
from lsm_jax.model.semantics import Semantics
from lsm_jax.scan.spec import ScanSpec


def l2_normalize(x: jax.Array) -> jax.Array:
    """x / max(‖x‖₂, 1e-12) over the last axis (torch F.normalize)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, 1e-12)


def categorise(logits: jax.Array, key: jax.Array | None) -> jax.Array:
    """Category per token (B, L) int32: argmax, or Gumbel-max sampling when a training key is given.

    argmax(log_softmax(S) + g) = argmax(S + g): the hard Gumbel-softmax sample of the reference.
    """
    if key is not None:
        logits = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def sort_order(category: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Stable ascending order of the categories (ties in raster order, Q3) and its inverse. (B, L)."""
    order = jnp.argsort(category, axis=-1, stable=True)
    inverse = jnp.argsort(order, axis=-1, stable=True)
    return order, inverse


def gather_tokens(x: jax.Array, index: jax.Array) -> jax.Array:
    """x[b, index[b, l]] for x (B, L, ...) and index (B, L) -> (B, L, ...)."""
    return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


class SemanticLRU(nnx.Module):
    """SMU + gated input projection + sorted LRU + output projection (`lru.`), spec §4.

    Sows `smu_input`, `Mk`, `category`, `sort_idx`, `lru_input_sorted`, `lru_output_sorted`,
    `lru_unsorted_before_out_proj` and `output` (what `lsm_jax.model.network.capture` returns)."""

    def __init__(self, dim: int, num_tokens: int, d_state: int, *, rmin: float, rmax: float,
                 max_phase: float, gamma: str = "learned", mk_a_scale: float = 1.0, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if num_tokens % 4 or d_state != num_tokens // 4:
            raise ValueError(f"d_state must equal num_tokens/4 (Mk quarters modulate the states): "
                             f"num_tokens={num_tokens}, d_state={d_state}")
        qdim = dim // 3
        self.num_tokens = num_tokens
        self.scale = param(jnp.full((num_tokens,), 0.5, jnp.float32), ('prototypes',))
        self.wq = Linear(dim, qdim, names=('embed', None), dtype=dtype, rngs=rngs)
        self.wk = Linear(dim, qdim, names=('embed', None), dtype=dtype, rngs=rngs)
        self.wv = Linear(dim, dim // 2, names=('embed', None), dtype=dtype, rngs=rngs)
        self.in_proj = Conv(dim, dim, 1, dtype=dtype, rngs=rngs)
        self.CPE = DepthwiseConv3x3(dim, dtype=dtype, rngs=rngs)
        self.out_proj = Linear(dim, dim // 2, names=('embed', None), dtype=dtype, rngs=rngs)
        self.lru_core = LRUCore(dim, d_state, rmin=rmin, rmax=rmax, max_phase=max_phase, gamma=gamma,
                                mk_a_scale=mk_a_scale, rngs=rngs)

    def smu(self, u: jax.Array, prototypes: jax.Array) -> tuple[jax.Array, jax.Array]:
        """u (B, L, C), prototypes (T, C) -> (logits S (B, L, T), Mk = softmax_T(S)), both float32."""
        q = l2_normalize(self.wq(u).astype(jnp.float32))
        k = l2_normalize(self.wk(prototypes).astype(jnp.float32))
        temperature = 1.0 + jnp.clip(self.scale[...], 0.0, 1.0) * math.log(self.num_tokens)
        logits = jnp.dot(q, k.T) * temperature
        return logits, jax.nn.softmax(logits, axis=-1)

    def __call__(self, u: jax.Array, prototypes: jax.Array, hw: tuple[int, int], semantics: Semantics,
                 scan: ScanSpec, key: jax.Array | None = None,
                 extent: Extent | None = None) -> jax.Array:
        """u: (B, L, C) normalised raster tokens of an H×W map, prototypes (T, C)
        -> (B, L, C) = concat(out_proj(LRU) (B, L, C/2), Mk·V (B, L, C/2)).

        `key` (training only) samples the categories with Gumbel noise. `scan` is the LRU's scan
        strategy. `extent`: the real image inside a padded map (`lsm_jax.model.extent`).
        """
        b, l, c = u.shape
        logits, mk = self.smu(u, prototypes)
        enhanced = jnp.dot(mk.astype(u.dtype), self.wv(prototypes).astype(u.dtype))   # (B, L, C/2)
        category = jax.lax.stop_gradient(categorise(logits, key))
        mk_raster = mk
        if extent is not None:
            # Padding sorts after every real token (category T is past the last prototype), and the
            # raster-order modulation (Q5) reads the real tokens in their true raster order.
            category = jnp.where(extent.tokens_inside(hw)[None], category, self.num_tokens)
            mk_raster = jnp.take(mk, extent.raster_compaction(hw), axis=1)
        order, inverse = sort_order(category)

        g = self.in_proj(u.reshape(b, *hw, c))
        g = g * jax.nn.sigmoid(self.CPE(zero_outside(g, extent)))
        us = gather_tokens(g.reshape(b, l, c), order)
        mk_lru = gather_tokens(mk, order) if semantics.modulation_order == 'sorted' else mk_raster
        mk_a, mk_b, mk_cre, mk_cim = jnp.split(mk_lru, 4, axis=-1)
        ys = self.lru_core(us, mk_a, mk_b, mk_cre, mk_cim,
                           scan_axis=0 if semantics.scan_axis == 'batch' else 1,
                           mk_a_batch_mean=semantics.mk_a_batch_mean, scan=scan)
        y = gather_tokens(ys, inverse)
        out = jnp.concatenate([self.out_proj(y), enhanced.astype(y.dtype)], axis=-1)
        sow(self, smu_input=u, Mk=mk, category=category, sort_idx=order, lru_input_sorted=us,
            lru_output_sorted=ys, lru_unsorted_before_out_proj=y, output=out)
        return out
