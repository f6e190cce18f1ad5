"""Every scan strategy against a float64 NumPy loop: values, reverse, h0, h_last, broadcast a, odd
lengths, 65,536 steps, |a| → 1; gradients against jax.grad through the sequential oracle; the training
loss and gradients of a tiny network under every strategy but 'sharded'; the sharded scan on 4 and 8
fake devices; the Pallas TPU kernel compiled ahead of time when libtpu is installed. The strategies
are the registry's entries (`lsm_jax.scan.registry.STRATEGIES`): they parametrise these tests, which
also check what each entry claims (autodiff without the custom VJP, where 'auto' runs); the registry
itself (validation, the docs table, the axis legend) is tested in tests/test_scan_registry.py."""

import contextlib
import importlib.util
import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsm_jax.scan import SCAN_IMPLS, STRATEGIES, ComplexPair, linear_recurrence

CONCRETE = [name for name, entry in STRATEGIES.items() if entry.function is not None]   # all but 'auto'


def _ffi_or_skip(impl: str) -> None:
    from lsm_jax.scan import ffi
    if impl == 'ffi' and ffi._compiler() is None:     # with a compiler, a failed build fails the test
        pytest.skip("no C++ compiler for the 'ffi' kernel")


def _mesh(devices: int):
    return jax.make_mesh((devices,), ('seq',), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:devices])


def _options(impl: str, devices: int = 4) -> dict:
    return dict(sharded=dict(mesh=_mesh(devices), mesh_axis='seq', inner='two_pass', chunk=8),
                chunked=dict(chunk=16), two_pass=dict(chunk=16), pallas=dict(block_len=64)).get(impl, {})


def numpy_loop(a, x, axis, reverse, h0):
    """The float64 oracle: h_k = a_k h_{k∓1} + x_k, one step at a time."""
    a = np.moveaxis(np.broadcast_to(a, x.shape).astype(np.complex128), axis, 0)
    x = np.moveaxis(x.astype(np.complex128), axis, 0)
    h = np.zeros_like(x)
    c = np.zeros(x.shape[1:], np.complex128) if h0 is None else h0.astype(np.complex128)
    for k in (range(len(x) - 1, -1, -1) if reverse else range(len(x))):
        c = a[k] * c + x[k]
        h[k] = c
    return np.moveaxis(h, 0, axis), c


