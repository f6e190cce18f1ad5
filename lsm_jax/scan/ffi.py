"""The 'ffi' strategy: a C++ loop on the CPU, called as an XLA FFI custom call (`ffi_kernel.cc`).

One pass over memory: a and x read once, h written once (24 bytes per complex64 element, the floor
`experiments/bench_scan.py` measures against), the state of a block of 64 lanes kept in registers,
(p, lane block) work units spread over `threads` threads (0: one per CPU core). The XLA strategies
cannot do this on a CPU: their loop bodies are small fused programs that XLA:CPU runs one at a time.

XLA has no partitioning rule for the custom call: under a multi-device `jit` it would gather its
operands and run replicated, so 'auto' picks it only where the backend has one device; inside
`shard_map` (the 'sharded' strategy's `inner`) it runs per shard as it should.

The source is compiled on first use with the system's C++ compiler (`$CXX`, else g++ or c++) against
JAX's FFI headers (`jax.ffi.include_dir()`), into `<$XDG_CACHE_HOME or ~/.cache>/lsm-jax/kernels`
(one file per source, JAX version and compiler; written atomically), and loaded with ctypes. Without
a compiler the strategy says so in one line, and 'auto' uses 'two_pass' instead. CPU only; complex64
and float32 (a bf16 x is widened to float32 first).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lsm_jax.scan.common import result_dtype

SOURCE = Path(__file__).with_name("ffi_kernel.cc")
_TARGETS = {np.dtype(np.complex64): "lsm_linear_recurrence_c64", np.dtype(np.float32): "lsm_linear_recurrence_f32"}


class KernelUnavailable(RuntimeError):
    """The C++ kernel cannot be built here (no compiler, or the build failed); the message says why."""


def kernel_dir() -> Path:
    """<$XDG_CACHE_HOME or ~/.cache>/lsm-jax/kernels."""
    from lsm_jax.compile_cache import user_cache_dir
    return user_cache_dir() / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build() -> Path:
    cxx = _compiler()
    if cxx is None:
        raise KernelUnavailable("scan impl 'ffi': no C++ compiler found (set CXX, or install g++)")
    flags = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", f"-I{jax.ffi.include_dir()}"]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([cxx, jax.__version__, *flags]).encode()).hexdigest()[:16]
    target = kernel_dir() / f"ffi_kernel-{key}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise KernelUnavailable(f"scan impl 'ffi': compiling {SOURCE.name} failed: {lines[-1] if lines else ''}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


@functools.cache
def _register() -> None:
    library = ctypes.cdll.LoadLibrary(str(_build()))
    for symbol, name in (("LsmRecurrenceC64", _TARGETS[np.dtype(np.complex64)]),
                         ("LsmRecurrenceF32", _TARGETS[np.dtype(np.float32)])):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")


@functools.cache
def available() -> bool:
    """Whether the kernel builds and loads on this machine (tried at most once per process)."""
    try:
        _register()
        return True
    except (KernelUnavailable, OSError):
        return False


def scan_ffi(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, threads: int = 0):
    """Canonical form (see `lsm_jax.scan.common`) -> (h, h_last); h stored in x's dtype."""
    if jax.default_backend() != "cpu":
        raise ValueError(f"scan impl 'ffi' runs on the CPU only (the backend is {jax.default_backend()})")
    compute = np.dtype(result_dtype(a3, x3))
    if compute not in _TARGETS:
        raise ValueError(f"scan impl 'ffi': complex64 or float32 only, got {compute}")
    _register()
    p, _, q = x3.shape
    store = x3.dtype if jnp.issubdtype(x3.dtype, jnp.floating) else compute
    start = jnp.zeros((p, q), compute) if h0 is None else h0.astype(compute)
    call = jax.ffi.ffi_call(_TARGETS[compute], (jax.ShapeDtypeStruct(x3.shape, compute),
                                                jax.ShapeDtypeStruct((p, q), compute)),
                            vmap_method="sequential")
    h, h_last = call(a3.astype(compute), x3.astype(compute), start, reverse=bool(reverse),
                     threads=np.int64(threads or os.cpu_count() or 1))
    return h.astype(store), h_last
