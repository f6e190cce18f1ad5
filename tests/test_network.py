"""Parity with the authors' code through the converter path (golden fixture, spec §13), and semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fixture_checkpoint import fixture_arrays, tiny_checkpoint
from lsm_jax.model.network import capture
from lsm_jax.model.saved import load_model

NCHW_TO_NHWC = (0, 2, 3, 1)


@pytest.fixture(scope='module')
def arrays():
    return fixture_arrays()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def reference_run(arrays, checkpoint):
    model, cfg = load_model(checkpoint)
    assert cfg.semantics == 'reference'
    with jax.default_matmul_precision('highest'):
        y, acts = capture(model, jnp.asarray(arrays['io/input'].transpose(NCHW_TO_NHWC)))
    return np.asarray(y), acts


def _max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_output_matches_reference(arrays, reference_run):
    y, _ = reference_run
    assert _max_abs(y, arrays['io/output'].transpose(NCHW_TO_NHWC)) <= 1e-4


@pytest.mark.parametrize('name', ['act/conv_first', 'act/before_rg', 'act/rg0_blk0_attn', 'act/rg0_blk0'])
def test_activations_before_first_cml_block(arrays, reference_run, name):
    ref = arrays[name]
    ref = ref.transpose(NCHW_TO_NHWC) if ref.ndim == 4 else ref
    assert _max_abs(reference_run[1][name], ref) <= 1e-5


@pytest.mark.parametrize('name', ['act/rg0_blk1', 'act/rg0_blk2', 'act/rg0_blk2_attn', 'act/rg0_blk3', 'act/rg0',
                                  'act/rg1', 'act/final_norm', 'act/body_plus_skip'])
def test_later_activations(arrays, reference_run, name):
    ref = arrays[name]
    ref = ref.transpose(NCHW_TO_NHWC) if ref.ndim == 4 else ref
    assert _max_abs(reference_run[1][name], ref) <= 1e-4


def test_categories_and_sort_order_identical(arrays, reference_run):
    cml = reference_run[1]['cml_blocks'][0]
    np.testing.assert_array_equal(np.asarray(cml['category']), arrays['cml/category'])
    np.testing.assert_array_equal(np.asarray(cml['sort_idx']), arrays['cml/sort_idx'])


@pytest.mark.parametrize('name', ['smu_input', 'Mk', 'lru_input_sorted', 'lru_output_sorted',
                                  'lru_unsorted_before_out_proj', 'output'])
def test_cml_intermediates(arrays, reference_run, name):
    assert _max_abs(reference_run[1]['cml_blocks'][0][name], arrays[f'cml/{name}']) <= 1e-5


@pytest.mark.parametrize('ours, theirs', [('lru_Bu', 'lru_Bu'), ('lru_lambda_eff', 'lru_lambda_eff'),
                                          ('lru_states', 'lru_states')])
def test_lru_internals_first_sorted_positions(arrays, reference_run, ours, theirs):
    cml = reference_run[1]['cml_blocks'][0]
    k = arrays[f'cml/{theirs}_re_first'].shape[1]
    value = np.asarray(cml[ours])[:, :k]
    assert _max_abs(value.real, arrays[f'cml/{theirs}_re_first']) <= 1e-5
    assert _max_abs(value.imag, arrays[f'cml/{theirs}_im_first']) <= 1e-5


def test_capture_jitted_equals_eager_and_leaves_no_state(arrays, checkpoint, reference_run):
    """The studies' jitted capture (eigen.capture_cml) records what the eager one does; sown values
    never stay on the model, and the output is the plain forward's, bit for bit."""
    from flax import nnx
    from lsm_jax.studies.eigen import capture_cml
    model, _ = load_model(checkpoint)
    image = arrays['io/input'][0].transpose(1, 2, 0)
    with jax.default_matmul_precision('highest'):
        blocks = capture_cml(model, image)
        plain = np.asarray(model(jnp.asarray(image)[None]))
    eager = reference_run[1]['cml_blocks']
    assert len(blocks) == len(eager) == 4
    for jitted, ref in zip(blocks, eager):
        assert set(jitted) == {'category', 'sort_idx', 'lru_lambda_eff', 'lru_states'}
        np.testing.assert_array_equal(jitted['category'], np.asarray(ref['category']))
        np.testing.assert_array_equal(jitted['sort_idx'], np.asarray(ref['sort_idx']))
        assert jitted['lru_states'].shape == jitted['lru_lambda_eff'].shape == (1, 19 * 27, 4)
        assert np.max(np.abs(jitted['lru_states'] - np.asarray(ref['lru_states']))) <= 1e-5
    assert not jax.tree.leaves(nnx.state(model, nnx.Intermediate))
    np.testing.assert_array_equal(plain, reference_run[0])


