"""The mesh, the logical-axis rules, and sharded training steps that match the single-device ones."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lsm_jax.training import sharding
from lsm_jax.training import step as train_step
from fixture_training import micro_config

pytestmark = pytest.mark.usefixtures("compilation_cache")  # the micro network's programs are shared


def test_mesh_shape_takes_the_remaining_devices():
    assert sharding.mesh_shape((-1, 1, 1), 8) == (8, 1, 1)
    assert sharding.mesh_shape((2, -1, 2), 8) == (2, 2, 2)
    assert sharding.mesh_shape((1, 1, 1), 1) == (1, 1, 1)
    with pytest.raises(ValueError, match="does not divide the 8 devices"):
        sharding.mesh_shape((3, -1, 1), 8)
    with pytest.raises(ValueError, match="at most one -1"):
        sharding.mesh_shape((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="uses 4 devices, but there are 8"):
        sharding.mesh_shape((2, 2, 1), 8)


def test_rules_map_logical_names_and_fall_back_to_replication():
    mesh = sharding.make_mesh(2, 2, 2)
    spec = lambda names, shape, **kw: sharding.logical_to_mesh(names, shape, mesh, **kw)  # noqa: E731
    assert spec(("embed", "mlp"), (32, 64)) == P("fsdp", "model")
    assert spec(("mlp", "embed"), (64, 32)) == P("model", "fsdp")
    # A C×C kernel names 'embed' twice: a mesh axis can split only one dimension.
    assert spec(("conv_spatial", "conv_spatial", "embed", "embed"), (3, 3, 32, 32)) == P(None, None, "fsdp")
    assert spec(("prototypes", "embed"), (16, 32)) == P(None, "fsdp")
    assert spec(("state",), (4,)) == P()
    assert spec(("no_such_name", "embed"), (8, 32)) == P(None, "fsdp")    # unknown names: replicated
    assert spec((None, "embed"), (8, 60)) == P(None, "fsdp")
    assert spec(("embed",), (61,)) == P()                                  # 61 does not divide by 2
    assert spec(("embed", "mlp"), (32, 64), min_size_to_shard=4096) == P()  # too small to be worth it
    big = sharding.make_mesh(1, 8, 1)
    assert sharding.logical_to_mesh(("embed", "mlp"), (60, 120), big) == P()  # LSM-light's C = 60 on fsdp = 8
    with pytest.raises(ValueError, match="unknown mesh axes"):
        spec(("embed",), (32,), rules=[("embed", "tensor")])


def test_batch_sharding_splits_over_data_and_fsdp():
    mesh = sharding.make_mesh(2, 2, 2)
    assert sharding.batch_sharding(mesh).spec == P(("data", "fsdp"), None, None, None)
    assert sharding.batch_shards(mesh) == 4
    assert sharding.batch_sharding(sharding.make_mesh(8, 1, 1)).spec == P("data", None, None, None)
    local = {"lq": np.arange(8 * 2 * 2 * 3, dtype=np.float32).reshape(8, 2, 2, 3)}
    glob = sharding.global_batch(local, mesh)["lq"]
    assert glob.shape == (8, 2, 2, 3) and glob.sharding.spec == P(("data", "fsdp"), None, None, None)
    assert {s.data.shape for s in glob.addressable_shards} == {(2, 2, 2, 3)}
    np.testing.assert_array_equal(np.asarray(glob), local["lq"])


def _three_steps(mesh, init=None, **fields):
    """(losses, state, initial state on the host, gradient norms) after 3 steps on the same 3 batches.
    `init`, the single-device run's initial state, is placed on `mesh` as the rules say (compiling the
    jitted initialiser once per mesh would double the test's time). `fields` override the config."""
    config = micro_config(3, **{"sharding.min_size_to_shard": 0, **fields})
    parts = train_step.build(config, mesh)
    state = parts.init() if init is None else jax.device_put(init, parts.state_shardings)
    init = jax.tree.map(np.asarray, state)
    rng = np.random.default_rng(0)
    losses, grad_norms = [], []
    for _ in range(3):
        gt = rng.random((8, 16, 16, 3), np.float32)
        lq = gt.reshape(8, 8, 2, 8, 2, 3).mean(axis=(2, 4))
        state, metrics = parts.step(state, sharding.global_batch({"lq": lq, "gt": gt}, mesh))
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    return losses, state, init, grad_norms


@pytest.fixture(scope="module")
def single_device():
    # The initial state comes from the 8-device data-parallel initialiser: the same program as the
    # training tests', so the persistent cache compiles it once for both.
    config = micro_config(3, **{"sharding.min_size_to_shard": 0})
    init = jax.tree.map(np.asarray, train_step.build(config, sharding.make_mesh(8, 1, 1)).init())
    return _three_steps(sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]), init)


def _spec(x):
    return x.sharding.spec


