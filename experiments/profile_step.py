r"""Where the training step's time goes, per op category: the roofline estimate for LSM-S x2 at batch 16 on
one v5p chip (float32) and for LSM x2 at the recipe batch 32 in bfloat16 on a v5e-16 (compiled here through
libtpu; the TPU cost model's step beside it where it gives one), and the tiny LSM-light step on this CPU,
estimated and measured (`lsm_jax.pod.profile`).

    python -m experiments.profile_step [--only cpu|v5p|v5e16_bf16] [--revision after]
        [--out experiments/results/profile_step.csv]

(from the repository root). Every row carries `revision` (a label: `before` / `after` a change) and
`commit` (the code that was compiled); a case reruns under its revision and keeps every other
(case, revision)'s rows, so the docs can set a change's before and after side by side. Rows: per
program, the total, each category, each source module and the top-20 ops; `roofline_ms` and
`cost_model_ms` are estimates, `measured_ms` is measured (CPU only). Run the CPU case on a quiet machine:
its ceilings and its step are measured. A full-model TPU compile takes 4-16 CPU-minutes and up to 15 GB
of memory (one case per process is the safe way: `--only`). Each case's rows are written when it is done.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from experiments.results_csv import head_commit, replace_rows  # noqa: E402
from lsm_jax.pod import profile  # noqa: E402
from lsm_jax.pod.plan_config import load_tpu_config  # noqa: E402
from lsm_jax.training.config_loader import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# (name, config spec, topology or None for this CPU, global batch or None for the recipe's, compute dtype)
CASES = [("cpu", "lsm_light:tiny", None, None, "float32"),
         ("v5p", "lsm_s:x2_scratch", "v5p:1x1x1", 16, "float32"),
         ("v5e16_bf16", "lsm:x2_scratch", "v5e:4x4", 32, "bfloat16")]
FIELDS = ["case", "revision", "commit", "dtype", "program", "target", "level", "rank", "name", "kind", "category",
          "module", "source", "ops", "runs", "flops", "bytes", "roofline_ms", "roofline_share", "bound",
          "roofline_mfu", "roofline_images_per_s_per_chip", "batch", "cost_model_ms", "measured_ms",
          "measured_share", "measured_busy_ms", "measured_step_ms", "xla_flops", "xla_bytes", "device",
          "peak_flops", "bandwidth", "ceiling", "case_s"]


def run_case(spec: str, topology: str | None, batch: int | None, dtype: str) -> tuple[profile.Profile, float]:
    overrides = [f"--config.model.dtype={dtype}"]
    config = load_tpu_config(spec, overrides) if topology else load_config(spec, overrides)
    t0 = time.perf_counter()
    prof = profile.profile_step(config, topology, batch,
                                program=f"train {spec} batch {batch or config.batch_size} {dtype}")
    return prof, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=[c[0] for c in CASES], help="one case (default: all)")
    p.add_argument("--revision", default="after", help="the label of this code's rows (default: after)")
    p.add_argument("--out", default=str(REPO / "experiments/results/profile_step.csv"))
    args = p.parse_args()
    commit = head_commit()
    for name, spec, topology, batch, dtype in CASES:
        if args.only and name != args.only:
            continue
        prof, seconds = run_case(spec, topology, batch, dtype)
        print("\n\n".join(prof.tables()), flush=True)
        rows = [dict(r, case=name, revision=args.revision, commit=commit, dtype=dtype, ceiling=prof.ceiling.note,
                     case_s=round(seconds, 1)) for r in prof.rows(top=20)]
        replace_rows(args.out, rows, ("case", "revision"), FIELDS)   # a rerun replaces its own (case, revision)
        print(f"{name}: {seconds:.0f} s; rows in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
