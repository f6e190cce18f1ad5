"""Whole-image inference speed of the LSM family, against this machine's matmul floor.

    python -m experiments.bench_inference [--cases light_x4_64,s_x2_64,s_x4_128] [--semantics reference paper]
                                          [--reps 5] [--csv experiments/results/bench_inference.csv] [--gpu-large]
                                          [--scan-impl associative|sequential|chunked|auto]

Runs the jitted forward that `upscale`/`evaluate` use (`lsm_jax.inference.make_forward`, the same
code path the parity tests check) on one random LR image, batch 1, random weights, for each case and
semantics. For every case it reports:

  fwd_s           median forward time after compilation (>= --reps timed runs)
  compile_s       lower + compile time
  gflop           XLA's cost analysis of the compiled forward
  gflops_per_s    gflop / fwd_s
  matmul_gflops   baseline measured in the same run: sustained float32 GFLOP/s of a large square
                  jnp.dot on the same device (the median of the start-of-run figure and one taken
                  right after the case, since the load on a shared machine drifts)
  floor_s         gflop / matmul_gflops, the time if every flop ran at large-matmul speed
  fwd_over_floor  fwd_s / floor_s (the ratio to the baseline; 1.0 would be arithmetic-bound)

A header line names the device, the allocator (glibc unless LD_PRELOAD names another) and the
baseline. One JSON object per case follows, one per line, and the rows go to a CSV.

    python -m experiments.bench_inference --grid [grid options]

runs `experiments.bench_inference_grid` instead: time and peak memory against LR size (128² to
1024² whole, 2048² tiled), LSM-S and LSM-light x4, float32/bfloat16, with and without self-ensemble,
each point in a fresh process, CSV + plot. Run from the repository root, as every experiment runs (see
experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

from experiments.results_csv import write_rows
from lsm_jax.inference.forward import make_forward
from lsm_jax.model.network import LSM
from lsm_jax.model.variants import network_config
from lsm_jax.scan import SCAN_IMPLS

# name -> (variant, scale, LR side)
CASES = {
    "light_x4_64": ("lsm_light", 4, 64),
    "s_x2_64": ("lsm_s", 2, 64),
    "s_x4_128": ("lsm_s", 4, 128),
}
GPU_LARGE = {"s_x4_256": ("lsm_s", 4, 256)}
MODEL_NAMES = {"lsm_light": "LSM-light", "lsm_s": "LSM-S", "lsm": "LSM"}


def allocator() -> str:
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if name in preload:
            return name
    return "glibc" if not preload else f"LD_PRELOAD={preload}"


def cost_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def _timed(fn, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def matmul_gflops(device, reps: int = 5) -> tuple[float, int]:
    """Sustained float32 GFLOP/s of a large square jnp.dot (the median of `reps` runs)."""
    n = 2048 if device.platform == "cpu" else 8192
    with jax.default_device(device):
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
        dot = jax.jit(jnp.dot).lower(a, b).compile()
        jax.block_until_ready(dot(a, b))
        times = _timed(lambda: dot(a, b), reps)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9, n


def bench_case(name: str, variant: str, scale: int, side: int, semantics: str, reps: int, baseline: float,
               device, scan_impl: str | None = None) -> dict:
    cfg = network_config(variant, scale)
    cfg.semantics = semantics
    if scan_impl:
        cfg.scan.impl = scan_impl
    model = LSM(cfg, rngs=nnx.Rngs(0))
    forward, params = make_forward(model)
    with jax.default_device(device):
        x = jax.random.uniform(jax.random.key(1), (1, side, side, 3), jnp.float32)
        params = jax.device_put(params, device)
        t0 = time.perf_counter()
        compiled = forward.lower(params, x).compile()
        compile_s = time.perf_counter() - t0
        jax.block_until_ready(compiled(params, x))          # first run: allocations, caches
        times = _timed(lambda: compiled(params, x), max(5, reps))
    fwd_s = statistics.median(times)
    gflop = cost_flops(compiled) / 1e9
    # Re-measure the matmul baseline next to each case: on a shared machine the load drifts.
    baseline = statistics.median([baseline, matmul_gflops(device)[0]])
    floor_s = gflop / baseline
    return dict(case=name, model=MODEL_NAMES.get(variant, variant), scale=scale, lr_hw=f"{side}x{side}",
                semantics=semantics, scan_impl=cfg.scan.impl, batch=1, fwd_s=round(fwd_s, 4), fwd_min_s=round(min(times), 4),
                compile_s=round(compile_s, 2), gflop=round(gflop, 2),
                gflops_per_s=round(gflop / fwd_s, 1), matmul_gflops=round(baseline, 1),
                floor_s=round(floor_s, 4), fwd_over_floor=round(fwd_s / floor_s, 2), reps=len(times))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--grid" in argv:
        from experiments.bench_inference_grid import main as grid_main
        return grid_main([a for a in argv if a != "--grid"])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated subset of {','.join(list(CASES) + list(GPU_LARGE))}")
    ap.add_argument("--semantics", nargs="+", default=["reference", "paper"], choices=["reference", "paper"])
    ap.add_argument("--reps", type=int, default=5, help="timed forward passes per case (at least 5)")
    ap.add_argument("--csv", default="experiments/results/bench_inference.csv")
    ap.add_argument("--scan-impl", default=None, choices=[i for i in SCAN_IMPLS if i != "sharded"],
                    help="override cfg.scan.impl (matters for 'paper' semantics only); default: the config's")
    ap.add_argument("--gpu-large", action="store_true", help="also run LSM-S x4 at 256x256 (for a GPU)")
    args = ap.parse_args(argv)

    known = {**CASES, **GPU_LARGE}
    names = [c for c in args.cases.split(",") if c]
    if args.gpu_large:
        names += [c for c in GPU_LARGE if c not in names]
    unknown = [c for c in names if c not in known]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {sorted(known)}")

    device = jax.devices()[0]
    baseline, n = matmul_gflops(device)
    header = dict(device=str(device), device_kind=device.device_kind, platform=device.platform,
                  cpu_count=os.cpu_count(), allocator=allocator(), jax=jax.__version__,
                  python=platform.python_version(), matmul=f"f32 {n}x{n}x{n} jnp.dot",
                  matmul_gflops=round(baseline, 1))
    print(json.dumps({"header": header}), flush=True)

    rows = []
    for name in names:
        variant, scale, side = known[name]
        for semantics in args.semantics:
            row = bench_case(name, variant, scale, side, semantics, args.reps, baseline, device, args.scan_impl)
            row.update(device=header["device_kind"], allocator=header["allocator"])
            print(json.dumps(row), flush=True)
            rows.append(row)

    if args.csv and rows:
        path = write_rows(args.csv, rows, fields=list(rows[0]))
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
