r"""The training step against the authors' PyTorch code, both measured in this run on this machine.

    python -m experiments.bench_train_vs_reference --reference-repo PATH [--torch-python PATH]
        [--case light_b4_p48] [--semantics reference,paper] [--reps 5] [--rounds 3] [--profile]
        [--revision after] [--csv experiments/results/bench_train_vs_reference.csv]

PATH is a checkout of the authors' code (github.com/MingyuChoi-run/LSM; nothing of it is copied here);
`--torch-python` a Python with torch, numpy and einops (default: this one). The case is issue 21's:
LSM-light x2 (the x2_scratch network: embed 60, depth 6×4, 64 tokens), batch 4, 48² LR, float32.

- **Theirs**: `experiments/reference_worker.py` in train mode, run under `--torch-python`: their network
  in training mode (drop path 0.1 as their recipe builds it), L1 loss, backward, AdamW (lr 2e-4,
  betas 0.9/0.9, no weight decay) and the EMA of the weights (0.999), as one iteration of their recipe
  computes; torch's default thread count.
- **Ours**: the jitted step of `lsm-train` on the same config (`experiments.bench_train`'s case: forward,
  L1 loss, backward, AdamW, EMA), under `reference` semantics (their computation) and `paper`.

The two sides alternate for `--rounds` rounds of `--reps` timed steps, each after a warm-up step; the
medians over all rounds are compared, with each side's spread (min-max over the timed steps).
Printed and written per semantics: `torch_s`, `jax_s`, `speedup` = torch_s / jax_s (the ratio issue 21's
target is stated in: ≥ 1.5×), and the matmul-floor ratio of our step (`step_over_floor`: the step
against the compiled program's FLOPs, `bench_train.step_gflop`, at this machine's large-matmul speed,
measured in the same run). Run it on a quiet machine: both sides use every core.

`--profile` then records 3 more steps of each side under its own profiler (torch.profiler's self CPU
time per aten op; `lsm_jax.pod.profile`'s trace of our `reference` step per HLO op) and sums them by
**op kind**, the one split both sides can make (torch's ops carry no source module, so attention's
matmuls count as matmul/conv here, unlike the source-based categories of docs/pod.md): matmul/conv,
sort/gather/scatter, layout (copies, concatenation, rolls, pads), elementwise/norm (LayerNorm, GELU,
softmax, adds, the optimizer and EMA), scan, other. Written to `<csv stem>_ops.csv`.

Every row carries `revision` (a label: `before` / `after` a change) and `commit` (the code measured,
`+` when it had uncommitted changes); a run replaces the rows of its own revision and keeps the
others', so the docs can set a change's before and after side by side (each revision's own torch
timing beside it: the ratio is what compares across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from experiments.bench_train import CASES, compile_case, step_gflop, time_steps
from experiments.bench_vs_reference import reference_kwargs, run_reference
from experiments.results_csv import head_commit, replace_rows

HERE = Path(__file__).resolve().parent


TORCH_KINDS = (  # (kind, substrings of aten op names), first match wins; anything else is elementwise/norm
    ("matmul/conv", ("conv", "::mm", "addmm", "bmm", "::linear", "::matmul", "::dot")),
    ("sort/gather/scatter", ("sort", "gather", "scatter", "::index", "take_along", "embedding")),
    ("scan", ("cumsum", "cumprod", "logcumsumexp")),
    ("layout", ("copy", "clone", "contiguous", "::cat", "stack", "roll", "pad", "repeat", "::flip", "unfold",
                "pixel_shuffle", "::view", "reshape", "permute", "transpose", "as_strided", "expand", "::slice",
                "select", "narrow", "split", "chunk", "unbind", "squeeze", "empty", "zeros")),
)
JAX_KINDS = {"dot": "matmul/conv", "conv": "matmul/conv", "sort": "sort/gather/scatter",
             "gather": "sort/gather/scatter", "scatter": "sort/gather/scatter", "layout": "layout",
             "elementwise": "elementwise/norm", "reduce": "elementwise/norm"}
KINDS = ("matmul/conv", "sort/gather/scatter", "scan", "layout", "elementwise/norm", "other")


def torch_kind(op: str) -> str:
    return next((kind for kind, keys in TORCH_KINDS if any(k in op for k in keys)), "elementwise/norm")


def kind_rows(side: str, per_kind: dict[str, float], step_s: float) -> list[dict]:
    total = sum(per_kind.values()) or 1.0
    return [dict(side=side, kind=k, ms=round(per_kind.get(k, 0.0), 3), share=round(per_kind.get(k, 0.0) / total, 4),
                 profiled_ms=round(total, 2), step_ms=round(step_s * 1e3, 1)) for k in KINDS]


def profile_kinds(case: dict, config, args, workdir: Path, torch_step_s: float) -> list[dict]:
    """Both sides' measured time per op kind (3 profiled steps each; see the module docstring)."""
    from lsm_jax.pod import profile
    info = run_reference(args.torch_python, dict(case, reps=1, profile_steps=3), workdir)
    theirs: dict[str, float] = {}
    for op, ms_ in info["ops"].items():
        theirs[torch_kind(op)] = theirs.get(torch_kind(op), 0.0) + ms_
    config = config.copy_and_resolve_references()
    config.model.semantics = "reference"
    prof = profile.profile_step(config, None, int(config.batch_size))
    ours: dict[str, float] = {}
    for o in prof.ops:
        kind = "scan" if o.category == "scan" else JAX_KINDS.get(o.kind, "other")
        ours[kind] = ours.get(kind, 0.0) + (o.measured_s or 0.0) * 1e3
    return kind_rows("torch", theirs, torch_step_s) + kind_rows("lsm-jax reference", ours, prof.measured_step_s or 0.0)


