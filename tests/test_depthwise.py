"""DepthwiseConv3x3's two forms: nine shifted multiply-adds (the CPU's) and one grouped convolution (TPU,
GPU), chosen by `lax.platform_dependent` when the program is lowered."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsm_jax.model.layers import depthwise_grouped, depthwise_shifted

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None


def test_the_grouped_form_equals_the_multiply_adds_and_a_numpy_correlation():
    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 6))
    k = jax.random.normal(jax.random.key(1), (3, 3, 1, 6))
    p = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = sum(p[:, dy:dy + 7, dx:dx + 5] * np.asarray(k, np.float64)[dy, dx, 0] for dy in range(3) for dx in range(3))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(depthwise_shifted(x, k), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(depthwise_grouped(x, k), want, rtol=1e-5, atol=1e-5)
    # The gradients agree as well (the backward is what the TPU form saves bytes on).
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))   # noqa: E731
    gs, gg = jax.grad(loss(depthwise_shifted), (0, 1))(x, k), jax.grad(loss(depthwise_grouped), (0, 1))(x, k)
    for a, b in zip(gs, gg):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _dwconv_hlo(devices) -> str:
    from flax import nnx

    from lsm_jax.model.layers import DepthwiseConv3x3
    layer = DepthwiseConv3x3(8, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)
    fn = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    shardings = jax.sharding.SingleDeviceSharding(devices[0])
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=shardings), state)
    x = jax.ShapeDtypeStruct((1, 16, 16, 8), jnp.float32, sharding=shardings)
    return fn.lower(abstract, x).as_text()


def test_the_cpu_program_has_no_convolution():
    assert "convolution" not in _dwconv_hlo(jax.devices("cpu"))


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e '.[tpu]')")
def test_a_tpu_program_compiled_on_this_host_gets_the_grouped_convolution():
    from lsm_jax.pod.plan import topology_devices
    hlo = _dwconv_hlo(topology_devices("v5p:1x1x1"))
    assert "convolution" in hlo and "feature_group_count = 8" in hlo
