"""The WMS block's attention (spec §3): two channel halves attending in (s0×s1) and (s1×s0) windows.

Reproduces the reference exactly, quirks included: q/k/v are zero-padded *after* the projection with
no key masking (Q10), the shift mask uses -100 on the padded grid (Q13), an odd head count floors
(Q8), and the relative-position bias comes from a small MLP over raw integer offsets (§3.1).

Shapes (legend in `lsm_jax.model.layers`): tokens (B, L, C) in and out of `WindowAttention`; each
`WindowBranch` attends over one channel half, maps (B, Hp, Wp, C/2), in nW windows of n = hs·ws
tokens, as (B, nW, heads, n, d).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsm_jax.model.extent import Extent
from lsm_jax.model.layers import DepthwiseConv3x3, LayerNorm, Linear, sow


@functools.lru_cache(maxsize=None)
def relative_position_index(hs: int, ws: int) -> np.ndarray:
    """(n, n) int32: the row of the (P, heads) position table for each token pair of an hs×ws window."""
    ys, xs = np.meshgrid(np.arange(hs), np.arange(ws), indexing='ij')
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dh = ys[:, None] - ys[None, :] + hs - 1
    dw = xs[:, None] - xs[None, :] + ws - 1
    return (dh * (2 * ws - 1) + dw).astype(np.int32)


@functools.lru_cache(maxsize=None)
def relative_offsets(hs: int, ws: int) -> np.ndarray:
    """(P, 2) float32 table input: every offset (dh, dw), dh outer, as raw integers."""
    dh, dw = np.meshgrid(np.arange(-(hs - 1), hs), np.arange(-(ws - 1), ws), indexing='ij')
    return np.stack([dh.reshape(-1), dw.reshape(-1)], axis=1).astype(np.float32)


def shift_mask(hp: int, wp: int, hs: int, ws: int, sh: int, sw: int, edge=None) -> jax.Array:
    """(nW, n, n) float32 Swin region mask on the padded Hp×Wp grid: -100 across regions.

    `edge` = (rows, cols), traced, when the padded grid of the real image is smaller than Hp×Wp (a
    bucket, `lsm_jax.model.extent`): the regions are then those of that grid, whose windows are the
    top-left ones of this one. Built from iotas inside the program rather than as a NumPy constant:
    for a 1024² image the mask would otherwise be a 1 GB literal per attention branch, embedded in
    the compiled program."""
    edge_h, edge_w = (hp, wp) if edge is None else edge
    rows = jax.lax.broadcasted_iota(jnp.int32, (hp, wp), 0)
    cols = jax.lax.broadcasted_iota(jnp.int32, (hp, wp), 1)
    region_row = (rows >= edge_h - hs).astype(jnp.int32) + (rows >= edge_h - sh)
    region_col = (cols >= edge_w - ws).astype(jnp.int32) + (cols >= edge_w - sw)
    labels = 3 * region_row + region_col
    win = labels.reshape(hp // hs, hs, wp // ws, ws).transpose(0, 2, 1, 3).reshape(-1, hs * ws)
    return jnp.where(win[:, :, None] != win[:, None, :], -100.0, 0.0).astype(jnp.float32)


def roll_within(x: jax.Array, shift: int, size: jax.Array, axis: int) -> jax.Array:
    """`jnp.roll` of the first `size` entries along `axis` (`size` traced, ≤ the axis length), as if
    the axis ended there; entries from `size` on are unspecified (they are padding)."""
    n = x.shape[axis]
    src = jnp.arange(n, dtype=jnp.int32) - shift
    src = jnp.where(src < 0, src + size, jnp.where(src >= size, src - size, src))
    return jnp.take(x, jnp.clip(src, 0, n - 1), axis=axis)


def to_head_windows(x: jax.Array, hs: int, ws: int, heads: int) -> jax.Array:
    """(B, Hp, Wp, heads·d) -> (B, nW, heads, n, d), windows and tokens row-major."""
    b, hp, wp, c = x.shape
    x = x.reshape(b, hp // hs, hs, wp // ws, ws, heads, c // heads).transpose(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, (hp // hs) * (wp // ws), heads, hs * ws, c // heads)


def from_head_windows(x: jax.Array, hp: int, wp: int, hs: int, ws: int) -> jax.Array:
    """Inverse of `to_head_windows`: (B, nW, heads, n, d) -> (B, Hp, Wp, heads·d)."""
    b, _, heads, _, d = x.shape
    x = x.reshape(b, hp // hs, wp // ws, heads, hs, ws, d).transpose(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, hp, wp, heads * d)


def attend(qw: jax.Array, kw: jax.Array, vw: jax.Array, bias: jax.Array, mask: jax.Array | None) -> jax.Array:
    """softmax(q·kᵀ + bias [+ mask])·v per window and head: (..., nW, heads, n, d) -> the same, float32.

    bias (heads, n, n); mask (nW, n, n) or None. exp(logits - max)·v, then a divide by the row sums:
    one pass fewer than softmax-then-matmul. The max only keeps exp in range, and the result does not
    depend on it, so no gradient flows through it (as in `jax.nn.softmax`): autodiff would otherwise
    add a one-hot pass over the logits whose contributions cancel."""
    logits = jnp.einsum('...whid,...whjd->...whij', qw, kw, preferred_element_type=jnp.float32) + bias
    if mask is not None:
        logits = logits + mask[:, None]
    weights = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    out = jnp.einsum('...whij,...whjd->...whid', weights.astype(vw.dtype), vw, preferred_element_type=jnp.float32)
    return out / jnp.sum(weights, axis=-1, keepdims=True)


CHUNK_BYTES = 4 << 20   # one chunk's float32 logits: a few MiB stay in a CPU's caches


def windows_per_chunk(windows: int, heads: int, n: int) -> int:
    """The most windows, a divisor of `windows`, whose logits fit in CHUNK_BYTES (at least 1)."""
    fits = max(1, CHUNK_BYTES // (heads * n * n * 4))
    return max(c for c in range(1, windows + 1) if windows % c == 0 and c <= fits)


def attend_in_chunks(qw, kw, vw, bias, mask):
    """`attend`, a few windows at a time (`windows_per_chunk`) in a `lax.scan` whose body is
    rematerialised: its gradient recomputes each chunk's logits from q, k, v while they are still in
    the cache, where `attend`'s gradient writes and re-reads several full (B, nW, heads, n, n) arrays."""
    b, nw, h, n, d = qw.shape
    c = windows_per_chunk(nw, h, n)
    steps = b * nw // c

    @jax.checkpoint
    def body(_, xs):
        i, q, k, v = xs
        chunk_mask = None if mask is None else jax.lax.dynamic_slice_in_dim(mask, (i * c) % nw, c, 0)
        return None, attend(q, k, v, bias, chunk_mask)

    xs = (jnp.arange(steps),) + tuple(t.reshape(steps, c, h, n, t.shape[-1]) for t in (qw, kw, vw))
    return jax.lax.scan(body, None, xs)[1].reshape(b, nw, h, n, d)


