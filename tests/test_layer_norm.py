"""LayerNorm's closed-form gradient against autodiff of the plain formula, and torch's forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsm_jax.model.layers import LayerNorm, layer_norm


def plain(x, scale, bias):
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    return centred * jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=-1, keepdims=True) + 1e-5) * scale + bias


@pytest.mark.parametrize("shape", [(7, 12), (2, 5, 3, 8)])
def test_layer_norm_gradient_equals_autodiff(shape):
    keys = jax.random.split(jax.random.key(0), 4)
    x = 3.0 + 2.0 * jax.random.normal(keys[0], shape)
    scale, bias = jax.random.normal(keys[1], shape[-1:]), jax.random.normal(keys[2], shape[-1:])
    target = jax.random.normal(keys[3], shape)

    def loss(fn):
        return lambda x, s, b: jnp.sum(jnp.tanh(fn(x, s, b)) * target)
    with jax.default_matmul_precision("highest"):
        np.testing.assert_array_equal(layer_norm(x, scale, bias), plain(x, scale, bias))
        got = jax.grad(loss(layer_norm), (0, 1, 2))(x, scale, bias)
        want = jax.grad(loss(plain), (0, 1, 2))(x, scale, bias)
    for name, a, b in zip(("x", "scale", "bias"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


def test_layer_norm_module_keeps_bfloat16_and_normalises_in_float32():
    norm = LayerNorm(6)
    x = (100.0 + jax.random.normal(jax.random.key(1), (3, 6))).astype(jnp.bfloat16)
    y = norm(x)
    assert y.dtype == jnp.bfloat16
    x64 = np.asarray(x, np.float64)
    want = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float32), want, atol=3e-2)
    g = jax.grad(lambda x: jnp.sum(norm(x).astype(jnp.float32) ** 2))(x)
    assert g.dtype == jnp.bfloat16 and np.isfinite(np.asarray(g, np.float32)).all()
