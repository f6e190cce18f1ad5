r"""Inference speed against the authors' PyTorch code, both measured in this run on this machine.

    python -m experiments.bench_vs_reference --reference-repo PATH [--torch-python PATH]
        [--cases light_x4_64,s_x2_64,s_x4_128] [--reps 5] [--rounds 2]
        [--csv experiments/results/bench_vs_reference.csv]

PATH is a checkout of the authors' code (github.com/MingyuChoi-run/LSM); nothing of it is copied
into this repository. `--torch-python` is a Python with torch, numpy and einops (default: this one);
`experiments/reference_worker.py` runs under it (as a file: that Python need not have lsm_jax), builds their network with the official options of
the case, random-initialised with a fixed seed, and times its forward (eval mode, inference_mode,
batch 1, its default thread count). The same state_dict goes through `lsm_jax.convert`'s mapping
into our network (`reference` semantics: the computation their code does), which `upscale`'s jitted
forward then runs on the same input. Both sides alternate for `--rounds` rounds of `--reps` timed
runs after a warm-up call; the medians over all rounds are compared.

Per case it prints one JSON line and writes a CSV row:
  torch_s, jax_s   median forward seconds
  speedup          torch_s / jax_s (the ratio the targets are stated in)
  max_abs_diff     largest |difference| of the two outputs (checks both sides computed the same thing)
  matmul_gflops, fwd_over_floor  as in bench_inference.py (XLA's flops / large-matmul speed)
Expected on this 2-core CPU: speedups of about 3x (LSM-light x4 64²) and 2.5-3x (LSM-S); see README.
Run from the repository root, as every experiment runs (see experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.bench_inference import CASES, MODEL_NAMES, allocator, cost_flops, matmul_gflops
from experiments.results_csv import write_rows
from lsm_jax.inference.forward import make_forward
from lsm_jax.model.network import LSM
from lsm_jax.model.variants import network_config
from lsm_jax.porting.checkpoint import convert_state_dict

HERE = Path(__file__).resolve().parent


def reference_kwargs(cfg) -> dict:
    """The authors' constructor arguments for the network `cfg` describes."""
    return dict(upscale=int(cfg.upscale), in_chans=int(cfg.in_chans), embed_dim=int(cfg.embed_dim),
                depth=list(cfg.depth), num_heads=list(cfg.num_heads), mlp_ratio=float(cfg.mlp_ratio),
                split_size=list(cfg.split_size), num_tokens=int(cfg.num_tokens), d_state=int(cfg.d_state),
                rmin=float(cfg.rmin), rmax=float(cfg.rmax), img_range=float(cfg.img_range))


def run_reference(torch_python: str, case: dict, workdir: Path) -> dict:
    path = workdir / "case.json"
    path.write_text(json.dumps(case))
    done = subprocess.run([torch_python, str(HERE / "reference_worker.py"), str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"reference_worker.py failed ({torch_python}): {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(name: str, args, workdir: Path) -> dict:
    variant, scale, side = CASES[name]
    cfg = network_config(variant, scale)
    cfg.semantics = "reference"
    rng = np.random.default_rng(0)
    x = rng.random((1, 3, side, side), dtype=np.float32)
    np.savez(workdir / "x.npz", x=x)
    case = dict(repo=str(Path(args.reference_repo).resolve()), arch=cfg.arch, kwargs=reference_kwargs(cfg),
                input_npz=str(workdir / "x.npz"), weights_npz=str(workdir / "w.npz"),
                output_npz=str(workdir / "y.npz"), reps=args.reps, seed=0)
    torch_times, jax_times, info = [], [], {}
    compiled = params = None
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
    for _ in range(args.rounds):
        info = run_reference(args.torch_python, case, workdir)
        torch_times += info["times"]
        if compiled is None:
            with np.load(workdir / "w.npz") as data:
                tree = convert_state_dict({k: data[k] for k in data.files}, cfg, "reference weights")
            model = LSM(cfg, rngs=nnx.Rngs(0))
            state = nnx.state(model, nnx.Param)
            nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, tree))
            nnx.update(model, state)
            forward, params = make_forward(model)
            t0 = time.perf_counter()
            compiled = forward.lower(params, x_nhwc).compile()
            compile_s = time.perf_counter() - t0
            y = np.asarray(jax.block_until_ready(compiled(params, x_nhwc)))
        for _ in range(args.reps):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(params, x_nhwc))
            jax_times.append(time.perf_counter() - t0)
    with np.load(workdir / "y.npz") as data:
        y_ref = data["y"].transpose(0, 2, 3, 1)
    torch_s, jax_s = statistics.median(torch_times), statistics.median(jax_times)
    gflop = cost_flops(compiled) / 1e9
    baseline = matmul_gflops(jax.devices()[0])[0]
    return dict(case=name, model=MODEL_NAMES[variant], scale=scale, lr_hw=f"{side}x{side}", semantics="reference",
                torch_s=round(torch_s, 4), jax_s=round(jax_s, 4), speedup=round(torch_s / jax_s, 2),
                torch_min_s=round(min(torch_times), 4), jax_min_s=round(min(jax_times), 4),
                max_abs_diff=float(np.abs(y - y_ref).max()), compile_s=round(compile_s, 2), gflop=round(gflop, 2),
                matmul_gflops=round(baseline, 1), fwd_over_floor=round(jax_s / (gflop / baseline), 2),
                reps=len(jax_times), torch_version=info.get("torch_version"),
                torch_threads=info.get("torch_threads"), jax_version=jax.__version__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-repo", required=True, help="a checkout of github.com/MingyuChoi-run/LSM")
    ap.add_argument("--torch-python", default=sys.executable, help="a Python with torch, numpy and einops")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--csv", default=str(HERE / "results/bench_vs_reference.csv"))
    args = ap.parse_args(argv)
    arch_file = Path(args.reference_repo) / "basicsr/archs/lsm_arch.py"
    if not arch_file.is_file():
        ap.error(f"--reference-repo {args.reference_repo}: no basicsr/archs/lsm_arch.py there")
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"--cases: unknown {unknown} (known: {', '.join(CASES)})")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, allocator {allocator()}, "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            row = bench(name, args, Path(tmp))
            print(json.dumps(row), flush=True)
            rows.append(row)
            write_rows(args.csv, rows)      # after every case: a failed later case keeps the earlier ones
    return 0


if __name__ == "__main__":
    sys.exit(main())