@jax.custom_vjp
def attend_backward_in_chunks(qw, kw, vw, bias, mask):
    """`attend`, whose gradient is `attend_in_chunks`'s: the CPU form (`WindowBranch` picks it with
    `lax.platform_dependent`). The same numbers up to the order of the position bias gradient's sum,
    and the training step's largest saving on a CPU (docs/performance.md). The forward stays one batched
    `attend`, so an inference program (and its ONNX export) has no loop."""
    return attend(qw, kw, vw, bias, mask)


def _attend_fwd(qw, kw, vw, bias, mask):
    return attend(qw, kw, vw, bias, mask), (qw, kw, vw, bias, mask)


def _attend_bwd(residuals, g):
    return jax.vjp(attend_in_chunks, *residuals)[1](g)


attend_backward_in_chunks.defvjp(_attend_fwd, _attend_bwd)


class DynamicPosBias(nnx.Module):
    """Relative-position bias MLP (`attns.k.pos`): Linear(2→p), 3 × (LN → ReLU → Linear), last to heads."""

    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
        self.pos_proj = Linear(2, width, rngs=rngs)
        self.pos1_norm, self.pos1 = LayerNorm(width), Linear(width, width, rngs=rngs)
        self.pos2_norm, self.pos2 = LayerNorm(width), Linear(width, width, rngs=rngs)
        self.pos3_norm, self.pos3 = LayerNorm(width), Linear(width, heads, rngs=rngs)

    def __call__(self, offsets: jax.Array) -> jax.Array:
        """offsets (P, 2) -> table (P, heads)."""
        z = self.pos_proj(offsets)
        for norm, lin in ((self.pos1_norm, self.pos1), (self.pos2_norm, self.pos2), (self.pos3_norm, self.pos3)):
            z = lin(jax.nn.relu(norm(z)))
        return z


