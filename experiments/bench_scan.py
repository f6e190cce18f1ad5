"""The linear recurrence under every scan strategy, against the memory floor measured in the same run.

    python -m experiments.bench_scan --quick          # CPU grid, a few minutes
    python -m experiments.bench_scan --smoke          # tiny sizes: checks that every row runs (~2 min)
    python -m experiments.bench_scan                  # full grid (GPU / TPU)
    python -m experiments.bench_scan --model          # whole LSM forward and training step per strategy

(from the repository root, as every experiment runs: see experiments/__init__.py).

Grid: B × L × N=32 complex64, forward and
forward+backward (value and grad of a real loss), every strategy with its main options, plus a
`reverse` scan and a bidirectional pair (forward + reverse) for the best forward strategy.
For each point it reports:

  time_s      median over the timed repeats after compilation, inputs already on the device (as the
              floor's); time_min_s: the fastest repeat (steadier on a shared machine: page faults and
              other jobs only add time); compile_s: lower + compile
  gbps        effective bytes/s: 24 bytes per element forward (read a, x; write h), 64 fwd+bwd;
              for the bf16 (re, im) pair rows 16 and 44 (x, h and their cotangents in 4 bytes)
  floor_s     those bytes at the copy bandwidth measured in this run (an elementwise pass reading two
              float32 arrays and writing one, 24 bytes per complex element; taken at the start and
              the end of the run, the median used); over_floor = time_s / floor_s
  temp_E      peak temporary memory of the compiled program (memory_analysis), in E-sized buffers
              (E = B·L·N complex64 = 8·B·L·N bytes)
  max_err     max |h - h64| / max |h64| against a float64 NumPy loop, |a| uniform in [0.9, 0.99999]
  note        why a row has no measurement (the 'ffi' strategy has no autodiff rule: its memory row
              without the custom VJP is skipped, the custom-VJP row is the network's path)
  machine, date, jax, jaxlib, numpy, cores
              where and when: the host (`results_csv.machine`), the UTC date, the installed versions,
              and the CPUs this process may run on (what the 'ffi' kernel's threads=0 uses)

One JSON object per point on stdout; rows to experiments/results/scan_<platform>.csv, a plot
(time vs L per strategy at B=4, the floor drawn) next to it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform as host
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.results_csv import metadata_values, write_rows
from lsm_jax.scan import STRATEGIES as REGISTRY, ComplexPair, linear_recurrence, pick_impl

RESULTS = Path(__file__).resolve().parent / "results"
N = 32
# (label, impl, options)
STRATEGIES = [("sequential", "sequential", {}), ("sequential_u8", "sequential", dict(unroll=8)),
              ("associative", "associative", {}), ("chunked_64", "chunked", dict(chunk=64)),
              ("two_pass_64", "two_pass", dict(chunk=64)), ("two_pass_256", "two_pass", dict(chunk=256)),
              ("two_pass_1024", "two_pass", dict(chunk=1024)), ("ffi", "ffi", {}),
              ("ffi_1thread", "ffi", dict(threads=1)), ("auto", "auto", {})]
FIELDS = ("kind", "strategy", "impl", "options", "B", "L", "N", "dtype", "mode", "time_s", "time_min_s", "time_max_s",
          "compile_s",
          "gbps", "floor_s", "over_floor", "temp_E", "max_err", "copy_gbps", "platform", "device", "note",
          "machine", "date", "jax", "jaxlib", "numpy", "cores")
# Strategies that XLA cannot differentiate (the registry's `plain_autodiff` is False): only the custom VJP
# (`lsm_jax.scan.vjp`, the path the network takes) differentiates them.
NO_AUTODIFF = {name: f"skipped: {name} has no autodiff rule; it is differentiated only through the custom VJP "
                     "(the network's path: the row without _autodiff)"
               for name, entry in REGISTRY.items() if entry.plain_autodiff is False}
# (batches, lengths, the (B, L) of the reverse / bidirectional / bf16 rows, the (B, L) of the memory rows)
SIZES = dict(full=([1, 4, 16, 64], [4096, 16384, 65536], (4, 65536), (16, 16384)),
             quick=([1, 4], [4096, 65536], (4, 65536), (16, 16384)),
             smoke=([1, 4], [256, 1024], (4, 1024), (4, 1024)))


@functools.cache
def _provenance() -> tuple:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return tuple(dict(metadata_values(), numpy=np.__version__, cores=cores).items())


def provenance() -> dict:
    """Where and when (taken once per run): machine, date, jax, jaxlib (`results_csv`), numpy, and
    the CPUs this process may run on."""
    return dict(_provenance())


def timed(fn, args, reps):
    """(median seconds, compile seconds, compiled, (min, max) seconds) of jitted fn(*args)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s, compiled, (min(times), max(times))