def _case(seed, shape, axis, a_shape, max_modulus, with_h0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    a = (rng.uniform(0.5, max_modulus, a_shape) * np.exp(1j * rng.uniform(0, 2 * np.pi, a_shape)))
    last_shape = shape[:axis] + shape[axis + 1:]
    h0 = (rng.normal(size=last_shape) + 1j * rng.normal(size=last_shape)).astype(np.complex64)
    return a.astype(np.complex64), x, h0 if with_h0 else None


def _rel(value, oracle):
    return float(np.max(np.abs(np.asarray(value) - oracle)) / np.max(np.abs(oracle)))


# (length, reverse, a broadcast, h0): lengths 1/2/3 and an odd 777; a per channel (N,), per step or full.
CASES = [(1, False, 'full', True), (2, True, 'channel', True), (3, False, 'step', False),
         (777, True, 'full', True), (777, False, 'channel', True)]


@pytest.mark.parametrize('impl', CONCRETE)
@pytest.mark.parametrize('length, reverse, broadcast, with_h0', CASES)
def test_values_against_float64_loop(impl, length, reverse, broadcast, with_h0):
    _ffi_or_skip(impl)
    shape = (2, length, 3)
    a_shape = dict(full=shape, channel=(3,), step=(1, length, 1))[broadcast]
    a, x, h0 = _case(length, shape, 1, a_shape, 0.99999, with_h0)
    run = jax.jit(lambda a, x, h0: linear_recurrence(a, x, axis=1, reverse=reverse, h0=h0, return_last=True,
                                                     impl=impl, **_options(impl)))
    h, last = run(a, x, h0)
    h_ref, last_ref = numpy_loop(a, x, 1, reverse, h0)
    assert h.shape == x.shape and last.shape == (2, 3)
    assert _rel(h, h_ref) <= 2e-5 and _rel(last, last_ref) <= 2e-5


LONG = 65536
# At 65,536 steps the default chunk (256) for 'chunked'/'two_pass'; 8 sequence blocks for 'pallas' in
# interpret mode (its default 256-step blocks take ~15 s there); 'sharded' over 8 fake devices.
LONG_OPTIONS = dict(pallas=dict(block_len=8192), sharded=dict(mesh_axis='seq', inner='two_pass'))


@pytest.fixture(scope='module')
def long_case():
    """(1, 65536, 4) complex64 with a per-element a, |a| up to 0.99999, an h0; the float64 loop both ways."""
    a, x, h0 = _case(LONG, (1, LONG, 4), 1, (1, LONG, 4), 0.99999, True)
    return a, x, h0, [numpy_loop(a, x, 1, reverse, h0) for reverse in (False, True)]


@pytest.mark.parametrize('impl', SCAN_IMPLS)
def test_length_65536_against_float64_loop(long_case, impl):
    """Every strategy ('auto' here: 'two_pass', 8 devices) at 65,536 steps, forward and reverse from h0."""
    _ffi_or_skip(impl)
    a, x, h0, oracle = long_case
    options = dict(LONG_OPTIONS.get(impl, {}))
    if impl == 'sharded':
        options['mesh'] = _mesh(8)
    run = jax.jit(lambda a, x, h0: [linear_recurrence(a, x, axis=1, reverse=reverse, h0=h0, return_last=True,
                                                      impl=impl, **options) for reverse in (False, True)])
    for (h, last), (h_ref, last_ref) in zip(run(a, x, h0), oracle):
        assert _rel(h, h_ref) <= 1e-6 and _rel(last, last_ref) <= 1e-6    # measured: ≤ 1.6e-7


def test_axis_zero_real_inputs_and_bfloat16_storage():
    rng = np.random.default_rng(3)
    a, x = rng.uniform(0.5, 0.99, (300, 4)).astype(np.float32), rng.normal(size=(300, 4)).astype(np.float32)
    h_ref, _ = numpy_loop(a, x, 0, False, None)
    for impl in ('sequential', 'two_pass', 'ffi'):
        _ffi_or_skip(impl)
        h = linear_recurrence(a, x, axis=0, impl=impl)
        assert h.dtype == jnp.float32 and _rel(h, h_ref.real) <= 1e-5
        h16 = linear_recurrence(a, jnp.asarray(x, jnp.bfloat16), axis=0, impl=impl)
        assert h16.dtype == jnp.bfloat16 and _rel(h16.astype(np.float32), h_ref.real) <= 1e-2



@pytest.mark.parametrize('impl', CONCRETE)
def test_complex_pairs_in_bfloat16(impl):
    _ffi_or_skip(impl)
    from jax import ad_checkpoint

    a, z, h0 = _case(11, (2, 777, 3), 1, (3,), 0.99999, True)
    x = ComplexPair.from_complex(z, jnp.bfloat16)
    run = jax.jit(lambda a, x, h0: linear_recurrence(a, x, h0=h0, reverse=True, return_last=True, impl=impl,
                                                     **_options(impl)))
    h, last = run(a, x, ComplexPair.from_complex(h0, jnp.float32))
    assert isinstance(h, ComplexPair) and h.dtype == jnp.bfloat16 and h.shape == z.shape
    assert isinstance(last, ComplexPair) and last.dtype == jnp.float32
    # The state is carried in float32: h is the exact recurrence on the bf16-rounded x, rounded once.
    h_ref, last_ref = numpy_loop(a, np.asarray(x.to_complex()), 1, True, h0)
    assert _rel(h.to_complex(), h_ref) <= 8e-3 and _rel(last.to_complex(), last_ref) <= 2e-5

    def loss(x):
        h = linear_recurrence(a, x, impl=impl, **_options(impl))
        return jnp.sum(h.re.astype(jnp.float32) * 0.3 - h.im.astype(jnp.float32))
    grad = jax.grad(loss)(x)
    ref = jax.grad(lambda z: jnp.sum(jnp.real(linear_recurrence(a, z, impl='sequential', custom_vjp=False))
                                     * 0.3 - jnp.imag(linear_recurrence(a, z, impl='sequential',
                                                                        custom_vjp=False))))(x.to_complex())
    assert isinstance(grad, ComplexPair) and grad.dtype == jnp.bfloat16
    assert _rel(grad.to_complex(), np.conj(np.asarray(ref))) <= 1e-2
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ad_checkpoint.print_saved_residuals(loss, x)
    saved = printed.getvalue()              # the backward keeps h as two bf16 planes, no complex64 copy
    assert 'c64[2,777,3]' not in saved and saved.count('bf16[2,777,3]') == 2, saved


def test_mismatched_pair_is_refused():
    x = ComplexPair(jnp.zeros((2, 5, 3), jnp.bfloat16), jnp.zeros((2, 5, 3), jnp.float32))
    with pytest.raises(ValueError, match='x is a ComplexPair with planes'):
        linear_recurrence(jnp.ones((3,)), x)

@pytest.mark.parametrize('impl', CONCRETE)
@pytest.mark.parametrize('length, reverse', [(5, False), (300, True)])
def test_gradients_against_sequential_autodiff(impl, length, reverse):
    _ffi_or_skip(impl)
    a, x, h0 = _case(length, (2, length, 3), 1, (2, length, 3), 0.9999, True)
    lam = a[0, 0]                                           # a per-channel λ: its gradient sums over B, L
    weights = np.random.default_rng(1).normal(size=(2, length, 3))

    def loss(a, lam, x, h0, impl, opts):
        h, last = linear_recurrence(a * lam, x, reverse=reverse, h0=h0, return_last=True, impl=impl, **opts)
        return jnp.sum(weights * (jnp.real(h) + 0.5 * jnp.imag(h))) + jnp.sum(jnp.abs(last) ** 2)

    grad = lambda impl, opts: jax.jit(jax.grad(lambda *v: loss(*v, impl, opts), argnums=(0, 1, 2, 3)))  # noqa
    oracle = grad('sequential', dict(custom_vjp=False))(a, lam, x, h0)
    value = grad(impl, _options(impl))(a, lam, x, h0)
    for g, g_ref in zip(value, oracle):
        assert _rel(g, np.asarray(g_ref)) <= 5e-5


@pytest.mark.parametrize('devices, inner', [(4, 'two_pass'), (8, 'two_pass'), (4, 'ffi')])
def test_sharded_on_fake_devices(devices, inner):
    _ffi_or_skip(inner)
    a, x, h0 = _case(devices, (2, 1000, 3), 1, (3,), 0.999, True)
    run = jax.jit(lambda a, x, h0: linear_recurrence(a, x, h0=h0, return_last=True, impl='sharded',
                                                     **dict(_options('sharded', devices), inner=inner)))
    h, last = run(a, x, h0)
    h_ref, last_ref = numpy_loop(a, x, 1, False, h0)
    assert _rel(h, h_ref) <= 2e-5 and _rel(last, last_ref) <= 2e-5
    assert 'all-gather' in run.lower(a, x, h0).compile().as_text()


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='impl must be one of'):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='nope')
    with pytest.raises(ValueError, match='chunk must be a positive int'):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='two_pass', chunk=0)
    with pytest.raises(ValueError, match='h0 has shape'):
        linear_recurrence(jnp.ones((2, 3)), jnp.ones((2, 3)), axis=1, h0=jnp.ones(3))
    with pytest.raises(ValueError, match='needs mesh_axis'):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='sharded')
    with pytest.raises(ValueError, match='threads must be an int >= 0'):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='ffi', threads=-1)
    with pytest.raises(ValueError, match="inner must be one of"):
        linear_recurrence(jnp.ones(3), jnp.ones(3), axis=0, impl='sharded', mesh_axis='seq', inner='sharded')


