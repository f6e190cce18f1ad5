"""The Pallas strategy: a TPU kernel, sequential within a sequence block, the state carried across blocks.
On a GPU backend the strategy runs the chunked two-pass kernel of `lsm_jax.scan.pallas_gpu` instead.

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q);
M = P·Q lanes, C = `block_len` steps per block.

Layout: the canonical (P, L, Q) input becomes time-major planes (L, M), M padded to a multiple of
128, so B·N (not N = 32 alone) fills the 128 lanes; complex numbers travel as two float32 planes
(TPUs have no complex vector type). The grid is (M/128 lane blocks: parallel, L/C sequence blocks:
arbitrary, in scan order); each step loops over its C rows, and the state lives in VMEM scratch
between sequence blocks. With `interpret=None` the kernel runs natively on a TPU and in Pallas'
interpret mode elsewhere (the CPU tests check its values; `tests/test_scan.py` also compiles it
ahead of time for a TPU target when libtpu is installed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from lsm_jax.scan.common import float_planes, pad_identity, result_dtype, time_major_planes

LANES = 128


def _kernel(reverse: bool, block_len: int, has_h0: bool):
    def kernel(*refs):
        if has_h0:
            a_re, a_im, x_re, x_im, h0_re, h0_im, h_re, h_im, last_re, last_im, s_re, s_im = refs
        else:
            a_re, a_im, x_re, x_im, h_re, h_im, last_re, last_im, s_re, s_im = refs

        @pl.when(pl.program_id(1) == 0)
        def _start():
            s_re[...] = h0_re[...] if has_h0 else jnp.zeros_like(s_re)
            s_im[...] = h0_im[...] if has_h0 else jnp.zeros_like(s_im)

        def step(i, carry):
            c_re, c_im = carry
            t = block_len - 1 - i if reverse else i
            row = pl.ds(t, 1)
            ar, ai = a_re[row, :], a_im[row, :]
            n_re = ar * c_re - ai * c_im + x_re[row, :]
            n_im = ar * c_im + ai * c_re + x_im[row, :]
            h_re[row, :] = n_re
            h_im[row, :] = n_im
            return n_re, n_im
        c_re, c_im = jax.lax.fori_loop(0, block_len, step, (s_re[...], s_im[...]))
        s_re[...], s_im[...] = c_re, c_im
        last_re[...], last_im[...] = c_re, c_im
    return kernel


def scan_pallas(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, block_len: int = 256,
                interpret: bool | None = None):
    """a3, x3, h0 -> (h (P, L, Q), h_last (P, Q)); computes in float32 (L, M) planes, returns complex64
    (or float32 for real inputs)."""
    if jax.default_backend() == 'gpu':        # the chunked two-pass kernel (Triton), lsm_jax.scan.pallas_gpu
        from lsm_jax.scan.pallas_gpu import scan_pallas_gpu
        return scan_pallas_gpu(a3, x3, h0, reverse, block_len=block_len, interpret=interpret)
    compute = result_dtype(a3, x3)
    if interpret is None:
        interpret = jax.default_backend() != 'tpu'
    length = x3.shape[1]
    block_len = max(8, min(block_len, -(-length // 8) * 8))      # whole sublane tiles
    a3, x3 = pad_identity(jnp.broadcast_to(a3, a3.shape[:1] + x3.shape[1:2] + a3.shape[2:]), x3, block_len,
                          at_start=reverse)
    p, lp, q = x3.shape
    m = p * q
    m_pad = -(-m // LANES) * LANES
    planes = [*time_major_planes(a3, (p, lp, q), m_pad), *time_major_planes(x3, (p, lp, q), m_pad)]
    nt = lp // block_len
    t_block = (lambda i, j: (nt - 1 - j, i)) if reverse else (lambda i, j: (j, i))
    seq_spec = pl.BlockSpec((block_len, LANES), t_block)
    row_spec = pl.BlockSpec((1, LANES), lambda i, j: (0, i))
    in_specs = [seq_spec] * 4
    if h0 is not None:
        planes += list(float_planes(h0.reshape(1, m), m_pad))
        in_specs += [row_spec] * 2
    plane = jax.ShapeDtypeStruct((lp, m_pad), jnp.float32)
    row = jax.ShapeDtypeStruct((1, m_pad), jnp.float32)
    h_re, h_im, l_re, l_im = pl.pallas_call(
        _kernel(reverse, block_len, h0 is not None),
        out_shape=(plane, plane, row, row),
        grid=(m_pad // LANES, nt),
        in_specs=in_specs,
        out_specs=(seq_spec, seq_spec, row_spec, row_spec),
        scratch_shapes=[pltpu.VMEM((1, LANES), jnp.float32)] * 2,
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        interpret=interpret,
    )(*planes)
    pad = lp - length
    h = jax.lax.complex(h_re, h_im)[:, :m].reshape(lp, p, q)
    h = jnp.moveaxis(h, 0, 1)
    h = h[:, pad:] if reverse else h[:, :length]
    h_last = jax.lax.complex(l_re, l_im)[0, :m].reshape(p, q)
    if not jnp.issubdtype(compute, jnp.complexfloating):
        h, h_last = jnp.real(h), jnp.real(h_last)
    return h.astype(compute), h_last.astype(compute)