def test_sowing_computes_nothing_outside_capture(checkpoint):
    """Reference semantics at batch 1 have no recurrence and stay in real arithmetic: λ, Mk_A and the
    complex states that a capture records are not even traced without one."""
    model, _ = load_model(checkpoint)
    x = jnp.zeros((1, 8, 8, 3))
    assert 'complex' not in str(jax.make_jaxpr(lambda x: model(x))(x))
    assert 'complex' in str(jax.make_jaxpr(lambda x: capture(model, x))(x))


# Every scan strategy through the whole network; 'sharded' splits the scanned axis over 4 devices.
SCANS = [dict(impl='sequential'), dict(impl='associative'), dict(impl='chunked', chunk=8),
         dict(impl='two_pass', chunk=8), dict(impl='pallas', block_len=32), dict(impl='ffi'),
         dict(impl='sharded', mesh_axis='seq', inner='two_pass', chunk=8)]


def _seq_mesh():
    return jax.set_mesh(jax.make_mesh((4,), ('seq',), axis_types=(jax.sharding.AxisType.Auto,),
                                      devices=jax.devices()[:4]))


@pytest.mark.parametrize('scan', [SCANS[0], SCANS[3], SCANS[4]], ids=lambda s: s['impl'])
def test_reference_batch_of_two_matches_reference(arrays, checkpoint, scan):
    model, _ = load_model(checkpoint, scan=scan)
    with jax.default_matmul_precision('highest'), _seq_mesh():
        y = model(jnp.asarray(arrays['io/input_batch2'].transpose(NCHW_TO_NHWC)))
    assert _max_abs(y, arrays['io/output_batch2'].transpose(NCHW_TO_NHWC)) <= 1e-4


@pytest.mark.parametrize('scan', SCANS[:6], ids=lambda s: s['impl'])
def test_token_axis_scan_matches_alternative_output(arrays, checkpoint, scan):
    """The reference's own token-axis output under each single-device strategy ('sharded' against
    'sequential', forward and backward: test_training_loss_and_gradients_under_every_scan)."""
    model, _ = load_model(checkpoint, scan_axis='tokens', scan=scan)
    with jax.default_matmul_precision('highest'), _seq_mesh():
        y = model(jnp.asarray(arrays['io/input'].transpose(NCHW_TO_NHWC)))
    assert _max_abs(y, arrays['alt/output_scan_over_tokens'].transpose(NCHW_TO_NHWC)) <= 1e-4


def test_bad_scan_settings_fail_at_construction(checkpoint):
    """Under reference semantics at batch 1 the scan never runs; the config is checked anyway."""
    with pytest.raises(ValueError, match=r'model\.scan: impl must be one of'):
        load_model(checkpoint, scan=dict(impl='bogus'))
    with pytest.raises(ValueError, match=r'model\.scan: chunk must be a positive int'):
        load_model(checkpoint, scan=dict(impl='two_pass', chunk=0))


def test_old_flat_scan_impl_still_loads():
    from lsm_jax.model.saved import config_from_json, config_to_json
    from lsm_jax.model.variants import network_config
    data = network_config('tiny', 2).to_dict()
    del data['scan']
    data['scan_impl'] = 'chunked'
    import json
    cfg = config_from_json(json.dumps(data))
    assert cfg.scan.impl == 'chunked' and cfg.scan.chunk == 256
    assert config_from_json(config_to_json(cfg)).scan.to_dict() == cfg.scan.to_dict()


@pytest.mark.parametrize('semantics', ['paper', 'reference'])
def test_batch_coupling_only_under_reference(arrays, checkpoint, semantics):
    """Paper: an image's output ignores its batch-mates. Reference: image 1 depends on image 0 (Q1, Q6)."""
    model, _ = load_model(checkpoint, semantics=semantics)
    batch = jnp.asarray(arrays['io/input_batch2'].transpose(NCHW_TO_NHWC))
    with jax.default_matmul_precision('highest'):
        together = np.asarray(model(batch))
        alone = np.concatenate([np.asarray(model(batch[i:i + 1])) for i in range(2)])
    assert _max_abs(together[0], alone[0]) <= 1e-5
    if semantics == 'paper':
        assert _max_abs(together[1], alone[1]) <= 1e-5
    else:
        assert _max_abs(together[1], alone[1]) > 1e-3


def test_any_input_size_and_deterministic(checkpoint):
    model, _ = load_model(checkpoint, semantics='paper')
    for h, w in [(1, 1), (7, 5)]:
        x = jax.random.uniform(jax.random.key(h * w), (1, h, w, 3))
        y1, y2 = np.asarray(model(x)), np.asarray(model(x))
        assert y1.shape == (1, 2 * h, 2 * w, 3)
        assert np.isfinite(y1).all()
        np.testing.assert_array_equal(y1, y2)


def test_training_mode_needs_key_and_is_stochastic(checkpoint):
    model, _ = load_model(checkpoint)
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    with pytest.raises(ValueError, match='PRNG key'):
        model(x, train=True)
    a = np.asarray(model(x, train=True, key=jax.random.key(1)))
    b = np.asarray(model(x, train=True, key=jax.random.key(2)))
    assert not np.allclose(a, b)


