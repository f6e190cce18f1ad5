r"""Training-step benchmark: one JSON object per case on stdout (and optionally a CSV).

    python -m experiments.bench_train                       # every case (slow on a CPU)
    python -m experiments.bench_train --quick               # LSM-light x2, batch 4, 48×48, float32
    python -m experiments.bench_train --cases light_b4_p48 --semantics reference --dtypes float32
    python -m experiments.bench_train --csv bench_train.csv

(from the repository root, as every experiment runs: see experiments/__init__.py).

Cases (x2, LR patch side p): lsm_s_b4_p64, lsm_s_b16_p64, light_b16_p64, light_b4_p48; each under
`paper` and `reference` semantics, in float32 and bfloat16 compute (parameters and optimizer state
stay float32). A case is the full jitted step of `lsm_jax.train` (forward, L1 loss, backward,
AdamW, EMA) on a synthetic batch over all local devices, measured after compilation: `step_s` is
the median of `--steps` timed steps. `peak_bytes` is the device allocator's peak where the
platform reports one (GPU/TPU; each case runs in its own process so peaks do not mix), and
`compiled_bytes` XLA's static estimate (arguments + outputs + temporaries) everywhere. The
baseline measured in the same run is the device's large float32 matmul speed (`matmul_gflops`):
`floor_s = gflop / matmul_gflops` (the compiled program's FLOPs, loops counted per trip: `step_gflop`)
and `step_over_floor`.

Anchors (notes/performance.md): the authors' PyTorch code takes 4.33 s per step for LSM-light x2
at batch 4, 48×48 on the 2-core CPU, and 462 ms for LSM-S x2 at batch 16 (fp32) on one H100.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from experiments.results_csv import write_rows
from lsm_jax.training.config_loader import load_config

CASES = {  # name: (packaged config, batch, LR patch)
    "lsm_s_b4_p64": ("lsm_s", 4, 64),
    "lsm_s_b16_p64": ("lsm_s", 16, 64),
    "light_b16_p64": ("lsm_light", 16, 64),
    "light_b4_p48": ("lsm_light", 4, 48),
}
FIELDS = ("case", "model", "scale", "batch", "patch", "semantics", "dtype", "scan_impl", "remat", "devices",
          "platform", "step_s", "img_per_s", "compile_s", "gflop", "matmul_gflops", "floor_s", "step_over_floor",
          "peak_bytes", "compiled_bytes")


def case_config(variant: str, batch: int, patch: int, semantics: str, dtype: str, scan_impl: str, remat: bool):
    """`<variant>:x2_scratch` with the case's settings, as `lsm_jax.train` would read them as flags."""
    overrides = [f"--config.batch_size={batch}", f"--config.patch_size={patch}",
                 f"--config.model.semantics={semantics}", f"--config.model.dtype={dtype}",
                 f"--config.model.remat={remat}"]
    if scan_impl:
        overrides.append(f"--config.model.scan.impl={scan_impl}")
    return load_config(f"{variant}:x2_scratch", overrides)


def compile_case(name: str, semantics: str, dtype: str, scan_impl: str = "", remat: bool = False):
    """The case's compiled step, its initial state and synthetic batch: (compiled, state, batch, config,
    compile_s)."""
    import numpy as np

    from lsm_jax.training import sharding, step as train_step

    variant, batch, patch = CASES[name]
    config = case_config(variant, batch, patch, semantics, dtype, scan_impl, remat)
    mesh = sharding.make_mesh(-1, 1, 1)
    parts = train_step.build(config, mesh)
    state = parts.init()
    rng = np.random.default_rng(0)
    s = int(config.model.upscale)
    local = {"lq": rng.random((batch, patch, patch, 3), np.float32),
             "gt": rng.random((batch, patch * s, patch * s, 3), np.float32)}
    batch_arrays = sharding.global_batch(local, mesh)
    t0 = time.perf_counter()
    compiled = parts.step.lower(state, batch_arrays).compile()
    return compiled, state, batch_arrays, config, time.perf_counter() - t0


def time_steps(compiled, state, batch_arrays, steps: int):
    """`steps` timed steps (seconds each) and the state after them."""
    import jax
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch_arrays)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return times, state