def copy_bandwidth(elements: int, reps: int) -> float:
    """Bytes/s of u + v on float32 arrays of 2·elements floats: 24 bytes per complex element."""
    u = jnp.ones((2 * elements,), jnp.float32)
    v = jnp.full((2 * elements,), 2.0, jnp.float32)
    t, _, _, _ = timed(lambda u, v: u + v, (u, v), max(reps, 5))
    return 24 * elements / t


def inputs(b, length, seed=0):
    rng = np.random.default_rng(seed)
    modulus = rng.uniform(0.9, 0.99999, (b, length, N))
    a = (modulus * np.exp(1j * rng.uniform(0, 2 * np.pi, (b, length, N)))).astype(np.complex64)
    x = (rng.normal(size=(b, length, N)) + 1j * rng.normal(size=(b, length, N))).astype(np.complex64) * 0.1
    return a, x


def float64_loop(a, x, reverse=False):
    a, x = a.astype(np.complex128), x.astype(np.complex128)
    h = np.empty_like(x)
    c = np.zeros((x.shape[0], x.shape[2]), np.complex128)
    for k in (range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])):
        c = a[:, k] * c + x[:, k]
        h[:, k] = c
    return h


def scan_fn(impl, opts, mode, reverse=False, bidirectional=False):
    def forward(a, x):
        h = linear_recurrence(a, x, impl=impl, reverse=reverse, **opts)
        if bidirectional:
            h = h + linear_recurrence(a, x, impl=impl, reverse=True, **opts)
        return h
    if mode == "fwd":
        return forward

    def loss(a, x):
        h = forward(a, x)
        return jnp.sum(h.re.astype(jnp.float32)) if isinstance(h, ComplexPair) else jnp.sum(jnp.real(h))
    return jax.value_and_grad(loss, argnums=(0, 1))


def run_point(label, impl, opts, b, length, mode, reps, bw, a, x, h64, dtype="complex64", **kw):
    a, x = jax.device_put(a), jax.device_put(x)   # as the floor's: no host transfer inside the timing
    t, compile_s, compiled, (t_min, t_max) = timed(scan_fn(impl, opts, mode, **kw), (a, x), reps)
    elements = b * length * N
    per_element = (24 if mode == "fwd" else 64) if dtype == "complex64" else (16 if mode == "fwd" else 44)
    nbytes = per_element * elements * (2 if kw.get("bidirectional") else 1)
    err = None
    if mode == "fwd" and h64 is not None:
        h = compiled(a, x)
        h = np.asarray(h.to_complex() if isinstance(h, ComplexPair) else h, np.complex128)
        err = float(np.max(np.abs(h - h64)) / np.max(np.abs(h64)))
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    dev = jax.devices()[0]
    resolved = impl if impl != "auto" else f"auto:{pick_impl(length, width=b * N)}"
    return dict(kind="scan", strategy=label, impl=resolved,
                options=json.dumps(opts, sort_keys=True), B=b, L=length, N=N, dtype=dtype, mode=mode,
                time_s=round(t, 6), time_min_s=round(t_min, 6), time_max_s=round(t_max, 6), compile_s=round(compile_s, 3),
                gbps=round(nbytes / t / 1e9, 3),
                floor_s=round(nbytes / bw, 6), over_floor=round(t * bw / nbytes, 3),
                temp_E=None if temp is None else round(temp / (8 * elements), 2),
                max_err=None if err is None else float(f"{err:.3g}"), copy_gbps=round(bw / 1e9, 3),
                platform=dev.platform, device=dev.device_kind, **provenance())


