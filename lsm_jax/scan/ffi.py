"""The 'ffi' strategy: a C++ loop on the CPU, called as an XLA FFI custom call (`ffi_kernel.cc`).

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q).

One pass over memory: a and x read once, h written once (24 bytes per complex64 element, the floor
`experiments/bench_scan.py` measures against), the state of a block of 64 lanes kept in registers,
(p, lane block) work units spread over `threads` threads. `threads=0` (the default) means the CPUs
this process may run on, read by the kernel at every call (`sched_getaffinity`: `taskset`, cgroup
cpusets and `os.sched_setaffinity` count), not the machine's core count at trace time; an explicit
`threads=N` wins. A thread the system refuses to start leaves its share to the calling thread; any
other failure inside the kernel comes back as an FFI error (a Python exception), never an abort.
The XLA strategies cannot do this on a CPU: their loop bodies are small fused programs that XLA:CPU
runs one at a time.

XLA has no partitioning rule for the custom call: under a multi-device `jit` it would gather its
operands and run replicated, so 'auto' picks it only where the backend has one device; inside
`shard_map` (the 'sharded' strategy's `inner`) it runs per shard as it should.

Building. The source is compiled on first use with the system's C++ compiler (`$CXX`, else g++, c++
or clang++) against JAX's FFI headers (`jax.ffi.include_dir()`), into
`<$XDG_CACHE_HOME or ~/.cache>/lsm-jax/kernels/ffi_kernel-<key>.so`, and loaded with ctypes. The key
hashes the source, the compiler's path and `--version` line, the flags, and the jax and jaxlib
versions, so an upgrade of either or of the compiler builds a new file. The compiler gets
`COMPILE_TIMEOUT_S` seconds (`$LSM_JAX_FFI_COMPILE_TIMEOUT` overrides). Building and registering
run under a lock for the process and an `flock` on `kernels/ffi_kernel.lock` across processes; the
library is written to a temporary file and renamed into place, with its SHA-256 beside it
(`.so.sha256`). A cached library whose bytes do not match (truncated, overwritten) is rebuilt once
before it is ever loaded; only when that rebuild fails is it an error.

Errors. Everything that stops the kernel here (no compiler, a failed or timed-out compile, a cache
folder that cannot be written, a library that will not load) raises `KernelUnavailable` with one
line naming the cause and the path; `impl='ffi'` raises it, `impl='auto'` uses an XLA strategy
instead (`lsm_jax.scan.pick_impl`). CPU only; complex64 and float32 (a bf16 x is widened first).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from lsm_jax.scan.common import result_dtype

try:
    import fcntl
except ImportError:              # not a POSIX system: the process lock and the atomic rename remain
    fcntl = None

SOURCE = Path(__file__).with_name("ffi_kernel.cc")
_TARGETS = {np.dtype(np.complex64): "lsm_linear_recurrence_c64", np.dtype(np.float32): "lsm_linear_recurrence_f32"}
_PREFIX = "scan impl 'ffi': "
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread")
COMPILE_TIMEOUT_S = 300.0
# The kernel's test hooks (its attribute `test_fault`): every thread start after the first fails
# (the calling thread runs their shares), or the call fails (an FFI error).
FAULTS = {"": 0, "spawn": 1, "error": 2}

_LOCK = threading.Lock()
_library: ctypes.CDLL | None = None


class KernelUnavailable(RuntimeError):
    """The C++ kernel cannot be built or loaded here; the message says why, in one line."""


def kernel_dir() -> Path:
    """<$XDG_CACHE_HOME or ~/.cache>/lsm-jax/kernels."""
    from lsm_jax.runtime.compile_cache import user_cache_dir
    return user_cache_dir() / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _last_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _first_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _timeout() -> float:
    value = os.environ.get("LSM_JAX_FFI_COMPILE_TIMEOUT", "")
    try:
        return float(value) if value else COMPILE_TIMEOUT_S
    except ValueError:
        raise KernelUnavailable(f"scan impl 'ffi': LSM_JAX_FFI_COMPILE_TIMEOUT must be a number of seconds, "
                                f"got {value!r}") from None


def _run(command: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Runs `command` in its own process group; on timeout kills the group and raises one line."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.communicate()
        raise KernelUnavailable(f"scan impl 'ffi': {what} timed out after {timeout:g} s "
                                f"(LSM_JAX_FFI_COMPILE_TIMEOUT sets the limit)") from None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@functools.cache
def compiler_version(cxx: str) -> str:
    """The first line of `cxx --version` (part of the cache key)."""
    try:
        done = _run([cxx, "--version"], min(_timeout(), 60.0), f"`{cxx} --version`")
    except OSError as exc:
        raise KernelUnavailable(f"scan impl 'ffi': cannot run {cxx}: {exc.strerror or exc}") from None
    line = _first_line(done.stdout) or _first_line(done.stderr)
    if done.returncode or not line:
        raise KernelUnavailable(f"scan impl 'ffi': `{cxx} --version` failed: {line or 'no output'}")
    return line


def cache_key(cxx: str) -> str:
    """16 hex digits over the source, the compiler (path and version), the flags, jax and jaxlib."""
    parts = [cxx, compiler_version(cxx), jax.__version__, jaxlib.__version__, *FLAGS]
    return hashlib.sha256(SOURCE.read_bytes() + "\0".join(parts).encode()).hexdigest()[:16]


def _digest_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _intact(target: Path) -> bool:
    """Whether `target` holds exactly the bytes its build recorded (never loads it)."""
    try:
        recorded = _digest_path(target).read_text().strip()
        return hashlib.sha256(target.read_bytes()).hexdigest() == recorded
    except OSError:
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _compile(cxx: str, target: Path) -> None:
    """Compiles SOURCE to a temporary file next to `target`, then renames it and its digest into place."""
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        timeout = _timeout()
        command = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
        try:
            done = _run(command, timeout, f"compiling {SOURCE.name} with {cxx}")
        except OSError as exc:
            raise KernelUnavailable(f"scan impl 'ffi': cannot run {cxx}: {exc.strerror or exc}") from None
        if done.returncode:
            reason = _last_line(done.stderr or done.stdout) or f"exit status {done.returncode}"
            raise KernelUnavailable(f"scan impl 'ffi': compiling {SOURCE.name} failed: {reason}")
        data = Path(tmp).read_bytes()
        if not data:
            raise KernelUnavailable(f"scan impl 'ffi': compiling {SOURCE.name} with {cxx} wrote no library")
        digest = hashlib.sha256(data).hexdigest()
        os.replace(tmp, target)
        _write_atomically(_digest_path(target), digest.encode())
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _build() -> Path:
    """The path of an intact compiled kernel for this source, compiler and JAX; built if needed."""
    cxx = _compiler()
    if cxx is None:
        raise KernelUnavailable("scan impl 'ffi': no C++ compiler found (set CXX, or install g++)")
    folder = kernel_dir()
    target = folder / f"ffi_kernel-{cache_key(cxx)}.so"
    if _intact(target):
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / "ffi_kernel.lock", "a")
    except OSError as exc:
        raise KernelUnavailable(f"scan impl 'ffi': cannot write the kernel cache {folder}: "
                                f"{exc.strerror or exc}") from None
    with lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)        # released when the file is closed
        if _intact(target):                         # another process built it while we waited
            return target
        damaged = target.exists()
        try:
            _compile(cxx, target)
        except KernelUnavailable as exc:
            if damaged:
                raise KernelUnavailable(f"scan impl 'ffi': the cached kernel {target} is damaged and "
                                        f"rebuilding it failed: {str(exc).removeprefix(_PREFIX)}") from None
            raise
        except OSError as exc:
            raise KernelUnavailable(f"scan impl 'ffi': cannot write the kernel cache {folder}: "
                                    f"{exc.strerror or exc}") from None
    return target


def _register() -> ctypes.CDLL:
    """Builds (if needed), loads and registers the kernel once per process; returns the library."""
    global _library
    with _LOCK:
        if _library is None:
            path = _build()
            try:
                library = ctypes.CDLL(str(path))
            except OSError as exc:
                raise KernelUnavailable(f"scan impl 'ffi': cannot load {path}: {_first_line(str(exc))}") from None
            for symbol, name in (("LsmRecurrenceC64", _TARGETS[np.dtype(np.complex64)]),
                                 ("LsmRecurrenceF32", _TARGETS[np.dtype(np.float32)])):
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
            library.LsmResolvedThreads.restype = ctypes.c_int64
            library.LsmResolvedThreads.argtypes = [ctypes.c_int64]
            _library = library
        return _library


@functools.cache
def available() -> bool:
    """Whether the kernel builds and loads on this machine (tried at most once per process)."""
    try:
        _register()
        return True
    except (KernelUnavailable, OSError):
        return False


def resolved_threads(threads: int = 0) -> int:
    """The thread count a kernel call with option `threads` would start from now (before it is
    capped at the call's work units): `threads`, or for 0 the CPUs this process may run on."""
    return int(_register().LsmResolvedThreads(int(threads)))


def scan_ffi(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, threads: int = 0,
             test_fault: str = ""):
    """a3, x3, h0 -> (h (P, L, Q) in x's dtype, h_last (P, Q)).
    `test_fault` ('', 'spawn', 'error'): the kernel's test hooks, see `FAULTS`."""
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
                     threads=np.int64(threads), test_fault=np.int64(FAULTS[test_fault]))
    return h.astype(store), h_last