def step_gflop(compiled) -> float:
    """The compiled step's FLOPs in GFLOP, counted from its HLO as XLA's cost analysis counts them, but
    with a while loop's body counted trip-count times (`lsm_jax.pod.profile.collect_ops`): the cost
    analysis counts it once, and on a CPU the window attention's backward is a `lax.scan`."""
    from lsm_jax.pod import hlo_cost, profile
    from lsm_jax.pod.ceilings import Ceiling
    ops = profile.collect_ops(hlo_cost.parse_module(compiled.as_text()), Ceiling("", 1.0, 1.0, ""))
    return sum(o.flops for o in ops) / 1e9


def run_case(name: str, semantics: str, dtype: str, steps: int, scan_impl: str, remat: bool) -> dict:
    """Times one case in this process."""
    import jax
    import numpy as np

    variant, batch, patch = CASES[name]
    compiled, state, batch_arrays, config, compile_s = compile_case(name, semantics, dtype, scan_impl, remat)
    s = int(config.model.upscale)
    mem = compiled.memory_analysis()
    compiled_bytes = None
    if mem is not None:
        compiled_bytes = int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                             - mem.alias_size_in_bytes)
    _, state = time_steps(compiled, state, batch_arrays, 1)   # one untimed step: first-run allocations
    times, state = time_steps(compiled, state, batch_arrays, steps)
    stats = jax.local_devices()[0].memory_stats() or {}
    step_s = float(np.median(times))
    # Baseline measured in the same run: this device's large-matmul speed gives the step's floor.
    from experiments.bench_inference import matmul_gflops
    gflop = step_gflop(compiled)
    baseline = matmul_gflops(jax.devices()[0])[0]
    return dict(case=name, model=variant, scale=s, batch=batch, patch=patch, semantics=semantics, dtype=dtype,
                scan_impl=config.model.scan.impl, remat=remat, devices=jax.device_count(),
                platform=jax.devices()[0].platform, step_s=round(step_s, 5), img_per_s=round(batch / step_s, 3),
                compile_s=round(compile_s, 2), gflop=round(gflop, 2), matmul_gflops=round(baseline, 1),
                floor_s=round(gflop / baseline, 4), step_over_floor=round(step_s * baseline / gflop, 2),
                peak_bytes=stats.get("peak_bytes_in_use"),
                compiled_bytes=compiled_bytes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--semantics", nargs="+", default=["paper", "reference"], choices=["paper", "reference"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per case (median reported)")
    parser.add_argument("--scan_impl", default="", help="override the network's scan.impl")
    parser.add_argument("--remat", action="store_true", help="rematerialise each block")
    parser.add_argument("--quick", action="store_true", help="light_b4_p48 only, float32, both semantics, 5 steps")
    parser.add_argument("--csv", default="", help="also write the rows to this CSV file")
    parser.add_argument("--in_process", action="store_true", help="run the cases in this process")
    parser.add_argument("--_one", nargs=3, metavar=("CASE", "SEMANTICS", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be ≥ 1")
    if args._one:
        print(json.dumps(run_case(*args._one, args.steps, args.scan_impl, args.remat)), flush=True)
        return 0
    if args.quick:
        args.cases, args.dtypes, args.steps = ["light_b4_p48"], ["float32"], min(args.steps, 5)
    rows = []
    for name in args.cases:
        for semantics in args.semantics:
            for dtype in args.dtypes:
                if args.in_process:
                    row = run_case(name, semantics, dtype, args.steps, args.scan_impl, args.remat)
                else:  # a fresh process per case: clean allocator peaks and no cross-case interference
                    cmd = [sys.executable, "-m", "experiments.bench_train", "--_one", name, semantics, dtype,
                           "--steps", str(args.steps)]
                    cmd += ["--scan_impl", args.scan_impl] if args.scan_impl else []
                    cmd += ["--remat"] if args.remat else []
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode:
                        tail = out.stderr.strip().splitlines()[-1:] or ["?"]
                        row = dict(case=name, semantics=semantics, dtype=dtype, error=tail[0])
                    else:
                        row = json.loads(out.stdout.strip().splitlines()[-1])
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.csv:
        write_rows(args.csv, rows, fields=FIELDS + ("error",))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