def _p(*axes):
    """A PartitionSpec without trailing Nones (as the rules produce them)."""
    axes = list(axes)
    while axes and axes[-1] is None:
        axes.pop()
    return P(*axes)


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 4, 1), (2, 2, 2)])
def test_sharded_steps_match_one_device(single_device, shape):
    ref_losses, ref_state, init, _ = single_device
    mesh = sharding.make_mesh(*shape)
    losses, state, _, _ = _three_steps(mesh, init)
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=1e-4)

    # The parameters (and their EMA and Adam moments) are laid out as the rules declare.
    fsdp = "fsdp" if mesh.shape["fsdp"] > 1 else None
    model = "model" if mesh.shape["model"] > 1 else None
    block = state.params["layers"][0]["blocks"]
    fc1 = block[0]["mlp"]["fc1"]["kernel"][...]                 # (C, Hd): ('embed', 'mlp')
    assert _spec(fc1) == _p(fsdp, model)
    assert fc1.addressable_shards[0].data.shape == (32 // mesh.shape["fsdp"], 64 // mesh.shape["model"])
    conv = state.params["layers"][0]["conv"]["kernel"][...]      # (3, 3, C, C): embed twice
    assert _spec(conv) == _p(None, None, fsdp)
    proto = block[1]["embedding"][...]                           # (T, C): ('prototypes', 'embed')
    assert _spec(proto) == _p(None, fsdp)
    assert _spec(state.params["layers"][0]["conv"]["bias"][...]) == _p(fsdp)
    for leaf in jax.tree.leaves(state.params):
        assert len(leaf.sharding.device_set) == mesh.size       # every array spans the whole mesh
    for tree in (state.ema_params, state.opt_state[0].mu, state.opt_state[0].nu):
        assert [_spec(x) for x in jax.tree.leaves(tree)] == [_spec(x) for x in jax.tree.leaves(state.params)]
    assert _spec(state.step) == P() and _spec(state.rng) == P()


def test_remat_and_bfloat16_inside_the_sharded_step(single_device):
    """On a (2, 2, 2) mesh: rematerialised blocks give the same losses, gradient norms and updated
    parameters as without remat; bfloat16 compute (with remat) trains like float32 within bfloat16's
    precision while parameters, EMA and Adam moments stay float32 and keep their layout."""
    init = single_device[2]
    mesh = sharding.make_mesh(2, 2, 2)
    losses, state, _, grad_norms = _three_steps(mesh, init)      # the program of the test above
    remat_losses, remat_state, _, remat_norms = _three_steps(mesh, init, **{"model.remat": True})
    np.testing.assert_allclose(remat_losses, losses, rtol=1e-6)
    np.testing.assert_allclose(remat_norms, grad_norms, rtol=1e-5)
    # Adam moves every parameter by ~lr = 1e-5..3e-5 per step, so a block whose gradient were lost
    # under remat would stand out against this tolerance.
    for a, b in zip(jax.tree.leaves(remat_state.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    bf16_losses, bf16_state, _, bf16_norms = _three_steps(mesh, init, **{"model.dtype": "bfloat16",
                                                                         "model.remat": True})
    assert np.isfinite(bf16_losses).all() and np.isfinite(bf16_norms).all()
    np.testing.assert_allclose(bf16_losses, losses, rtol=0.05)
    np.testing.assert_allclose(bf16_norms, grad_norms, rtol=0.05)
    assert bf16_losses != losses                                  # it did compute in bfloat16
    for tree in (bf16_state.params, bf16_state.ema_params, bf16_state.opt_state[0].mu, bf16_state.opt_state[0].nu):
        assert {x.dtype for x in jax.tree.leaves(tree)} == {np.dtype(np.float32)}
    assert [_spec(x) for x in jax.tree.leaves(bf16_state.params)] == [_spec(x) for x in jax.tree.leaves(state.params)]


@pytest.mark.parametrize("semantics, mesh_axis, shape", [("paper", "model", (2, 2, 2)),
                                                         ("reference", "data", (8, 1, 1))])
def test_sequence_sharded_scan_inside_the_training_step(single_device, semantics, mesh_axis, shape):
    """`config.model.scan.impl = 'sharded'` in `train`'s step: under paper semantics each image's
    tokens split over 'model', under reference semantics the batch-axis recurrence over 'data' (where
    the batch already lies). Same losses as the sequential scan (paper: the single-device run)."""
    init = single_device[2]
    mesh = sharding.make_mesh(*shape)
    scan = {"model.scan.impl": "sharded", "model.scan.mesh_axis": mesh_axis, "model.scan.inner": "two_pass",
            "model.scan.chunk": 8, "model.semantics": semantics}
    losses, _, _, norms = _three_steps(mesh, init, **scan)
    if semantics == "paper":
        ref_losses, ref_norms = single_device[0], single_device[3]
    else:
        ref_losses, _, _, ref_norms = _three_steps(mesh, init, **{"model.semantics": semantics})
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    np.testing.assert_allclose(norms, ref_norms, rtol=2e-4)
