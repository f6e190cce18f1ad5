"""Append a `make demo` run's summary to the committed results, so the README can quote it.

    lsm-demo -o demo_out && python -m experiments.record_demo demo_out/summary.json \
        [--note "what else ran on the machine"] [--csv experiments/results/demo.csv]

The row keeps every figure of `summary.json` (Set5 x2 PSNR/SSIM of the model and of bicubic, the
margin, steps, training and compile time) plus the machine, date and versions that
`results_csv.write_rows` adds. Rows already in the CSV are kept: one row per recorded run. Run from the
repository root, as every experiment runs (see experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.results_csv import append_rows

FIELDS = ("steps", "set5_x2_psnr", "set5_x2_ssim", "bicubic_psnr", "bicubic_ssim", "margin_db",
          "train_minutes", "step_s", "compile_s", "wall_minutes")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", type=Path, help="the demo's summary.json")
    ap.add_argument("--csv", type=Path, default=Path(__file__).resolve().parent / "results" / "demo.csv")
    ap.add_argument("--note", default="", help="conditions of the run (e.g. other work on the machine)")
    args = ap.parse_args(argv)
    try:
        summary = json.loads(args.summary.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"record_demo: error: cannot read {args.summary}: {exc}") from None
    missing = [k for k in FIELDS if k not in summary]
    if missing:
        raise SystemExit(f"record_demo: error: {args.summary} lacks {', '.join(missing)}")
    row = {**{k: summary[k] for k in FIELDS}, "note": args.note}
    print(f"wrote {append_rows(args.csv, [row])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
