"""The Pallas strategy on GPUs: a chunked two-pass kernel (Triton lowering).

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q);
M = P·Q lanes, C = `block_len` steps per chunk (a power of two), K = L / C chunks.

The canonical (P, L, Q) input becomes time-major float32 planes (L, M) (complex as two planes, as on
the TPU). The sequence is cut into K chunks of C steps so that a GPU has K × (M / 32) programs to
run, not M / 32:

  pass 1  every (chunk, lane block) program runs the recurrence from zero over its chunk and writes
          the chunk's summary (Π a, end state), (K, M) each;
  carry   a short sequential scan over the K summaries (XLA) gives each chunk's carry-in;
  pass 2  every program rescans its chunk from its carry-in and writes h.

40 bytes per complex64 element, as `two_pass`. Off a GPU it runs in Pallas' interpret mode (the CPU
tests check its values); `tests/test_scan.py` also lowers it to Triton for an abstract H100 on a CPU
machine. It has not run on a GPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from lsm_jax.scan.common import pad_identity, result_dtype, time_major_planes
from lsm_jax.scan.sequential import scan_sequential

LANES = 32      # lanes per program: one warp's worth of float32


def _summary_kernel(reverse: bool, block_len: int):
    def kernel(a_re, a_im, x_re, x_im, p_re, p_im, e_re, e_im):
        def step(i, carry):
            pr, pi, sr, si = carry
            t = block_len - 1 - i if reverse else i
            ar, ai = a_re[t, :], a_im[t, :]
            return (ar * pr - ai * pi, ar * pi + ai * pr,
                    ar * sr - ai * si + x_re[t, :], ar * si + ai * sr + x_im[t, :])
        one, zero = jnp.ones((LANES,), jnp.float32), jnp.zeros((LANES,), jnp.float32)
        pr, pi, sr, si = jax.lax.fori_loop(0, block_len, step, (one, zero, zero, zero))
        p_re[0, :], p_im[0, :], e_re[0, :], e_im[0, :] = pr, pi, sr, si
    return kernel


def _rescan_kernel(reverse: bool, block_len: int):
    def kernel(a_re, a_im, x_re, x_im, c_re, c_im, h_re, h_im):
        def step(i, carry):
            hr, hi = carry
            t = block_len - 1 - i if reverse else i
            ar, ai = a_re[t, :], a_im[t, :]
            hr, hi = ar * hr - ai * hi + x_re[t, :], ar * hi + ai * hr + x_im[t, :]
            h_re[t, :], h_im[t, :] = hr, hi
            return hr, hi
        jax.lax.fori_loop(0, block_len, step, (c_re[0, :], c_im[0, :]))
    return kernel


def scan_pallas_gpu(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, block_len: int = 256,
                    interpret: bool | None = None):
    """a3, x3, h0 -> (h (P, L, Q), h_last (P, Q)); computes in float32 (L, M) planes, summaries (K, M)."""
    compute = result_dtype(a3, x3)
    if interpret is None:
        interpret = jax.default_backend() != "gpu"
    length = x3.shape[1]
    block_len = max(16, min(block_len, 1 << max(length - 1, 1).bit_length()))
    block_len = 1 << (block_len - 1).bit_length()                # Triton blocks are powers of two
    a3, x3 = pad_identity(jnp.broadcast_to(a3, a3.shape[:1] + x3.shape[1:2] + a3.shape[2:]), x3, block_len,
                          at_start=reverse)
    p, lp, q = x3.shape
    m = p * q
    m_pad = -(-m // LANES) * LANES
    n = lp // block_len
    planes = [*time_major_planes(a3, (p, lp, q), m_pad), *time_major_planes(x3, (p, lp, q), m_pad)]
    seq = pl.BlockSpec((block_len, LANES), lambda c, j: (c, j))
    row = pl.BlockSpec((1, LANES), lambda c, j: (c, j))
    summary = jax.ShapeDtypeStruct((n, m_pad), jnp.float32)
    params = dict(grid=(n, m_pad // LANES), interpret=interpret, compiler_params=plgpu.CompilerParams(num_warps=1))
    p_re, p_im, e_re, e_im = pl.pallas_call(_summary_kernel(reverse, block_len), out_shape=(summary,) * 4,
                                            in_specs=[seq] * 4, out_specs=(row,) * 4, **params)(*planes)
    prods, ends = jax.lax.complex(p_re, p_im)[None], jax.lax.complex(e_re, e_im)[None]   # (1, n, M)
    start = None if h0 is None else jnp.pad(h0.astype(jnp.complex64).reshape(1, m), ((0, 0), (0, m_pad - m)))
    full_ends, last = scan_sequential(prods, ends, start, reverse)
    first = jnp.zeros((1, 1, m_pad), jnp.complex64) if start is None else start[:, None]
    carry = (jnp.concatenate([first, full_ends[:, :-1]], 1) if not reverse
             else jnp.concatenate([full_ends[:, 1:], first], 1))[0]
    plane = jax.ShapeDtypeStruct((lp, m_pad), jnp.float32)
    h_re, h_im = pl.pallas_call(_rescan_kernel(reverse, block_len), out_shape=(plane, plane),
                                in_specs=[seq] * 4 + [row] * 2, out_specs=(seq, seq),
                                **params)(*planes, jnp.real(carry), jnp.imag(carry))
    h = jnp.moveaxis(jax.lax.complex(h_re, h_im)[:, :m].reshape(lp, p, q), 0, 1)
    pad = lp - length
    h = h[:, pad:] if reverse else h[:, :length]
    h_last = last[0, :m].reshape(p, q)
    if not jnp.issubdtype(compute, jnp.complexfloating):
        h, h_last = jnp.real(h), jnp.real(h_last)
    return h.astype(compute), h_last.astype(compute)
