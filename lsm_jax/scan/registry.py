"""The scan strategies: one `Strategy` entry each, in `STRATEGIES`; everything else derives from it.

Axes (the full legend: `lsm_jax.scan.common`): L steps of the scanned axis; P, Q the axes before and
after it, flattened (B and N for x of shape (B, L, N)); 1|P an axis of size 1 (broadcast) or P.

An entry names the canonical-form function (`'module:function'`, imported on first use, so that the
Pallas and FFI backends load only when they run), the options it takes (`Option`: type, default, rule,
one meaning), what it supports (platforms, autodiff without the custom VJP, behaviour under a
multi-device jit), when 'auto' may pick it, and one line for the docs. Derived from the entries:
`SCAN_IMPLS` (the names), `OPTIONS` / `SCAN_OPTIONS` (every option, with its default),
`check_options`, `pick_impl` ('auto'), `bind` (what `linear_recurrence` runs) and `strategies_table`
(the table in docs/scan.md).

Every canonical-form function is `fn(a3, x3, h0, reverse, **options) -> (h, h_last)` with a3
(1|P, 1|L, 1|Q), x3 (P, L, Q), h0 (P, Q) or None, h (P, L, Q) and h_last (P, Q): `CanonicalScan`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

import jax

from lsm_jax.scan.common import CanonicalScan

# -------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """One keyword option of `linear_recurrence`, and a field of `config.model.scan` (`in_config`)."""
    name: str
    types: tuple[type, ...]                  # accepted types; an int option refuses a bool
    default: Any
    meaning: str                             # one phrase, for the docs table
    must: str = ''                           # the rule in words, for errors ('': "a <type>")
    valid: Callable[[Any], bool] = lambda value: True    # the rule, after the type check
    choices: Callable[[], tuple] | None = None    # a closed set of values (known once STRATEGIES is)
    names_strategy: bool = False             # the value is a strategy, bound with the same options
    in_config: bool = True                   # `mesh` is not (`jax.set_mesh` gives it)

    def type_name(self) -> str:
        return ' | '.join('None' if t is type(None) else t.__name__ for t in self.types)

    def check(self, value, where: str) -> None:
        """A one-line ValueError naming the option when `value` breaks its type or rule."""
        typed = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if not typed or not self.valid(value) or (self.choices is not None and value not in self.choices()):
            must = f"one of {self.choices()}" if self.choices is not None else self.must or f"a {self.type_name()}"
            raise ValueError(f"{where}: {self.name} must be {must}, got {value!r}")


def _positive(value) -> bool:
    return value >= 1


INT = (int,)
CHUNK = Option('chunk', INT, 256, 'steps per chunk', 'a positive int', _positive)
UNROLL = Option('unroll', INT, 1, 'loop steps unrolled', 'a positive int', _positive)
BLOCK_LEN = Option('block_len', INT, 256, 'steps per kernel block', 'a positive int', _positive)
INTERPRET = Option('interpret', (bool, type(None)), None, 'Pallas interpret mode; None: off a TPU or GPU only',
                   'True, False or None (None: interpret mode off a TPU or GPU)')
THREADS = Option('threads', INT, 0, '0: the CPUs this process may run on, read at each call',
                 'an int >= 0 (0: the CPUs this process may run on)', lambda value: value >= 0)
MESH = Option('mesh', (jax.sharding.Mesh, jax.sharding.AbstractMesh, type(None)), None,
              "None: the mesh of `jax.set_mesh`", in_config=False)
MESH_AXIS = Option('mesh_axis', (str,), '', 'the mesh axis the scanned axis is split over')
INNER = Option('inner', (str,), 'auto', 'the strategy each shard runs', names_strategy=True,
               choices=lambda: ('auto', *[s.name for s in STRATEGIES.values()
                                          if s.function and s.partitioning != 'scan_axis']))
# Every strategy takes these: `linear_recurrence` itself applies them.
COMMON = (Option('custom_vjp', (bool,), True, 'differentiate by the reverse recurrence (`lsm_jax.scan.vjp`)'),)

# ---------------------------------------------------------------------------------------- 'auto'

# A scan this narrow (P·Q lanes: one image's N states) is one contiguous row per step, where XLA's
# own loop beats the custom call on a CPU: at (1, 65536, 32) forward 'sequential' took 2.1-3.1 ms
# against 3.9-4.4 ms for 'ffi' in three runs. At (4, 65536, 32) (128 lanes in four strided rows)
# 'sequential' takes 100-181 ms and 'ffi' 30-37 ms.
ROW_WIDTH = 64
SHORT = 512      # below this many steps a CPU runs 'sequential' rather than 'two_pass'


class Situation(NamedTuple):
    """What 'auto' decides on: the backend, its device count, L and the lanes P·Q."""
    platform: str
    devices: int
    length: int
    width: int


def _auto_sequential(s: Situation) -> int | None:
    if s.platform != 'cpu':
        return None
    if s.devices == 1 and s.width <= ROW_WIDTH:
        return 0         # one row per step: XLA's loop beats the kernel (ROW_WIDTH)
    return 3 if s.length < SHORT else None


def _auto_two_pass(s: Situation) -> int | None:
    """(4, 65536, 32) complex64 forward on this project's 2-core CPU (jax 0.12.0.1, quiet machine,
    experiments/results/scan_cpu.csv): 'two_pass' 41-62 ms against 100-181 ms for 'sequential' and a
    25-28 ms copy floor; forward+backward 165-225 ms against 244-341 ms. It streams a and x twice in
    large vectorised steps; the custom VJP keeps value-and-grad at 2-3 E-sized temporaries."""
    return 2 if s.platform == 'cpu' and s.length >= SHORT else None


def _auto_ffi(s: Situation) -> int | None:
    """At (4, 65536, 32): 30-37 ms forward, 105-175 ms forward+backward (see `_auto_two_pass`)."""
    return 1 if s.platform == 'cpu' else None


def _auto_associative(s: Situation) -> int | None:
    """Off a CPU (GPU, TPU). Log depth; XLA fuses it well on GPUs: 322 µs vs 6.9 ms for lax.scan at
    (4, 65536) on an H100."""
    return 0 if s.platform != 'cpu' else None


# -------------------------------------------------------------------------------------- the entries

Partitioning = Literal['xla', 'replicated', 'scan_axis']


@dataclass(frozen=True)
class Strategy:
    """One scan strategy. `function` None: 'auto', which runs the entry `pick_impl` chooses."""
    name: str
    function: str | None                 # 'module:function', a `CanonicalScan` taking `options`
    options: tuple[Option, ...]          # its own options (`COMMON` ones apply to all)
    description: str                     # one line, for the docs table
    platforms: tuple[str, ...] = ('cpu', 'gpu', 'tpu')   # where it runs natively
    plain_autodiff: bool | None = True   # differentiable with custom_vjp=False (None: as picked)
    partitioning: Partitioning | None = 'xla'   # under a multi-device jit (None: as picked):
    # 'xla': XLA partitions the other axes; 'replicated': a custom call, its operands gathered and
    # run on every device (inside 'sharded' it runs per shard); 'scan_axis': splits L over a mesh axis
    needs: tuple[str, ...] = ()          # options it cannot run without (a non-empty value)
    auto: Callable[[Situation], int | None] | None = None   # 'auto''s rank for it, lowest wins
    available: str | None = None         # 'module:function' -> bool: whether it builds here

    def load(self) -> CanonicalScan:
        return _attribute(self.function)

    def is_available(self) -> bool:
        return self.available is None or bool(_attribute(self.available)())


@functools.cache
def _attribute(path: str):
    module, _, name = path.partition(':')
    return getattr(importlib.import_module(module), name)


_ENTRIES = (
    Strategy('auto', None, (), f"`pick_impl(L, platform, width)`: on a CPU with one device `sequential` up "
             f"to {ROW_WIDTH} lanes, else `ffi` if it builds; otherwise `two_pass` from {SHORT} steps, "
             f"`sequential` below; GPU and TPU `associative`", plain_autodiff=None, partitioning=None),
    Strategy('sequential', 'lsm_jax.scan.sequential:scan_sequential', (UNROLL,),
             '`jax.lax.scan`, one step at a time; the oracle', auto=_auto_sequential),
    Strategy('associative', 'lsm_jax.scan.associative:scan_associative', (),
             "`jax.lax.associative_scan` over (a, x) pairs (the LRU paper's form), log depth",
             auto=_auto_associative),
    Strategy('chunked', 'lsm_jax.scan.chunked:scan_chunked', (CHUNK,),
             'sequential inside chunks (vectorised over chunks), associative across the chunk ends, fix-up'),
    Strategy('two_pass', 'lsm_jax.scan.chunked:scan_two_pass', (CHUNK, UNROLL),
             'chunk summaries (Π a, end state), a short scan over them, every chunk rescanned from its '
             'carry-in: 40 bytes per complex64 element, no transposes', auto=_auto_two_pass),
    Strategy('pallas', 'lsm_jax.scan.pallas:scan_pallas', (BLOCK_LEN, INTERPRET),
             'Pallas kernel: on a TPU time-major (re, im) planes with M = B·N on the 128 lanes, sequential '
             'within a block, the state in VMEM; on a GPU a chunked two-pass Triton kernel; interpret '
             'mode elsewhere', platforms=('tpu', 'gpu'), plain_autodiff=False, partitioning='replicated'),
    Strategy('ffi', 'lsm_jax.scan.ffi:scan_ffi', (THREADS,),
             "a C++ loop (`ffi_kernel.cc`, built on first use) through XLA's FFI: one pass over memory, "
             '(row, 64-lane block) units over `threads` threads', platforms=('cpu',), plain_autodiff=False,
             partitioning='replicated', auto=_auto_ffi, available='lsm_jax.scan.ffi:available'),
    Strategy('sharded', 'lsm_jax.scan.sharded:scan_sharded', (MESH, MESH_AXIS, INNER),
             '`shard_map` over `mesh_axis`: each shard scans its piece with `inner`, the shards '
             'all-gather (h_last, Π a), fold them in scan order and rescan from their carry-in',
             partitioning='scan_axis', needs=('mesh_axis',)),
)
STRATEGIES: dict[str, Strategy] = {s.name: s for s in _ENTRIES}
SCAN_IMPLS: tuple[str, ...] = tuple(STRATEGIES)
OPTIONS: dict[str, Option] = {o.name: o for s in _ENTRIES for o in s.options} | {o.name: o for o in COMMON}
SCAN_OPTIONS: dict[str, Any] = {name: o.default for name, o in OPTIONS.items()}

# ---------------------------------------------------------------------------------------- derived


def check_options(impl: str, options: dict, where: str = 'linear_recurrence') -> None:
    """Raise a one-line ValueError naming the field when `impl` or an option is invalid. Options of
    other strategies are accepted (`config.model.scan` carries them all), names no strategy takes
    are not."""
    if impl not in STRATEGIES:
        raise ValueError(f"{where}: impl must be one of {SCAN_IMPLS}, got {impl!r}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        own = [o.name for o in STRATEGIES[impl].options + COMMON]
        raise ValueError(f"{where}: unknown scan options {unknown}; {impl!r} takes {own}, the strategies "
                         f"together {sorted(OPTIONS)}")
    for name, value in options.items():
        OPTIONS[name].check(value, where)
    for name in STRATEGIES[impl].needs:
        if not options.get(name):
            raise ValueError(f"{where}: impl {impl!r} needs {name} ({OPTIONS[name].meaning})")


def pick_impl(length: int, platform: str | None = None, width: int = 1) -> str:
    """What 'auto' runs for a scan of `length` steps over `width` (= P·Q) independent lanes.

    The entries with an `auto` rank for this situation, lowest first; a 'replicated' one only where
    the backend has one device (under a multi-device jit XLA would run the custom call replicated);
    the first that `is_available` (the 'ffi' kernel: it builds and loads here). So: CPU with one
    device 'sequential' up to `ROW_WIDTH` lanes, else 'ffi' when it builds (no compiler, a failed or
    timed-out compile, an unwritable kernel cache, a damaged kernel that cannot be rebuilt: not
    picked); otherwise 'two_pass' from `SHORT` steps and 'sequential' below. GPU and TPU:
    'associative'. The rank functions hold the measurements.
    """
    s = Situation(platform or jax.default_backend(), jax.device_count(), length, width)
    ranked = sorted((rank, i, entry) for i, entry in enumerate(_ENTRIES)
                    if entry.auto is not None and (rank := entry.auto(s)) is not None
                    and not (entry.partitioning == 'replicated' and s.devices > 1))
    for _, _, entry in ranked:
        if entry.is_available():
            return entry.name
    raise ValueError(f"scan impl 'auto': no strategy for {s}")


def bind(impl: str, opts: dict) -> CanonicalScan:
    """The canonical-form function of `impl` with its options bound from `opts` (every option); 'auto',
    here or as the strategy an option names ('sharded''s `inner`), resolved when it is called, from
    the shapes it gets (inside 'sharded': one shard's)."""
    def run(a3, x3, h0, reverse):
        p, length, q = x3.shape
        entry = STRATEGIES[pick_impl(length, width=p * q) if impl == 'auto' else impl]
        kwargs = {o.name: bind(opts[o.name], opts) if o.names_strategy else opts[o.name] for o in entry.options}
        return entry.load()(a3, x3, h0, reverse, **kwargs)
    return run


_PARTITIONING = dict(xla='XLA partitions the other axes', replicated='operands gathered, run on every device',
                     scan_axis='splits L over `mesh_axis`')


def strategies_table(strategies: dict[str, Strategy] = STRATEGIES) -> list[str]:
    """The Markdown table of docs/scan.md: a header, then one row per entry."""
    def cell(text: str) -> str:
        return text.replace('|', '\\|')

    def options(s: Strategy) -> str:
        if s.function is None:
            return "the picked strategy's"
        return '; '.join(f"`{o.name}: {o.type_name()} = {o.default!r}` ({o.meaning})" for o in s.options) or '–'

    autodiff = {None: 'as the picked one', True: 'JAX autodiff', False: 'no (custom VJP only)'}
    rows = ['| `impl` | what it does | options | runs on | `custom_vjp=False` | under a multi-device `jit` |',
            '|---|---|---|---|---|---|']
    for s in strategies.values():
        cells = [f'`{s.name}`', s.description, options(s), ', '.join(s.platforms), autodiff[s.plain_autodiff],
                 _PARTITIONING.get(s.partitioning, 'as the picked one')]
        rows.append('| ' + ' | '.join(cell(c) for c in cells) + ' |')
    return rows


__all__ = ['COMMON', 'OPTIONS', 'Option', 'ROW_WIDTH', 'SCAN_IMPLS', 'SCAN_OPTIONS', 'STRATEGIES', 'Situation',
           'Strategy', 'bind', 'check_options', 'pick_impl', 'strategies_table']