# What the registry's entries claim (the registry itself: tests/test_scan_registry.py).
@pytest.mark.parametrize('impl', CONCRETE)
def test_plain_autodiff_is_as_the_entry_says(impl):
    _ffi_or_skip(impl)
    a, x, _ = _case(5, (2, 16, 3), 1, (3,), 0.9, False)

    def grad(impl, **options):
        return jax.jit(jax.grad(lambda x: jnp.sum(jnp.abs(linear_recurrence(
            a, x, impl=impl, custom_vjp=False, **options)) ** 2)))
    if STRATEGIES[impl].plain_autodiff:
        assert _rel(grad(impl, **_options(impl))(x), np.asarray(grad('sequential')(x))) <= 1e-5
    else:          # a custom call: JAX has no rule for it ('ffi': ValueError; 'pallas': a failed assert)
        with pytest.raises((ValueError, AssertionError, NotImplementedError)):
            grad(impl, **_options(impl))(x)


def test_auto_picks_an_entry_that_runs_on_the_platform():
    from lsm_jax.scan import pick_impl
    for platform in ('cpu', 'gpu', 'tpu'):
        for length, width in [(1, 1), (511, 32), (512, 32), (4096, 128), (65536, 4096)]:
            picked = pick_impl(length, platform, width)
            assert STRATEGIES[picked].function and platform in STRATEGIES[picked].platforms, (platform, picked)
            assert STRATEGIES[picked].partitioning != 'replicated'     # 8 devices: no custom call
    assert pick_impl(100, 'tpu') == pick_impl(100, 'gpu') == 'associative'


