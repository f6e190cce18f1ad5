r"""Where the training step's time goes, per op category: the roofline estimate for LSM-S x2 at batch 16 on
one v5p chip (compiled here through libtpu; the TPU cost model's step beside it), and the tiny LSM-light
step on this CPU, estimated and measured (`lsm_jax.pod.profile`).

    python -m experiments.profile_step [--only cpu|v5p] [--out experiments/results/profile_step.csv]

(from the repository root; `--only` reruns one case and keeps the other's rows). Rows: per program, the
total, each category, each source module and the top-20 ops; `roofline_ms` and `cost_model_ms` are
estimates, `measured_ms` is measured (CPU only). Run the CPU case on a quiet machine: its ceilings and
its step are measured. The LSM-S compile takes several minutes and about 8 GB of memory. Each case's
rows are written as soon as it is done.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from experiments.results_csv import write_rows  # noqa: E402
from lsm_jax.pod import profile  # noqa: E402
from lsm_jax.pod.plan_config import load_tpu_config  # noqa: E402
from lsm_jax.training.config_loader import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# (name, config spec, topology or None for this CPU, global batch or None for the recipe's)
CASES = [("cpu", "lsm_light:tiny", None, None),
         ("v5p", "lsm_s:x2_scratch", "v5p:1x1x1", 16)]
FIELDS = ["program", "target", "level", "rank", "name", "kind", "category", "module", "source", "ops", "runs",
          "flops", "bytes", "roofline_ms", "roofline_share", "bound", "roofline_mfu", "roofline_images_per_s_per_chip",
          "batch", "cost_model_ms", "measured_ms", "measured_share", "measured_busy_ms", "measured_step_ms",
          "xla_flops", "xla_bytes", "device", "peak_flops", "bandwidth", "ceiling", "case_s"]


def run_case(spec: str, topology: str | None, batch: int | None) -> tuple[profile.Profile, float]:
    config = load_tpu_config(spec) if topology else load_config(spec)
    t0 = time.perf_counter()
    prof = profile.profile_step(config, topology, batch, program=f"train {spec} batch {batch or config.batch_size}")
    return prof, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=[c[0] for c in CASES], help="one case (default: all)")
    p.add_argument("--out", default=str(REPO / "experiments/results/profile_step.csv"))
    args = p.parse_args()
    rows = {}
    if args.only and Path(args.out).exists():      # rerunning one case keeps the others' rows
        with open(args.out, newline="") as fh:
            for r in csv.DictReader(fh):
                rows.setdefault(r["target"], []).append(r)
    for name, spec, topology, batch in CASES:
        if args.only and name != args.only:
            continue
        prof, seconds = run_case(spec, topology, batch)
        print("\n\n".join(prof.tables()), flush=True)
        rows[topology or "cpu"] = [dict(r, ceiling=prof.ceiling.note, case_s=round(seconds, 1))
                                   for r in prof.rows(top=20)]
        order = [c[2] or "cpu" for c in CASES]
        write_rows(args.out, [r for t in sorted(rows, key=lambda t: order.index(t) if t in order else len(order)) for r in rows[t]], FIELDS)
        print(f"{name}: {seconds:.0f} s; rows in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
