"""float32 against bfloat16 compute for the pod plan's headline case: LSM-S x2, global batch 16, one v5p chip.

    python -m experiments.pod_plan_dtype        # writes experiments/results/pod_plan_dtype.csv (two TPU compiles)

Runs `lsm-pod-plan --config lsm_s:x2_scratch --topology v5p:1x1x1 --batch 16 --dtype float32,bfloat16` and keeps
its rows with the machine, date and versions. `bfloat16` is `config.model.dtype`: matmuls and convolutions in
bf16, parameters, optimizer state, LayerNorm statistics, softmax, the LRU states and the loss in float32. Memory
is the compiler's figure; the step time and MFU are the TPU cost model's **estimates**, and so are the roofline
columns (`lsm_jax.pod.profile`). Each row records the commit it compiled. Run from the repository root; needs
libtpu.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

from experiments.results_csv import head_commit, write_rows

ARGS = ["--config", "lsm_s:x2_scratch", "--topology", "v5p:1x1x1", "--batch", "16", "--dtype", "float32,bfloat16"]
OUT = Path(__file__).resolve().parent / "results" / "pod_plan_dtype.csv"


def keep(plan_csv: str | Path, out: Path = OUT) -> Path:
    """The plan's CSV rows, with the commit compiled and the metadata columns of this run."""
    commit = head_commit()
    with open(plan_csv, newline="") as fh:
        rows = [dict(r, commit=commit) for r in csv.DictReader(fh)]
    return write_rows(out, rows)


def main(argv: list[str] | None = None) -> int:
    from lsm_jax import pod_plan
    with tempfile.TemporaryDirectory() as tmp:
        plan_csv = Path(tmp) / "plan.csv"
        status = pod_plan.main([*ARGS, "--csv", str(plan_csv), *(sys.argv[1:] if argv is None else argv)])
        if status:
            return status
        print(f"wrote {keep(plan_csv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
