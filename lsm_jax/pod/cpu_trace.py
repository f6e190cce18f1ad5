"""Measured time per HLO op on the local CPU backend, from a `jax.profiler` trace taken in memory.

XLA's CPU runtime records each op it runs (a thunk) as a trace event named after the HLO instruction
(`fusion.12`, `sort.0`, ...), on the thread that ran it; an op split over the intra-op thread pool shows
up on several threads. `op_times` runs a step `steps` times inside a `jax.profiler.ProfileSession` and
gives, per instruction name, the wall-clock time covered by its events (the union of its intervals over
all threads) divided by `steps`. Ops that the runtime runs concurrently each count their own span, so
the sum over ops can exceed the step's wall time; `step_s`, measured around each traced call, is
returned beside it. What is measured: this machine's CPU running the CPU-compiled program, with the
profiler on (its overhead is a few µs per op).

`ceilings` measures the roofline ceilings of this CPU: a large float32 matmul's FLOP/s and an
elementwise pass's bytes/s, over an array that stays in the last-level cache and over one that does
not (best of a few runs). They are this CPU's estimate of "peak": sustained rates of XLA's own kernels
on this machine, not a vendor figure.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

import jax
import jax.numpy as jnp


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclasses.dataclass
class OpTimes:
    """Seconds per step: per instruction name (its events' union over threads), while any op ran
    (`busy_s`: the union of every op's events) and around the call (`wall_s`: dispatch, argument
    handling and waiting included)."""
    per_op: dict[str, float]
    busy_s: float
    wall_s: float
    steps: int


def op_times(run: Callable[[], object], names: Iterable[str], steps: int = 3) -> OpTimes:
    """The op times of `steps` traced calls of `run` (one step, blocking until its results are ready);
    `names`: the instructions to look for."""
    wanted = set(names)
    session = jax.profiler.ProfileSession().start()
    wall = []
    try:
        for _ in range(steps):
            t0 = time.perf_counter()
            run()
            wall.append(time.perf_counter() - t0)
    finally:
        data = session.stop()
    spans: dict[str, list[tuple[float, float]]] = {}
    for plane in data.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                if event.name in wanted:
                    spans.setdefault(event.name, []).append((event.start_ns, event.start_ns + event.duration_ns))
    every = [iv for v in spans.values() for iv in v]
    return OpTimes({k: _union(v) * 1e-9 / steps for k, v in spans.items()}, _union(every) * 1e-9 / steps,
                   sum(wall) / len(wall), steps)


def _best(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def ceilings(n: int = 1024, cache_mib: int = 8, dram_mib: int = 128) -> tuple[float, float, float]:
    """(FLOP/s of an n×n×n float32 matmul, bytes/s of an elementwise pass over `cache_mib` MiB (read
    and written: it stays in a last-level cache of ≥ 2·cache_mib MiB), the same over `dram_mib` MiB
    (from DRAM)), measured on the default CPU device, best of 5."""
    cpu = jax.devices("cpu")[0]
    a = jax.device_put(jnp.ones((n, n), jnp.float32), cpu)
    flops = 2.0 * n ** 3 / _best(jax.jit(lambda x, y: x @ y), a, a)
    stream = jax.jit(lambda v: v * 1.5 + 1.0)
    rates = []
    for mib in (cache_mib, dram_mib):
        x = jax.device_put(jnp.ones((mib * 2 ** 20 // 4,), jnp.float32), cpu)
        rates.append(2.0 * x.nbytes / _best(stream, x))   # read x, write the result
    return flops, rates[0], rates[1]