def bench(case_name: str, semantics_list: list[str], args, workdir: Path) -> tuple[list[dict], list[dict]]:
    import jax

    from experiments.bench_inference import allocator, matmul_gflops
    _, batch, patch = CASES[case_name]
    compiled = {s: compile_case(case_name, s, "float32") for s in semantics_list}
    config = next(iter(compiled.values()))[3]
    scale = int(config.model.upscale)
    rng = np.random.default_rng(0)
    np.savez(workdir / "batch.npz", lq=rng.random((batch, 3, patch, patch), dtype=np.float32),
             gt=rng.random((batch, 3, patch * scale, patch * scale), dtype=np.float32))
    case = dict(mode="train", repo=str(Path(args.reference_repo).resolve()), arch=config.model.arch,
                kwargs=reference_kwargs(config.model), input_npz=str(workdir / "batch.npz"), reps=args.reps,
                seed=0, lr=float(config.optim.lr), betas=[float(config.optim.b1), float(config.optim.b2)],
                ema_decay=float(config.ema_decay))
    torch_times: list[float] = []
    ours: dict[str, list[float]] = {s: [] for s in semantics_list}
    states = {s: c[1] for s, c in compiled.items()}
    info: dict = {}
    for _ in range(args.rounds):
        info = run_reference(args.torch_python, case, workdir)
        torch_times += info["times"]
        for s, (step, _, batch_arrays, _, _) in compiled.items():
            _, states[s] = time_steps(step, states[s], batch_arrays, 1)          # warm-up, as theirs
            times, states[s] = time_steps(step, states[s], batch_arrays, args.reps)
            ours[s] += times
    baseline = matmul_gflops(jax.devices()[0])[0]
    torch_s = statistics.median(torch_times)
    rows = []
    for s, (step, _, _, _, compile_s) in compiled.items():
        jax_s = statistics.median(ours[s])
        gflop = step_gflop(step)
        rows.append(dict(
            case=case_name, model="LSM-light", scale=scale, batch=batch, lr_hw=f"{patch}x{patch}", dtype="float32",
            semantics=s, torch_s=round(torch_s, 4), torch_min_s=round(min(torch_times), 4),
            torch_max_s=round(max(torch_times), 4), jax_s=round(jax_s, 4), jax_min_s=round(min(ours[s]), 4),
            jax_max_s=round(max(ours[s]), 4), speedup=round(torch_s / jax_s, 3), steps=len(ours[s]),
            compile_s=round(compile_s, 2), gflop=round(gflop, 2), matmul_gflops=round(baseline, 1),
            floor_s=round(gflop / baseline, 4), step_over_floor=round(jax_s * baseline / gflop, 2),
            torch_version=info.get("torch_version"), torch_threads=info.get("torch_threads"),
            allocator=allocator()))
    kinds = profile_kinds(case, config, args, workdir, torch_s) if args.profile else []
    return rows, kinds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-repo", required=True, help="a checkout of github.com/MingyuChoi-run/LSM")
    ap.add_argument("--torch-python", default=sys.executable, help="a Python with torch, numpy and einops")
    ap.add_argument("--case", default="light_b4_p48", choices=list(CASES))
    ap.add_argument("--semantics", default="reference,paper", help="comma-separated: reference, paper")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also each side's measured time per op kind")
    ap.add_argument("--revision", default="after", help="the label of this code's rows (default: after)")
    ap.add_argument("--csv", default=str(HERE / "results/bench_train_vs_reference.csv"))
    args = ap.parse_args(argv)
    if not (Path(args.reference_repo) / "basicsr/archs/lsm_light_arch.py").is_file():
        ap.error(f"--reference-repo {args.reference_repo}: no basicsr/archs/lsm_light_arch.py there")
    semantics = [s for s in args.semantics.split(",") if s]
    if not semantics or set(semantics) - {"reference", "paper"}:
        ap.error(f"--semantics {args.semantics}: give reference, paper or both")
    if args.reps < 1 or args.rounds < 1:
        ap.error("--reps and --rounds must be ≥ 1")
    import jax
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows, kinds = bench(args.case, semantics, args, Path(tmp))
    commit = head_commit()
    rows, kinds = ([dict(r, revision=args.revision, commit=commit) for r in rs] for rs in (rows, kinds))
    for row in rows + kinds:
        print(json.dumps(row), flush=True)
    replace_rows(args.csv, rows, ("revision",))
    if kinds:
        replace_rows(Path(args.csv).with_name(Path(args.csv).stem + "_ops.csv"), kinds, ("revision",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