def scan_grid(size: str, reps: int):
    quick = size != "full"
    batches, lengths, (b_extra, l_extra), memory_at = SIZES[size]
    strategies = STRATEGIES if jax.default_backend() == "cpu" else STRATEGIES + [
        ("pallas", "pallas", dict(block_len=256))]
    largest = max(batches) * max(lengths) * N
    bw0 = copy_bandwidth(min(largest, b_extra * l_extra * N), reps)
    rows = []
    for b in batches:
        for length in lengths:
            a, x = inputs(b, length)
            h64 = float64_loop(a, x) if b * length <= 4 * 65536 else None
            for mode in ("fwd", "fwd_bwd"):
                for label, impl, opts in strategies:
                    if not quick or mode == "fwd" or label in ("sequential", "associative", "two_pass_1024",
                                                               "two_pass_256", "ffi", "auto"):
                        rows.append(run_point(label, impl, opts, b, length, mode, reps, bw0, a, x, h64))
                        print(json.dumps(rows[-1]), flush=True)
    # reverse, a bidirectional pair, and bf16 storage at (4, 65536) (smoke: (4, 1024))
    b, length = b_extra, l_extra
    a, x = inputs(b, length)
    h64r = float64_loop(a, x, reverse=True)
    for label, impl, opts in [("two_pass_1024", "two_pass", dict(chunk=1024)), ("sequential", "sequential", {}),
                              ("ffi", "ffi", {})]:
        rows.append(run_point(label + "_reverse", impl, opts, b, length, "fwd", reps, bw0, a, x, h64r, reverse=True))
        print(json.dumps(rows[-1]), flush=True)
        rows.append(run_point(label + "_bidir", impl, opts, b, length, "fwd", reps, bw0, a, x, None,
                              bidirectional=True))
        print(json.dumps(rows[-1]), flush=True)
    # complex in bf16 (re, im) planes: x and h stored in bf16, the state in float32
    x16 = ComplexPair.from_complex(x, jnp.bfloat16)
    h64p = float64_loop(a, np.asarray(x16.to_complex()))
    for label, impl, opts in [("sequential", "sequential", {}), ("two_pass_256", "two_pass", dict(chunk=256)),
                              ("two_pass_1024", "two_pass", dict(chunk=1024)), ("ffi", "ffi", {}),
                              ("auto", "auto", {})]:
        for mode in ("fwd", "fwd_bwd"):
            rows.append(run_point(label + "_bf16pairs", impl, opts, b, length, mode, reps, bw0, a, x16, h64p,
                                  dtype="bf16_pairs"))
            print(json.dumps(rows[-1]), flush=True)
    rows += memory_rows(*memory_at)
    bw1 = copy_bandwidth(b_extra * l_extra * N, reps)
    print(json.dumps(dict(kind="copy_bandwidth", start_gbps=bw0 / 1e9, end_gbps=bw1 / 1e9)), flush=True)
    return rows


def memory_rows(b=16, length=16384):
    """Peak temporary memory of value-and-grad at (16, 16384), compiled only: the custom VJP against
    autodiff through the strategy (custom_vjp=False; for a strategy in NO_AUTODIFF a row that says
    why it is skipped)."""
    spec = jax.ShapeDtypeStruct((b, length, N), jnp.complex64)
    plane = jax.ShapeDtypeStruct((b, length, N), jnp.bfloat16)
    rows = []
    for label, impl, opts, x_spec in [
            ("associative", "associative", {}, spec), ("two_pass_256", "two_pass", dict(chunk=256), spec),
            ("sequential", "sequential", {}, spec), ("ffi", "ffi", {}, spec),
            ("two_pass_256_bf16pairs", "two_pass", dict(chunk=256), ComplexPair(plane, plane))]:
        for custom in (True, False):
            row = dict(kind="memory", strategy=f"{label}{'' if custom else '_autodiff'}", impl=impl,
                       options=json.dumps(dict(opts, custom_vjp=custom)), B=b, L=length, N=N,
                       dtype="complex64" if x_spec is spec else "bf16_pairs", mode="fwd_bwd",
                       platform=jax.default_backend(), **provenance())
            if not custom and impl in NO_AUTODIFF:
                row["note"] = NO_AUTODIFF[impl]
            else:
                fn = scan_fn(impl, dict(opts, custom_vjp=custom), "fwd_bwd")
                mem = jax.jit(fn).lower(spec, x_spec).compile().memory_analysis()
                row["temp_E"] = round(mem.temp_size_in_bytes / (8 * b * length * N), 2)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    return rows


