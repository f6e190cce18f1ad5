"""The 'ffi' kernel must not take the process down: threads from the CPU affinity at call time, a
thread that cannot start or a failure inside the kernel, the compile timeout, the build lock, the
cache key, and one-line errors (with 'auto' falling back to XLA) for an unwritable cache folder, a
damaged cached library and a compile that hangs. The values of the kernel are in tests/test_scan.py."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsm_jax.scan import ffi

ROOT = Path(__file__).resolve().parents[1]
needs_compiler = pytest.mark.skipif(ffi._compiler() is None, reason="no C++ compiler for the 'ffi' kernel")


def _env(**extra) -> dict:
    """A child process's environment: one CPU device (no fake-device flag), the repository importable."""
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _script(path: Path, body: str) -> str:
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return str(path)


def _inputs(p=4, length=4096, q=32, seed=0):
    rng = np.random.default_rng(seed)
    a = (rng.uniform(0.5, 0.99, (p, length, q)) * np.exp(1j * rng.uniform(0, 6.3, (p, length, q))))
    x = rng.normal(size=(p, length, q)) + 1j * rng.normal(size=(p, length, q))
    return jnp.asarray(a.astype(np.complex64)), jnp.asarray(x.astype(np.complex64))


def _reference(a, x):
    from lsm_jax.scan.sequential import scan_sequential
    return np.asarray(scan_sequential(a, x, None, False)[0])


# --- threads ---------------------------------------------------------------------------------------

@needs_compiler
@pytest.mark.skipif(not hasattr(os, 'sched_setaffinity'), reason='no CPU affinity on this system')
def test_thread_count_is_the_cpu_affinity_at_call_time():
    cpus = os.sched_getaffinity(0)
    assert ffi.resolved_threads() == len(cpus)
    try:
        os.sched_setaffinity(0, {min(cpus)})               # as `taskset -c 0` or a one-CPU cpuset
        assert ffi.resolved_threads() == 1
        assert ffi.resolved_threads(3) == 3                 # an explicit count wins
    finally:
        os.sched_setaffinity(0, cpus)
    assert ffi.resolved_threads() == len(cpus)


@needs_compiler
def test_threads_default_reaches_the_kernel_as_zero_not_a_trace_time_core_count():
    spec = jax.ShapeDtypeStruct((2, 100, 3), jnp.complex64)
    text = jax.jit(lambda a, x: ffi.scan_ffi(a, x, None, False)).lower(spec, spec).as_text()
    assert 'threads = 0 : i64' in text
    text = jax.jit(lambda a, x: ffi.scan_ffi(a, x, None, False, threads=3)).lower(spec, spec).as_text()
    assert 'threads = 3 : i64' in text


@needs_compiler
@pytest.mark.parametrize('reverse', [False, True])
def test_threads_that_cannot_start_leave_their_work_to_the_calling_thread(reverse):
    a, x = _inputs()                  # 4 work units and above the kernel's one-thread size: a pool of 4
    want = _reference(a[:, ::-1], x[:, ::-1])[:, ::-1] if reverse else _reference(a, x)
    h, last = ffi.scan_ffi(a, x, None, reverse, threads=4, test_fault='spawn')
    assert np.allclose(np.asarray(h), want, rtol=1e-5, atol=1e-5)
    assert np.allclose(np.asarray(last), want[:, 0 if reverse else -1], rtol=1e-5, atol=1e-5)


@needs_compiler
def test_a_failure_inside_the_kernel_is_a_python_exception_and_the_process_goes_on():
    code = """if True:
        import numpy as np, jax.numpy as jnp
        from lsm_jax.scan import ffi
        a = jnp.full((4, 4096, 32), 0.5, jnp.complex64); x = jnp.ones((4, 4096, 32), jnp.complex64)
        try:
            ffi.scan_ffi(a, x, None, False, threads=4, test_fault='error')[0].block_until_ready()
            print('no error')
        except Exception as exc:
            print(type(exc).__name__, '|', str(exc).strip())
        h, _ = ffi.scan_ffi(a, x, None, False, threads=4)
        print('after', float(np.abs(np.asarray(h)[:, -1] - 2).max()) < 1e-5)
    """
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.strip().splitlines()
    assert out[0].endswith('INTERNAL: lsm_linear_recurrence: simulated failure (test_fault=2)'), out
    assert out[1] == 'after True'


# --- building: cache key, damaged cache, lock -------------------------------------------------------

@needs_compiler
def test_cache_key_covers_source_compiler_version_jax_and_jaxlib(monkeypatch):
    cxx = ffi._compiler()
    key = ffi.cache_key(cxx)
    assert key == ffi.cache_key(cxx) and len(key) == 16
    assert ffi.compiler_version(cxx) == subprocess.run([cxx, '--version'], capture_output=True,
                                                       text=True).stdout.splitlines()[0].strip()
    with monkeypatch.context() as m:
        m.setattr(ffi, 'compiler_version', lambda cxx: 'g++ (Other) 99.1')
        assert ffi.cache_key(cxx) != key
    with monkeypatch.context() as m:
        m.setattr(ffi.jaxlib, '__version__', '0.0.0-other')
        assert ffi.cache_key(cxx) != key
    with monkeypatch.context() as m:
        m.setattr(ffi.jax, '__version__', '0.0.0-other')
        assert ffi.cache_key(cxx) != key
    with monkeypatch.context() as m:
        m.setattr(ffi, 'SOURCE', Path(__file__))
        assert ffi.cache_key(cxx) != key
    assert ffi.cache_key(cxx) == key


