"""Linear recurrences h_k = a_k ⊙ h_{k-1} + x_k along one axis, with interchangeable strategies.

    from lsm_jax.scan import linear_recurrence, SCAN_IMPLS
    h = linear_recurrence(a, x, axis=1)                        # h_{-1} = 0
    h, h_last = linear_recurrence(a, x, axis=1, h0=h0, reverse=True, return_last=True,
                                  impl='two_pass', chunk=128)

The recurrence is linear with a diagonal transition, so it is an associative scan over pairs (a, x)
with (a_i, x_i) ∘ (a_j, x_j) = (a_j·a_i, a_j·x_i + x_j). The strategies (`SCAN_IMPLS`, one module each):

  'sequential'   jax.lax.scan, one step at a time (option `unroll`): the oracle;
  'associative'  jax.lax.associative_scan (the LRU paper's parallel form), log depth;
  'chunked'      sequential inside chunks of `chunk` steps (vectorised over chunks), associative
                 across the chunk ends, then a fix-up;
  'two_pass'     chunk summaries (Π a, end state), a short scan over them, then a rescan of every
                 chunk from its carry-in: 40 bytes per complex64 element, no transposes;
  'pallas'       a Pallas TPU kernel (interpret mode elsewhere, options `block_len`, `interpret`);
  'ffi'          a C++ loop on the CPU through XLA's FFI, one pass over memory (option `threads`,
                 0: the CPUs this process may run on, read at every call);
  'sharded'      the scanned axis split over the mesh axis `mesh_axis` (shard_map), each shard
                 running `inner`, corrected by the exchanged (h_last, Π a);
  'auto'         see `pick_impl`.

Every strategy is differentiated by one custom VJP (`lsm_jax.scan.vjp`, option `custom_vjp`): the
backward pass is the reverse recurrence on the cotangents, saving only h.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from lsm_jax.scan.associative import scan_associative
from lsm_jax.scan.chunked import scan_chunked, scan_two_pass
from lsm_jax.scan.common import to_canonical
from lsm_jax.scan.pairs import ComplexPair, check_pair, narrow, widen
from lsm_jax.scan.sequential import scan_sequential
from lsm_jax.scan.sharded import scan_sharded
from lsm_jax.scan.vjp import recurrence

SCAN_IMPLS = ('auto', 'sequential', 'associative', 'chunked', 'two_pass', 'pallas', 'ffi', 'sharded')

# Every option of every strategy with its default; `config.model.scan` carries the same fields
# (`mesh` is the only one that cannot come from a config: it is taken from `jax.set_mesh` then).
SCAN_OPTIONS = dict(chunk=256, unroll=1, block_len=256, interpret=None, mesh=None, mesh_axis='', inner='auto',
                    custom_vjp=True, threads=0)
_USES = dict(sequential=('unroll',), associative=(), chunked=('chunk',), two_pass=('chunk', 'unroll'),
             pallas=('block_len', 'interpret'), ffi=('threads',), sharded=('mesh', 'mesh_axis', 'inner'))


def check_options(impl: str, options: dict, where: str = 'linear_recurrence') -> None:
    """Raise a one-line ValueError naming the field when `impl` or an option is invalid."""
    if impl not in SCAN_IMPLS:
        raise ValueError(f"{where}: impl must be one of {SCAN_IMPLS}, got {impl!r}")
    unknown = sorted(set(options) - set(SCAN_OPTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown scan options {unknown}; expected some of {sorted(SCAN_OPTIONS)}")
    for name in ('chunk', 'unroll', 'block_len'):
        if name in options and (not isinstance(options[name], int) or options[name] < 1):
            raise ValueError(f"{where}: {name} must be a positive int, got {options[name]!r}")
    if 'threads' in options and (not isinstance(options['threads'], int) or options['threads'] < 0):
        raise ValueError(f"{where}: threads must be an int >= 0 (0: the CPUs this process may run on), "
                         f"got {options['threads']!r}")
    inner = options.get('inner', 'auto')
    if inner not in SCAN_IMPLS or inner == 'sharded':
        raise ValueError(f"{where}: inner must be one of {SCAN_IMPLS[:-1]}, got {inner!r}")
    if impl == 'sharded' and not options.get('mesh_axis'):
        raise ValueError(f"{where}: impl 'sharded' needs mesh_axis (the mesh axis the scanned axis is split on)")


# A scan this narrow (P·Q lanes: one image's N states) is one contiguous row per step, where XLA's
# own loop beats the custom call on a CPU: at (1, 65536, 32) forward 'sequential' took 2.1-3.1 ms
# against 3.9-4.4 ms for 'ffi' in three runs. At (4, 65536, 32) (128 lanes in four strided rows)
# 'sequential' takes 100-181 ms and 'ffi' 30-37 ms.
ROW_WIDTH = 64


def pick_impl(length: int, platform: str | None = None, width: int = 1) -> str:
    """What 'auto' runs for a scan of `length` steps over `width` (= P·Q) independent lanes.

    CPU with one device: 'sequential' up to `ROW_WIDTH` lanes, else 'ffi' (the C++ one-pass kernel)
    when it builds and loads here (no compiler, a failed or timed-out compile, a kernel cache that
    cannot be written, a damaged cached kernel that cannot be rebuilt: not picked); otherwise (no
    kernel, or several devices) 'two_pass' from 512 steps on and 'sequential' below. On this
    project's 2-core CPU (jax 0.12.0.1, quiet machine, experiments/results/scan_cpu.csv), at
    (4, 65536, 32) complex64 forward: 'ffi' 30-37 ms, 'two_pass' 41-62 ms, 'sequential' 100-181 ms,
    against a 25-28 ms copy floor; forward+backward 105-175 ms against 165-225 ms ('two_pass') and
    244-341 ms ('sequential'). 'two_pass' streams a and x twice in large vectorised steps; the custom
    VJP keeps value-and-grad at 2-3 E-sized temporaries.
    On a multi-device CPU (the tests' 8 fake devices) 'ffi' is not picked: XLA would run the custom
    call replicated (see `lsm_jax.scan.ffi`). GPU and TPU: 'associative' (log depth; XLA fuses it well
    on GPUs: 322 µs vs 6.9 ms for lax.scan at (4, 65536) on an H100).
    """
    platform = platform or jax.default_backend()
    if platform == 'cpu':
        if jax.device_count() == 1:
            if width <= ROW_WIDTH:
                return 'sequential'
            from lsm_jax.scan import ffi
            if ffi.available():
                return 'ffi'
        return 'sequential' if length < 512 else 'two_pass'
    return 'associative'


def _bound(impl: str, opts: dict):
    """The canonical-form function of one concrete strategy with its options bound."""
    bound = {k: opts[k] for k in _USES[impl]}
    if impl == 'pallas':
        from lsm_jax.scan.pallas import scan_pallas
        return partial(scan_pallas, **bound)
    if impl == 'ffi':
        from lsm_jax.scan.ffi import scan_ffi
        return partial(scan_ffi, **bound)
    return partial(_STRATEGIES[impl], **bound)


def _strategy(impl: str, length: int, opts: dict, width: int = 1):
    """The canonical-form function of `impl` ('auto' and 'sharded' resolved) with its options bound."""
    if impl == 'auto':
        impl = pick_impl(length, width=width)
    if impl == 'sharded':
        inner = opts['inner']
        inner = pick_impl(length // 2, width=width) if inner == 'auto' else inner
        return partial(scan_sharded, inner=_bound(inner, opts), mesh=opts['mesh'], mesh_axis=opts['mesh_axis'])
    return _bound(impl, opts)


_STRATEGIES = dict(sequential=scan_sequential, associative=scan_associative, chunked=scan_chunked,
                   two_pass=scan_two_pass, sharded=scan_sharded)


def linear_recurrence(a: jax.Array, x: jax.Array, *, axis: int = 1, reverse: bool = False,
                      h0: jax.Array | None = None, return_last: bool = False, impl: str = 'auto', **options):
    """h_k = a_k ⊙ h_{k-1} + x_k along `axis` from h_{-1} = h0 (zeros when None).

    reverse: h_k = a_k ⊙ h_{k+1} + x_k, from h0 after the last element. `a` broadcasts against x
    (pass λ of shape (N,) as it is). x, a: float32 / complex64, or bfloat16 x (stored in bf16, carried
    in float32 where the strategy loops), or complex as a `ComplexPair` of bf16/float32 planes (then h
    is a pair of x's plane dtype and h_last a pair of float32 planes; `lsm_jax.scan.pairs`). Returns h
    (x's shape), or (h, h_last) with return_last, h_last = the state after the final step in scan
    direction (x's shape without `axis`).
    """
    check_options(impl, options)
    opts = {**SCAN_OPTIONS, **options}
    pair_dtype = x.dtype if isinstance(x, ComplexPair) else None
    for name, value in (('a', a), ('x', x), ('h0', h0)):
        if isinstance(value, ComplexPair):
            check_pair(value, name)
    a, x, h0 = widen(a), widen(x), widen(h0)
    axis = axis % x.ndim
    a3, x3 = to_canonical(jnp.asarray(a), jnp.asarray(x), axis)
    p, length, q = x3.shape
    last_shape = x.shape[:axis] + x.shape[axis + 1:]
    if h0 is not None and tuple(h0.shape) != last_shape:
        raise ValueError(f"linear_recurrence: h0 has shape {tuple(h0.shape)}, expected {last_shape}")
    fn = _strategy(impl, length, opts, p * q)
    h0_3 = None if h0 is None else jnp.asarray(h0).reshape(p, q)
    if opts['custom_vjp']:
        dtype = jnp.promote_types(jnp.result_type(a3.dtype, x3.dtype), jnp.float32)
        start = jnp.zeros((p, q), dtype) if h0_3 is None else h0_3
        h, h_last = recurrence(fn, bool(reverse), h0_3 is not None, pair_dtype, a3, x3, start)
    else:
        h, h_last = fn(a3, x3, h0_3, bool(reverse))
    h, h_last = h.reshape(x.shape), h_last.reshape(last_shape)
    if pair_dtype is not None:
        h, h_last = narrow(h, pair_dtype), narrow(h_last, jnp.float32)
    return (h, h_last) if return_last else h


__all__ = ['ComplexPair', 'SCAN_IMPLS', 'SCAN_OPTIONS', 'check_options', 'linear_recurrence', 'pick_impl']
