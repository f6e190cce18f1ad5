r"""The pod-plan table of docs/pod.md: train's step for LSM, LSM-S and LSM-light x2 (patch 64) compiled for
v4-8, v5e-16, v5e-256 and v5p-32 (and the inference forward), one row at a time, most important
first, each row appended to the CSV as soon as it is compiled (so a partial run is still usable).

    python -m experiments.pod_plan_table [--out experiments/results/pod_plan.csv] [--only N] [--case N ...]
    python -m experiments.pod_plan_table --render    # CSV -> Markdown (docs/pod.md's table)

Run from the repository root. Needs the package
installed (`pip install -e .`) and libtpu (pip install -e '.[tpu]'). Compiling a full model takes minutes
on a small CPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from experiments.results_csv import append_rows
from lsm_jax.pod import fit, plan as pod_plan, tables  # noqa: E402
from lsm_jax.pod.plan_config import load_tpu_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"lsm": "lsm:x2_scratch", "lsm_s": "lsm_s:x2_scratch", "lsm_light": "lsm_light:x2_scratch"}
INFER_CONFIG = "lsm_s:x4_finetune"
TOPOLOGIES = {"v4-8": "v4:2x2x1", "v5e-16": "v5e:4x4", "v5e-256": "v5e:16x16", "v5p-32": "v5p:2x2x4",
              "v5p (1 chip)": "v5p:1x1x1"}

# (kind, variant, topology, global batch): the order is the order of importance.
CASES = [
    ("train", "lsm", "v5e:4x4", 32),        # target: LSM x2, recipe batch, on v5e-16
    ("train", "lsm_s", "v5p:1x1x1", 16),    # target: the H100 anchor's case on one v5p chip
    ("train", "lsm_light", "v5e:4x4", 32),
    ("train", "lsm_s", "v5e:4x4", 32),
    ("train", "lsm", "v5e:16x16", 32),      # rejected at once: 32 < 256 batch shards
    ("train", "lsm_s", "v5e:16x16", 32),
    ("train", "lsm_light", "v5e:16x16", 32),
    ("train", "lsm", "v5e:4x4", 64),        # a second point per chip: memory slope per image
    ("train", "lsm", "v4:2x2x1", 32),
    ("train", "lsm", "v5p:2x2x4", 32),
    ("train", "lsm", "v5e:16x16", 256),
    ("infer", "lsm_s4", "v5p:1x1x1", 256),
    ("train", "lsm_light", "v5e:4x4", 128),
    ("train", "lsm_s", "v5e:4x4", 64),
    ("train", "lsm", "v5p:2x2x4", 128),
    ("train", "lsm", "v4:2x2x1", 64),
    ("infer", "lsm_s4", "v5p:1x1x1", 1024),
    ("train", "lsm_s", "v4:2x2x1", 32),
    ("train", "lsm_light", "v4:2x2x1", 32),
    ("train", "lsm_s", "v5p:2x2x4", 32),
    ("train", "lsm_light", "v5p:2x2x4", 32),
    ("train", "lsm_s", "v5e:16x16", 256),
    ("train", "lsm_light", "v5e:16x16", 256),
    # The largest per-chip batch per chip kind, from the two largest fitting rows
    # (batch 1: also compile one image per device more, to test the bound; 0: the search only).
    ("fit", "lsm", "v5e:4x4", 1),
    ("fit", "lsm_s", "v5e:4x4", 1),
    ("fit", "lsm_light", "v5e:4x4", 1),
    ("fit", "lsm", "v4:2x2x1", 0),
    ("fit", "lsm", "v5p:2x2x4", 0),
]


def _train_config(variant: str, batch: int):
    config = load_tpu_config(CONFIGS[variant])
    config.batch_size = batch
    return config


def fit_rows(variant: str, topology: str, out: Path, bound: bool) -> list[pod_plan.PlanRow]:
    """`pod_plan --fit`'s search, seeded with the table's rows for this variant and topology; `bound`
    also compiles one image per device more (on TPU it can still fit: the compiler recomputes)."""
    rows = [r for r in tables.read_csv(out) if (r.kind, r.variant, r.topology, r.mesh.split("×")[1:]) ==
            ("train", variant, topology, ["1", "1"]) and r.dtype == "float32" and not r.remat and r.grad_accum == 1]
    if sum(r.status == "ok" for r in rows) < 2:
        raise SystemExit(f"fit {variant} {topology}: needs two fitting rows in {out}")
    found = fit.fit_largest(CONFIGS[variant], topology, (-1, 1, 1), "float32", False, 1, rows)
    best = max((r for r in found if r.status == "ok"), key=lambda r: r.global_batch, default=None)
    if bound and best is not None and all(r.global_batch != best.global_batch + best.devices for r in found):
        above = pod_plan.plan_train(_train_config(variant, best.global_batch + best.devices), topology)
        above.reason = (above.reason + "; " if above.reason else "") + "largest-fit bound (one per device more)"
        found.append(above)
    return found


def run_case(kind: str, variant: str, topology: str, batch: int) -> pod_plan.PlanRow:
    if kind == "infer":
        config = load_tpu_config(INFER_CONFIG)
        return pod_plan.plan_infer(config.model, topology, batch, 1, "lsm_s")
    return pod_plan.plan_train(_train_config(variant, batch), topology, (-1, 1, 1))


def _append(out: Path, row: pod_plan.PlanRow) -> None:
    """One more row, with the machine, date and versions of this run (earlier rows keep theirs)."""
    append_rows(out, [pod_plan.as_dict(row)])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(REPO / "experiments/results/pod_plan.csv"))
    p.add_argument("--only", type=int, default=len(CASES), help="the first N cases")
    p.add_argument("--case", type=int, action="append", help="only these case numbers (0-based)")
    p.add_argument("--render", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    if args.render:
        rows = tables.read_csv(out)
        for r in rows:  # the compiler's usable HBM (rows written before the table carried it)
            usable = pod_plan.chips.usable_hbm_bytes(r.device_kind, max(r.devices // max(r.chips, 1), 1))
            if r.status == "ok" and usable and r.total_gib is not None:
                r.hbm_gib = usable / 2**30
                r.headroom_gib = r.hbm_gib - r.total_gib
        order = {name: i for i, name in enumerate(("v4:2x2x1", "v5e:4x4", "v5e:16x16", "v5p:2x2x4", "v5p:1x1x1"))}
        rows.sort(key=lambda r: (r.kind != "train", ("lsm", "lsm_s", "lsm_light").index(r.variant)
                                 if r.variant in ("lsm", "lsm_s", "lsm_light") else 9,
                                 order.get(r.topology, 9), r.global_batch, r.image))
        for r in rows:  # the table's note column, shortened
            r.reason = r.reason.replace("the TPU cost model gave no time estimate for this program", "no cost-model time")
        print(tables.markdown(rows, tables.COMPACT))
        return 0
    chosen = [CASES[i] for i in args.case] if args.case else CASES[:args.only]
    for kind, variant, topology, batch in chosen:
        if kind == "fit":
            if any(r.variant == variant and r.topology == topology and "largest-fit" in r.reason
                   for r in tables.read_csv(out)):
                continue
            t0 = time.perf_counter()
            for row in fit_rows(variant, topology, out, bound=bool(batch)):
                print(f"{time.perf_counter() - t0:.0f}s {tables.brief(row)}", flush=True)
                _append(out, row)
            continue
        done = {(r["kind"], r["variant"], r["topology"], r["global_batch"], r["image"])
                for r in csv.DictReader(open(out))} if out.exists() else set()  # re-read: rows may be added
        key = (kind, "lsm_s" if kind == "infer" else variant, topology, str(1 if kind == "infer" else batch),
               str(batch if kind == "infer" else 64))
        if key in done:
            continue
        t0 = time.perf_counter()
        row = run_case(kind, variant, topology, batch)
        print(f"{time.perf_counter() - t0:.0f}s {tables.brief(row)}", flush=True)
        _append(out, row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
