"""The window attention's CPU form: `attend` forward, with the gradient of `attend_in_chunks` (a few
windows at a time, rematerialised), and the per-half padding of unshifted windows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsm_jax.model import window_attention as wa


def _inputs(b=2, nw=6, heads=2, n=16, d=5, dtype=jnp.float32):
    keys = jax.random.split(jax.random.key(0), 5)
    q, k, v = (jax.random.normal(key, (b, nw, heads, n, d)).astype(dtype) for key in keys[:3])
    bias = jax.random.normal(keys[3], (heads, n, n))
    mask = jnp.where(jax.random.bernoulli(keys[4], 0.3, (nw, n, n)), -100.0, 0.0)
    return q, k, v, bias, mask


@pytest.mark.parametrize("masked", [False, True])
def test_chunked_gradient_equals_the_batched_one(masked, monkeypatch):
    # Chunks of 2 windows (of 6, batch 2: 6 scan steps), so the mask's per-chunk slice wraps per image.
    monkeypatch.setattr(wa, "CHUNK_BYTES", 2 * 2 * 16 * 16 * 4)
    assert wa.windows_per_chunk(6, 2, 16) == 2
    q, k, v, bias, mask = _inputs()
    mask = mask if masked else None
    target = jax.random.normal(jax.random.key(9), q.shape)

    def loss(fn):
        return lambda q, k, v, bias: jnp.sum(jnp.sin(fn(q, k, v, bias, mask)) * target)
    with jax.default_matmul_precision("highest"):
        np.testing.assert_array_equal(wa.attend_backward_in_chunks(q, k, v, bias, mask), wa.attend(q, k, v, bias, mask))
        want = jax.grad(loss(wa.attend), (0, 1, 2, 3))(q, k, v, bias)
        got = jax.jit(jax.grad(loss(wa.attend_backward_in_chunks), (0, 1, 2, 3)))(q, k, v, bias)
    for name, a, b in zip("q k v bias".split(), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
    assert float(jnp.abs(want[3]).max()) > 0   # the position bias gets a gradient through the chunks


def test_chunked_gradient_in_bfloat16_compute():
    q, k, v, bias, mask = _inputs(dtype=jnp.bfloat16)
    grad = lambda fn: jax.grad(lambda q: jnp.sum(fn(q, k, v, bias, mask)))(q)   # noqa: E731
    got, want = grad(wa.attend_backward_in_chunks), grad(wa.attend)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=2e-2, atol=2e-2)


def test_windows_per_chunk_divides_and_fits():
    for windows in (1, 7, 16, 64, 90):
        c = wa.windows_per_chunk(windows, 3, 256)
        assert windows % c == 0 and (c == 1 or c * 3 * 256 * 256 * 4 <= wa.CHUNK_BYTES)
    assert wa.windows_per_chunk(16, 2, 256) == 8     # LSM-light's 8×32 windows: 4 MiB of logits


@pytest.mark.parametrize("shifted", [False, True])
def test_each_half_pads_only_to_its_own_window_when_unshifted(shifted):
    """8×4 and 4×8 windows on a 9×10 map: Hp×Wp = 16×16 for both halves, but an unshifted 8×4
    window row past row 9 holds only padding. The attention equals a plain loop that runs every branch
    on the full 16×16 grid and crops."""
    attn = wa.WindowAttention(8, 4, (8, 4), rngs=nnx.Rngs(0))
    u = jax.random.normal(jax.random.key(1), (2, 90, 8))
    with jax.default_matmul_precision("highest"):
        got = attn(u, (9, 10), shifted)
        qkv = attn.qkv(u).reshape(2, 9, 10, 24)
        q, k, v = (jnp.pad(t, ((0, 0), (0, 7), (0, 6), (0, 0))) for t in jnp.split(qkv, 3, axis=-1))
        outs = [branch(q[..., 4 * i:4 * i + 4], k[..., 4 * i:4 * i + 4], v[..., 4 * i:4 * i + 4], shifted)
                for i, branch in enumerate(attn.attns)]
        x = jnp.concatenate(outs, axis=-1)[:, :9, :10] + attn.get_v(jnp.split(qkv, 3, axis=-1)[2])
        want = attn.proj(x.reshape(2, 90, 8))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Unshifted, the 8×4 half runs on 16×12 and the 4×8 half on 12×16: 6 windows each, not 8.
    text = jax.jit(lambda u: attn(u, (9, 10), shifted)).lower(u).as_text()
    assert ("tensor<2x6x2x32x32xf32>" in text) != shifted
    assert ("tensor<2x8x2x32x32xf32>" in text) == shifted