class WindowBranch(nnx.Module):
    """One channel half (`attns.k`): multi-head attention inside hs×ws windows with a position bias."""

    def __init__(self, half_dim: int, heads: int, window: tuple[int, int], *, rngs: nnx.Rngs):
        self.heads = heads
        self.window = window
        self.pos = DynamicPosBias(((half_dim // 4) // 4), heads, rngs=rngs)

    def position_bias(self) -> jax.Array:
        """(heads, n, n) bias for every token pair of a window."""
        hs, ws = self.window
        table = self.pos(jnp.asarray(relative_offsets(hs, ws)))            # (P, heads)
        bias = table[relative_position_index(hs, ws)]                       # (n, n, heads)
        return bias.transpose(2, 0, 1).astype(jnp.float32)

    def __call__(self, q: jax.Array, k: jax.Array, v: jax.Array, shifted: bool, edge=None) -> jax.Array:
        """q, k, v: (B, Hp, Wp, C/2) padded maps -> (B, Hp, Wp, C/2).

        `edge` (traced rows, cols): the real image's padded grid when it is smaller than Hp×Wp (a
        bucket); the shifted windows then roll and mask at that size, as they would unbucketed."""
        b, hp, wp, c = q.shape
        hs, ws = self.window
        sh, sw = hs // 2, ws // 2
        if shifted and edge is None:
            q, k, v = (jnp.roll(t, (-sh, -sw), axis=(1, 2)) for t in (q, k, v))
        elif shifted:
            q, k, v = (roll_within(roll_within(t, -sh, edge[0], 1), -sw, edge[1], 2) for t in (q, k, v))
        hd = c // self.heads
        # Heads before tokens in one transpose, so both matmuls see (B, nW, heads) as leading batch
        # dimensions and XLA needs no further layout copies.
        qw, kw, vw = (to_head_windows(t, hs, ws, self.heads) for t in (q * (hd ** -0.5), k, v))
        mask = shift_mask(hp, wp, hs, ws, sh, sw, edge) if shifted else None
        out = jax.lax.platform_dependent(qw, kw, vw, self.position_bias(), mask,
                                         cpu=attend_backward_in_chunks, default=attend)
        out = from_head_windows(out.astype(q.dtype), hp, wp, hs, ws)
        if shifted and edge is None:
            out = jnp.roll(out, (sh, sw), axis=(1, 2))
        elif shifted:
            out = roll_within(roll_within(out, sh, edge[0], 1), sw, edge[1], 2)
        return out


class WindowAttention(nnx.Module):
    """The WMS block's attention module (`attn.`): qkv, the lcm depthwise term, two branches, proj.
    Sows `output`."""

    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        s0, s1 = split_size
        if dim % 2:
            raise ValueError(f"embed_dim must be even (two attention halves), got {dim}")
        heads = num_heads // 2   # Q8: an odd head count floors.
        if heads < 1 or (dim // 2) % heads:
            raise ValueError(f"embed_dim/2 = {dim // 2} must divide into num_heads//2 = {heads} heads")
        if min(s0, s1) < 2 or max(s0, s1) % min(s0, s1):
            raise ValueError(f"split_size {split_size}: both ≥ 2 and the larger a multiple of the smaller")
        self.dim = dim
        self.pad_to = max(s0, s1)
        self.qkv = Linear(dim, 3 * dim, names=('embed', 'mlp'), dtype=dtype, rngs=rngs)
        self.proj = Linear(dim, dim, names=('embed', 'embed'), dtype=dtype, rngs=rngs)
        self.get_v = DepthwiseConv3x3(dim, dtype=dtype, rngs=rngs)
        self.attns = nnx.List([WindowBranch(dim // 2, heads, (s0, s1), rngs=rngs),
                               WindowBranch(dim // 2, heads, (s1, s0), rngs=rngs)])

    def __call__(self, u: jax.Array, hw: tuple[int, int], shifted: bool,
                 extent: Extent | None = None) -> jax.Array:
        """u: (B, L, C) raster tokens of an H×W map -> (B, L, C). The halves attend in hs×ws = s0×s1
        and s1×s0 windows (`split_size`), on the map padded to Hp×Wp, multiples of max(s0, s1).
        `extent`: the real image inside a padded map (`lsm_jax.model.extent`), whose sides are then
        multiples of the window."""
        b, l, c = u.shape
        h, w = hw
        qkv = self.qkv(u).reshape(b, h, w, 3 * c)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        edge = None
        if extent is not None:
            # The reference zero-pads q, k, v of the real image (Q10): zero what lies outside it.
            q, k, v = (extent.zero_outside(t) for t in (q, k, v))
            edge = tuple((side + self.pad_to - 1) // self.pad_to * self.pad_to for side in (extent.h, extent.w))
        lcm = self.get_v(v)
        hp, wp = math.ceil(h / self.pad_to) * self.pad_to, math.ceil(w / self.pad_to) * self.pad_to
        pad = ((0, 0), (0, hp - h), (0, wp - w), (0, 0))
        q, k, v = (jnp.pad(t, pad) for t in (q, k, v))
        half = c // 2
        outs = []
        for i, branch in enumerate(self.attns):
            # Unshifted windows are independent, and those wholly in the padding (Hp×Wp pads to the
            # larger window side) feed only outputs cropped below: pad this half to its own window.
            hs, ws = branch.window
            rows, cols = (hp, wp) if shifted else (math.ceil(h / hs) * hs, math.ceil(w / ws) * ws)
            part = (t[:, :rows, :cols, i * half:(i + 1) * half] for t in (q, k, v))
            outs.append(branch(*part, shifted, edge)[:, :h, :w])
        x = jnp.concatenate(outs, axis=-1) + lcm
        out = self.proj(x.reshape(b, l, c))
        sow(self, output=out)
        return out


def is_shifted(group: int, block: int) -> bool:
    """Whether WMS block `block` of residual group `group` uses shifted windows (spec §2)."""
    if group % 2 == 0:
        return block > 0 and (block - 2) % 4 == 0
    return block % 4 == 0