def _small_config(**overrides):
    from lsm_jax.model.variants import network_config
    cfg = network_config('tiny', 2)
    cfg.update({**dict(embed_dim=32, depth=[2, 2], num_heads=[2, 2], semantics='paper'), **overrides})
    return cfg


ONE_GROUP = dict(depth=[2], num_heads=[2])   # one WMS + one CML block: what a scan's gradient needs


def _loss_and_grads(cfg, x, y):
    from flax import nnx
    from lsm_jax.model.network import LSM
    graphdef, params = nnx.split(LSM(cfg, rngs=nnx.Rngs(3)))

    def loss(p):
        return jnp.mean(jnp.abs(nnx.merge(graphdef, p)(x, train=True, key=jax.random.key(5)) - y))
    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.fixture(scope='module')
def sequential_training_grads():
    x = jax.random.uniform(jax.random.key(0), (2, 8, 12, 3))
    y = jax.random.uniform(jax.random.key(1), (2, 16, 24, 3))
    cfg = _small_config(**ONE_GROUP)
    cfg.scan.impl = 'sequential'
    with jax.default_matmul_precision('highest'):
        return x, y, *_loss_and_grads(cfg, x, y)


@pytest.mark.parametrize('scan', [SCANS[6]], ids=lambda s: s['impl'])
def test_training_loss_and_gradients_under_every_scan(sequential_training_grads, scan):
    """The training forward (paper semantics, Gumbel categories, drop path) and its gradients with
    the token axis sharded over 4 devices. Every other strategy: test_scan's training test, which
    also compares the CML block's gradients leaf by leaf (this check alone barely sees the scan)."""
    x, y, loss, grads = sequential_training_grads
    cfg = _small_config(**ONE_GROUP)
    cfg.scan.update(scan)
    with jax.default_matmul_precision('highest'), _seq_mesh():
        loss_s, grads_s = _loss_and_grads(cfg, x, y)
    assert abs(float(loss) - float(loss_s)) <= 1e-6
    for g, g_s in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_s)):
        np.testing.assert_allclose(np.asarray(g_s), np.asarray(g), rtol=2e-4, atol=1e-6)


def test_rematerialisation_keeps_loss_and_gradients(sequential_training_grads):
    x, y, loss, grads = sequential_training_grads
    cfg = _small_config(remat=True, **ONE_GROUP)
    cfg.scan.impl = 'sequential'
    with jax.default_matmul_precision('highest'):
        loss_remat, grads_remat = _loss_and_grads(cfg, x, y)
    assert abs(float(loss) - float(loss_remat)) <= 1e-6
    for g, g_remat in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_remat)):
        np.testing.assert_allclose(np.asarray(g_remat), np.asarray(g), rtol=1e-4, atol=1e-6)


def test_bfloat16_compute_keeps_float32_parameters():
    from flax import nnx
    from lsm_jax.model.network import LSM
    x = jax.random.uniform(jax.random.key(0), (1, 8, 12, 3))
    m32 = LSM(_small_config(), rngs=nnx.Rngs(3))
    m16 = LSM(_small_config(dtype='bfloat16'), rngs=nnx.Rngs(3))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(m16, nnx.Param)))
    forward = nnx.jit(lambda model, image: model(image))   # one compile each: eager dispatch is slower
    y32, y16 = np.asarray(forward(m32, x)), np.asarray(forward(m16, x))
    assert y16.dtype == np.float32 and np.isfinite(y16).all()
    assert 0 < np.abs(y16 - y32).max() < 0.1


def test_shift_mask_is_swins_region_mask_and_no_constant_in_the_program():
    from flax import nnx
    from lsm_jax.model.window_attention import WindowBranch, shift_mask
    hp, wp, hs, ws = 16, 24, 8, 4
    labels = np.zeros((hp, wp), np.int32)  # Swin's nine regions of the rolled map, spelled out
    for i, rows in enumerate((slice(0, hp - hs), slice(hp - hs, hp - hs // 2), slice(hp - hs // 2, hp))):
        for j, cols in enumerate((slice(0, wp - ws), slice(wp - ws, wp - ws // 2), slice(wp - ws // 2, wp))):
            labels[rows, cols] = 3 * i + j
    win = labels.reshape(hp // hs, hs, wp // ws, ws).transpose(0, 2, 1, 3).reshape(-1, hs * ws)
    expected = np.where(win[:, :, None] != win[:, None, :], -100.0, 0.0)
    np.testing.assert_array_equal(np.asarray(shift_mask(hp, wp, hs, ws, hs // 2, ws // 2)), expected)
    # A 128² map's mask would be a 4 MB literal (256 windows of 64×64); the program builds it instead.
    branch = WindowBranch(8, 2, (8, 8), rngs=nnx.Rngs(0))
    q = jax.ShapeDtypeStruct((1, 128, 128, 8), jnp.float32)
    text = jax.jit(lambda a: branch(a, a, a, True)).lower(q).as_text()
    assert len(text) < 1_000_000, len(text)