@needs_compiler
@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_a_damaged_cached_kernel_is_rebuilt_before_it_is_loaded(tmp_path, monkeypatch, damage):
    good = ffi._build()                                       # the session's kernel cache
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    target = ffi.kernel_dir() / good.name
    target.parent.mkdir(parents=True)
    shutil.copy(ffi._digest_path(good), ffi._digest_path(target))   # as a finished build left it
    data = good.read_bytes()
    target.write_bytes(data[:len(data) // 3] if damage == 'truncated' else b'not a shared library\n' * 50)
    assert ffi._build() == target
    assert target.read_bytes() != b'' and ffi._intact(target)
    import ctypes
    assert hasattr(ctypes.CDLL(str(target)), 'LsmRecurrenceC64')
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [target.name, target.name + '.sha256', 'ffi_kernel.lock'])                # no temporary left


@needs_compiler
def test_two_processes_building_at_once_compile_once(tmp_path):
    count = tmp_path / 'compiles'
    real = ffi._compiler()
    cxx = _script(tmp_path / 'counting-c++',
                  f'if [ "$1" != "--version" ]; then echo x >> "{count}"; sleep 4; fi\nexec "{real}" "$@"\n')
    env = _env(CXX=cxx, XDG_CACHE_HOME=tmp_path / 'cache')
    code = 'from lsm_jax.scan import ffi; print(ffi._build())'
    procs = [subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1000:] for o in outs]
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1 and ffi._intact(Path(paths.pop()))
    assert count.read_text().split() == ['x']                # the second waited on the lock, then used it


# --- one-line errors, and 'auto' falling back ---------------------------------------------------------

_CHILD = """if True:
    import json, sys
    import numpy as np
    from lsm_jax.scan import ffi, linear_recurrence, pick_impl
    if sys.argv[1] == 'damaged':
        target = ffi.kernel_dir() / f"ffi_kernel-{ffi.cache_key(ffi._compiler())}.so"
        target.parent.mkdir(parents=True)
        target.write_bytes(b'\\x7fELF' + b'\\0' * 40)
    a = np.full((2, 600, 40), 0.5, np.float32)
    x = np.ones((2, 600, 40), np.float32)
    out = {}
    try:
        linear_recurrence(a, x, impl='ffi')
    except ffi.KernelUnavailable as exc:
        out['error'] = str(exc)
    out['auto'] = pick_impl(4096, width=128)
    out['auto_value'] = float(np.asarray(linear_recurrence(a, x, impl='auto'))[0, -1, 0])
    print(json.dumps(out))
"""


@needs_compiler
@pytest.mark.parametrize('case', ['unwritable', 'damaged', 'timeout'])
def test_explicit_ffi_fails_in_one_line_and_auto_falls_back(tmp_path, case):
    """unwritable: the cache folder's parent is a file; damaged: a broken library at the cache path
    and a compiler that fails to rebuild it; timeout: a compiler that hangs."""
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    failing = _script(tmp_path / 'failing-c++', 'if [ "$1" = "--version" ]; then echo "fake c++ 1.0"; exit 0; fi\n'
                                                'echo "fatal error: simulated" >&2; exit 1\n')
    hanging = _script(tmp_path / 'hanging-c++', 'if [ "$1" = "--version" ]; then echo "fake c++ 1.0"; exit 0; fi\n'
                                                'sleep 60\n')
    env = dict(unwritable=_env(XDG_CACHE_HOME=blocker),
               damaged=_env(CXX=failing, XDG_CACHE_HOME=tmp_path / 'cache'),
               timeout=_env(CXX=hanging, XDG_CACHE_HOME=tmp_path / 'cache', LSM_JAX_FFI_COMPILE_TIMEOUT=2))[case]
    start = time.monotonic()
    done = subprocess.run([sys.executable, '-c', _CHILD, case], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    error = out.get('error', '')
    kernels = (blocker if case == 'unwritable' else tmp_path / 'cache') / 'lsm-jax' / 'kernels'
    assert error.startswith("scan impl 'ffi': ") and '\n' not in error, error
    expected = dict(unwritable=f"cannot write the kernel cache {kernels}: Not a directory",
                    damaged=f"the cached kernel {kernels}/ffi_kernel-",
                    timeout="compiling ffi_kernel.cc with")[case]
    assert expected in error, error
    if case == 'damaged':
        assert 'is damaged and rebuilding it failed: compiling ffi_kernel.cc failed: fatal error: simulated' in error
    if case == 'timeout':
        assert 'timed out after 2 s' in error and time.monotonic() - start < 100
        assert not [p for p in kernels.iterdir() if p.suffix == '.tmp']          # no half-written file
    assert out['auto'] == 'two_pass'
    assert out['auto_value'] == pytest.approx(2.0, rel=1e-5)                 # 1 / (1 - 0.5) in the limit


# --- experiments/bench_scan.py's memory rows ------------------------------------------------------------

@needs_compiler
def test_bench_scan_memory_rows_differentiate_ffi_only_through_the_custom_vjp():
    from experiments import bench_scan as bench
    rows = {r['strategy']: r for r in bench.memory_rows(2, 128)}
    assert rows['ffi']['temp_E'] is not None and 'note' not in rows['ffi']
    assert 'temp_E' not in rows['ffi_autodiff'] and 'no autodiff rule' in rows['ffi_autodiff']['note']
    assert rows['two_pass_256_autodiff']['temp_E'] is not None
    for row in rows.values():
        assert all(row.get(k) not in (None, '') for k in ('machine', 'date', 'jax', 'jaxlib', 'numpy', 'cores'))
    assert set(bench.FIELDS) >= {'machine', 'date', 'jax', 'jaxlib', 'note'}
