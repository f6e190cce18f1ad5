"""Every scan implementation equals the sequential oracle, in values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsm_jax.scan import linear_recurrence


def _inputs(key, shape, max_modulus):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    modulus = jax.random.uniform(k1, shape, minval=0.5, maxval=max_modulus)
    phase = jax.random.uniform(k2, shape, maxval=2 * np.pi)
    x_re, x_im = jax.random.normal(k3, shape), jax.random.normal(k4, shape)
    return modulus, phase, x_re, x_im


def _states(modulus, phase, x_re, x_im, *, axis, impl):
    a = jax.lax.complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))
    return linear_recurrence(a, jax.lax.complex(x_re, x_im), axis=axis, impl=impl)


def _relative_error(value, oracle):
    return float(jnp.max(jnp.abs(value - oracle)) / jnp.max(jnp.abs(oracle)))


@pytest.mark.parametrize('impl', ['associative', 'chunked'])
@pytest.mark.parametrize('length, axis, max_modulus', [
    (1, 1, 0.99), (7, 0, 0.9), (100, 1, 0.9999), (4097, 1, 0.9999), (65536, 1, 0.9999), (65536, 0, 0.99)])
def test_values_match_sequential(impl, length, axis, max_modulus):
    shape = [2, 3]
    shape.insert(axis, length)
    args = _inputs(jax.random.key(length), tuple(shape), max_modulus)
    oracle = jax.jit(lambda *a: _states(*a, axis=axis, impl='sequential'))(*args)
    value = jax.jit(lambda *a: _states(*a, axis=axis, impl=impl))(*args)
    assert value.shape == oracle.shape
    assert _relative_error(value, oracle) <= 2e-5


@pytest.mark.parametrize('impl', ['associative', 'chunked'])
@pytest.mark.parametrize('length', [5, 1000, 65536])
def test_gradients_match_sequential(impl, length):
    args = _inputs(jax.random.key(1), (2, length, 2), 0.9999)
    weights = jax.random.normal(jax.random.key(2), (2, length, 2))

    def loss(impl_name, *a):
        h = _states(*a, axis=1, impl=impl_name)
        return jnp.sum(weights * (jnp.real(h) + 0.5 * jnp.imag(h)))

    grads_oracle = jax.jit(jax.grad(lambda *a: loss('sequential', *a), argnums=(0, 1, 2, 3)))(*args)
    grads = jax.jit(jax.grad(lambda *a: loss(impl, *a), argnums=(0, 1, 2, 3)))(*args)
    for g, g_ref in zip(grads, grads_oracle):
        assert _relative_error(g, g_ref) <= 5e-5


def test_first_state_is_input_and_recurrence_holds():
    a = jnp.array([[0.5 + 0.1j], [0.25 - 0.5j], [1.0 + 0j]], jnp.complex64)
    x = jnp.array([[1.0 + 2j], [3.0 + 0j], [-1.0 + 1j]], jnp.complex64)
    h = np.asarray(linear_recurrence(a, x, axis=0))
    expected = [x[0], a[1] * x[0] + x[1]]
    expected.append(a[2] * expected[1] + x[2])
    np.testing.assert_allclose(h, np.stack(expected), rtol=1e-6)


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match='scan_impl'):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='pallas')