def model_grid(reps: int):
    """Whole LSM forward and training step (value and grad of the L1 loss) under each strategy."""
    from flax import nnx
    from lsm_jax.model.network import LSM
    from lsm_jax.model.variants import network_config
    rows = []
    for name, variant, scale in [("light_x4_64", "lsm_light", 4), ("s_x2_64", "lsm_s", 2)]:
        for label, impl, opts in [("sequential", "sequential", {}), ("associative", "associative", {}),
                                  ("two_pass_256", "two_pass", dict(chunk=256)), ("ffi", "ffi", {}),
                                  ("auto", "auto", {})]:
            cfg = network_config(variant, scale)
            cfg.semantics = "paper"
            cfg.scan.update(dict(impl=impl, **opts))
            graphdef, params = nnx.split(LSM(cfg, rngs=nnx.Rngs(0)))
            x = jax.random.uniform(jax.random.key(0), (1, 64, 64, 3))
            y = jax.random.uniform(jax.random.key(1), (1, 64 * scale, 64 * scale, 3))
            fwd = lambda p, x: nnx.merge(graphdef, p)(x)  # noqa: E731
            loss = lambda p, x: jnp.mean(jnp.abs(nnx.merge(graphdef, p)(x, train=True, key=jax.random.key(2)) - y))  # noqa
            for mode, fn in (("fwd", fwd), ("train_step", jax.value_and_grad(loss))):
                t, compile_s, _, _ = timed(fn, (params, x), reps)
                rows.append(dict(kind="model", strategy=f"{name}:{label}", impl=impl, options=json.dumps(opts),
                                 B=1, L=64 * 64, N=cfg.d_state, dtype="float32", mode=mode, time_s=round(t, 4),
                                 compile_s=round(compile_s, 2), platform=jax.default_backend(), **provenance()))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    b_plot = 4 if any(r.get("B") == 4 for r in rows) else max(r["B"] for r in rows if r["kind"] == "scan")
    for ax, mode in zip(axes, ("fwd", "fwd_bwd")):
        pts = [r for r in rows if r["kind"] == "scan" and r["mode"] == mode and r["B"] == b_plot
               and not r["strategy"].endswith(("_reverse", "_bidir"))]
        for label in dict.fromkeys(r["strategy"] for r in pts):
            sel = sorted((r["L"], r["time_s"]) for r in pts if r["strategy"] == label)
            ax.plot(*zip(*sel), marker="o", label=label)
        floor = sorted({(r["L"], r["floor_s"]) for r in pts})
        ax.plot(*zip(*floor), "k--", label="memory floor (same run)")
        ax.set(xscale="log", yscale="log", xlabel="L", ylabel="seconds", title=f"B={b_plot}, N=32 complex64, {mode}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="B in {1, 4}, L in {4096, 65536}: a few minutes on a CPU")
    ap.add_argument("--smoke", action="store_true",
                    help="B in {1, 4}, L in {256, 1024}, memory rows at (4, 1024): checks that every row runs; "
                         "the CSV goes to the temporary folder unless --csv names one")
    ap.add_argument("--model", action="store_true", help="whole-model forward and training step per strategy")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--csv", default="")
    args = ap.parse_args()
    print(json.dumps(dict(kind="header", device=str(jax.devices()[0]), host=host.node(), **provenance())))
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    rows = model_grid(args.reps) if args.model else scan_grid(size, args.reps)
    name = f"scan_{'model_' if args.model else ''}{jax.default_backend()}"
    default = Path(tempfile.gettempdir()) / f"{name}_smoke.csv" if args.smoke else RESULTS / f"{name}.csv"
    path = Path(args.csv) if args.csv else default
    write_rows(path, rows, fields=FIELDS)
    if not args.model:
        plot(rows, path.with_suffix(".png"))
    print(json.dumps(dict(kind="written", csv=str(path))))


if __name__ == "__main__":
    main()