@pytest.mark.skipif(importlib.util.find_spec('libtpu') is None, reason='libtpu not installed (extra "tpu")')
def test_pallas_kernel_compiles_for_a_tpu():
    """Lower and compile the kernel, forward and backward, for a TPU v5e on this CPU-only machine."""
    from jax.experimental import topologies
    os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')    # other processes may hold libtpu's lock
    device = topologies.get_topology_desc(topology_name='v5e:2x2', platform='tpu').devices[0]
    assert 'TPU' in device.device_kind
    sharding = jax.sharding.SingleDeviceSharding(device)
    spec = jax.ShapeDtypeStruct((2, 1024, 32), jnp.complex64, sharding=sharding)

    def loss(a, x):
        return jnp.sum(jnp.abs(linear_recurrence(a, x, impl='pallas', interpret=False, block_len=256)) ** 2)
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(spec, spec).compile()
    assert compiled.memory_analysis().argument_size_in_bytes == 2 * 2 * 1024 * 32 * 8
    assert 'tpu_custom_call' in compiled.as_text() or 'mosaic' in compiled.as_text().lower()


def test_auto_picks_the_ffi_kernel_on_one_cpu_device_and_falls_back_without_a_compiler(tmp_path):
    import subprocess
    import sys
    code = "from lsm_jax.scan import pick_impl; print(pick_impl(4096, width=128), pick_impl(4096, width=32))"
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}      # one CPU device
    one = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    from lsm_jax.scan import ffi
    assert one.stdout.split() == ['ffi' if ffi._compiler() else 'two_pass', 'sequential']   # one row: XLA's loop
    bare = dict(env, CXX='', PATH=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / 'cache'))   # no compiler
    none = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=bare)
    assert none.returncode == 0, none.stderr
    assert none.stdout.split() == ['two_pass', 'sequential']
    from lsm_jax.scan import pick_impl
    assert jax.device_count() == 8 and pick_impl(4096, width=128) == 'two_pass'   # several devices: XLA's


@pytest.mark.parametrize('length, reverse, broadcast, with_h0', CASES)
def test_gpu_kernel_values_in_interpret_mode(length, reverse, broadcast, with_h0):
    from lsm_jax.scan.common import to_canonical
    from lsm_jax.scan.pallas_gpu import scan_pallas_gpu
    shape = (2, length, 3)
    a_shape = dict(full=shape, channel=(3,), step=(1, length, 1))[broadcast]
    a, x, h0 = _case(length, shape, 1, a_shape, 0.99999, with_h0)
    a3, x3 = to_canonical(jnp.asarray(a), jnp.asarray(x), 1)
    h, last = jax.jit(lambda a3, x3, h0: scan_pallas_gpu(a3, x3, h0, reverse, block_len=64))(a3, x3, h0)
    h_ref, last_ref = numpy_loop(a, x, 1, reverse, h0)
    assert _rel(h, h_ref) <= 2e-5 and _rel(last, last_ref) <= 2e-5


# JAX deprecates Pallas' Triton backend (deprecation id 'jax-pallas-triton'): every Triton lowering
# warns. Only that warning is silenced, only here; once JAX makes it an error or drops the backend, this
# test fails (docs/scan.md says what then breaks).
@pytest.mark.filterwarnings('ignore:The Pallas Triton backend is deprecated:DeprecationWarning')
def test_gpu_kernel_lowers_to_triton_for_an_h100():
    """No GPU here: lowering for an abstract H100 runs Pallas' Triton lowering of both kernels."""
    from jax._src.mesh import AbstractDevice
    from lsm_jax.scan.pallas_gpu import scan_pallas_gpu
    h100 = jax.sharding.AbstractMesh((1,), ('x',), abstract_device=AbstractDevice(
        device_kind='NVIDIA H100', num_cores=None, platform='gpu'))
    spec = jax.ShapeDtypeStruct((4, 4096, 32), jnp.complex64)
    with jax.sharding.use_abstract_mesh(h100):
        lowered = jax.jit(lambda a, x: scan_pallas_gpu(a, x, None, True, interpret=False)).trace(
            spec, spec).lower(lowering_platforms=('cuda',))
    assert lowered.as_text().count('__gpu$xla.gpu.triton') == 2      # pass 1 and pass 2


# The training loss and gradients of a tiny network under every strategy in SCAN_IMPLS but 'sharded'
# (it alone would add 8 s of compilation; tests/test_sharding.py runs training steps with it). The model
# (one WMS + one CML block, paper semantics; tests/test_network.py's ONE_GROUP) in train mode (Gumbel
# categories, drop path) on 2 images of 8×12: each CML scan runs 96 steps, i.e. 12 chunks of 8 or 3
# Pallas blocks of 32 ('auto' resolves to 'sequential' here: 8 devices, < 512 steps).
TRAIN_SCANS = dict(sequential={}, associative={}, chunked=dict(chunk=8), two_pass=dict(chunk=8),
                   pallas=dict(block_len=32), ffi={}, auto={})


def test_training_loss_and_gradients_under_every_strategy_but_sharded():
    """All strategies in one jitted program against 'sequential' (the parts they share compile once;
    XLA's backend optimisation is turned down for this test only: it halves the compilation, and the
    arithmetic, without fast-math, is the same). At initialisation the scan barely moves the loss and
    the gradients: with one strategy's decay 0.1 % off, every leaf still passes rtol 2e-4, atol 1e-6.
    So the CML block's gradients (the ones that flow through the scan's backward) are also compared
    leaf by leaf relative to their own size: that error moves them by up to 2e-4, rounding by ≤ 2e-7."""
    from flax import nnx
    from lsm_jax.model.network import LSM
    from lsm_jax.model.variants import network_config
    from lsm_jax.scan import ffi

    assert set(TRAIN_SCANS) | {'sharded'} == set(SCAN_IMPLS)
    scans = {k: v for k, v in TRAIN_SCANS.items() if k != 'ffi' or ffi._compiler() is not None}

    def config(impl):
        cfg = network_config('tiny', 2)
        cfg.update(dict(embed_dim=32, depth=[2], num_heads=[2], semantics='paper'))
        cfg.scan.update(impl=impl, **scans[impl])
        return cfg

    graphdef, params = nnx.split(LSM(config('sequential'), rngs=nnx.Rngs(3)))
    graphdefs = {impl: nnx.graphdef(nnx.eval_shape(lambda: LSM(config(impl), rngs=nnx.Rngs(3)))) for impl in scans}
    x = jax.random.uniform(jax.random.key(0), (2, 8, 12, 3))
    y = jax.random.uniform(jax.random.key(1), (2, 16, 24, 3))

    def every_strategy(params):
        def loss(params, g):
            return jnp.mean(jnp.abs(nnx.merge(g, params)(x, train=True, key=jax.random.key(5)) - y))
        return {impl: jax.value_and_grad(loss)(params, g) for impl, g in graphdefs.items()}

    with jax.default_matmul_precision('highest'):
        traced = jax.jit(every_strategy).trace(params)
        out = traced.lower().compile({'xla_backend_optimization_level': 0,
                                      'xla_llvm_disable_expensive_passes': True})(params)
    program = str(traced.jaxpr)                 # the strategies really ran: their primitives are there
    assert program.count('pallas_call') >= 2
    assert 'ffi' not in scans or 'ffi_call' in program
    loss, grads = out['sequential']
    cml = nnx.state(nnx.merge(graphdef, grads)).layers[0].blocks[1]   # the CML block's gradients
    assert float(loss) > 0.05 and all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(cml))
    for impl, (loss_i, grads_i) in out.items():
        assert abs(float(loss_i) - float(loss)) <= 1e-6, impl
        for g, g_i in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_i)):
            np.testing.assert_allclose(np.asarray(g_i), np.asarray(g), rtol=2e-4, atol=1e-6, err_msg=impl)
        cml_i = nnx.state(nnx.merge(graphdef, grads_i)).layers[0].blocks[1]
        for (path, g), g_i in zip(jax.tree_util.tree_leaves_with_path(cml), jax.tree.leaves(cml_i)):
            assert _rel(g_i, np.asarray(g)) <= 1e-5, (impl, jax.tree_util.keystr(path), _rel(g_i, np.asarray(g)))
