r"""The committed files of the ring-ablation study (configs/studies/ring_ablation.py), from its workdir.

    lsm-study --config studies/ring_ablation --workdir studies/ring_ablation     # the 30 runs
    python -m experiments.ring_ablation --workdir studies/ring_ablation

Writes into experiments/results/studies/ring_ablation/ (docs/study.md renders them):

    report.md, report.csv, runs.csv   the study tool's table (mean, 95 % CI, Δ paired by seed vs the
                                      declared baseline) and the per-run results it is rebuilt from
    bicubic.csv                       plain bicubic on the same sets (Set5 x2 files; Gray6 LR made on the fly)
    mechanism_runs.csv                per run: |λ·Mk_A| quantiles, e-folding and memory length, |λ| before/after,
                                      margin over bicubic (lsm_jax.studies.mechanism), training time
    mechanism.csv                     per row: those figures as mean and 95 % t CI over the seeds
    decay.png, memory.png, eigenvalues.png   one panel per row, seeds pooled

`--check` rebuilds report.md and report.csv from the committed runs.csv alone and compares.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from experiments.results_csv import METADATA, write_rows
from experiments.study_tables import RING_ROWS

OUT = Path("experiments/results/studies/ring_ablation")


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_report(workdir: Path, out: Path) -> None:
    """The study tool's report (no eigen figures: mechanism.png's panels replace them), report.csv stamped."""
    from lsm_jax.studies import report
    report.write_report(workdir, out, plots=False)
    for name in ("report.csv", "runs.csv"):   # stamped: machine, date, versions (the tool's own columns kept)
        write_rows(out / name, _read(out / name))


def check(out: Path) -> list[str]:
    """Differences between the committed report and the one rebuilt from runs.csv alone (empty: equal)."""
    from lsm_jax.studies import report
    data = report.table_from_runs(out / "runs.csv")
    problems = []
    if report.markdown(data) != (out / "report.md").read_text():
        problems.append(f"{out / 'report.md'}: differs from the table rebuilt from runs.csv")
    committed = [{k: v for k, v in r.items() if k not in METADATA} for r in _read(out / "report.csv")]
    rebuilt = list(csv.DictReader(report.csv_text(data).splitlines()))
    if committed != rebuilt:
        problems.append(f"{out / 'report.csv'}: differs from the table rebuilt from runs.csv")
    return problems


def bicubic(out: Path) -> dict[str, float]:
    """Bicubic's Y-PSNR/SSIM on Set5 x2 and Gray6 x2 (bicubic.csv); returns {'Set5': psnr, 'Gray6': psnr}."""
    from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
    from lsm_jax.evaluation.scoring import bicubic_upscaler, evaluate_folder
    rows = []
    for name in ("Set5", "Gray6"):
        scores = evaluate_folder(bicubic_upscaler(2), resolve_benchmark_dir(f"data/{name}"), 2, progress=False)
        rows.append(dict(dataset=name, scale=2, psnr=round(scores["psnr"], 4), ssim=round(scores["ssim"], 5),
                         images=len(scores["images"])))
    write_rows(out / "bicubic.csv", rows)
    return {r["dataset"]: r["psnr"] for r in rows}


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    from lsm_jax.studies import statistics as st
    s = st.mean_ci(values, 0.95)
    return s.mean, s.lo, s.hi


def mechanism(workdir: Path, out: Path, bicubic_psnr: dict[str, float]) -> None:
    """Per run and per row: the decay, memory and eigenvalue figures, and the margin over bicubic."""
    from lsm_jax.runtime import compile_cache
    from lsm_jax.studies import mechanism as mech
    from lsm_jax.studies.report import collect
    compile_cache.configure()
    data = collect(workdir)
    per_run, rows = [], []
    for row in data["rows"]:
        name = RING_ROWS.get(row["label"], row["label"])
        runs = []
        for result in row["results"]:
            run_dir = workdir / "runs" / row["label"] / f"seed{result['seed']}"
            summary = mech.summarise_run(run_dir)
            timing = json.loads((run_dir / "result.json").read_text())
            runs.append(summary)
            per_run.append(dict(
                row=name, label=row["label"], seed=result["seed"], recurrence=int(summary["recurrence"]),
                decay_p10=summary["decay"]["p10"], decay_median=summary["decay"]["median"],
                decay_p90=summary["decay"]["p90"], decay_mean=summary["decay_mean"],
                efold_p10=summary["efold"]["p10"], efold_median=summary["efold"]["median"],
                efold_p90=summary["efold"]["p90"],
                memory_p10=summary["memory"]["p10"], memory_median=summary["memory"]["median"],
                memory_p90=summary["memory"]["p90"], memory_censored=summary["memory_censored"],
                lambda_abs_initial=summary["lambda_abs_initial"], lambda_abs_trained=summary["lambda_abs_trained"],
                bare_efold_median=summary["bare_efold_median"],
                **{f"{d}_margin_db": result["metrics"][f"{d}/psnr"] - bicubic_psnr[d] for d in bicubic_psnr},
                train_s=timing.get("train_s", ""), step_s=timing.get("step_s", "")))
        if runs:
            rows.append(dict(name=name, runs=runs))
    write_rows(out / "mechanism_runs.csv", [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                                            for r in per_run])
    summary_rows = []
    for row in rows:
        mine = [r for r in per_run if r["row"] == row["name"]]
        out_row = dict(row=row["name"], seeds=len(mine), recurrence=mine[0]["recurrence"])
        for key in ("decay_median", "efold_median", "memory_median", "memory_censored", "lambda_abs_initial",
                    "lambda_abs_trained", "bare_efold_median", "Set5_margin_db", "Gray6_margin_db"):
            mean, lo, hi = _mean_ci([r[key] for r in mine])
            out_row.update({f"{key}_mean": mean, f"{key}_ci_lo": lo, f"{key}_ci_hi": hi})
        out_row["Set5_margin_db_min"] = min(r["Set5_margin_db"] for r in mine)
        out_row["Gray6_margin_db_min"] = min(r["Gray6_margin_db"] for r in mine)
        summary_rows.append({k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else
                                 ("" if isinstance(v, float) else v)) for k, v in out_row.items()})
    write_rows(out / "mechanism.csv", summary_rows)
    mech.plot_rows(rows, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="the study's workdir (lsm-study --workdir)")
    parser.add_argument("-o", "--output", type=Path, default=OUT, help=f"results folder (default: {OUT})")
    parser.add_argument("--check", action="store_true", help="only compare the committed report with runs.csv")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.output)
        print("\n".join(problems) or f"{args.output}: report.md and report.csv match runs.csv")
        return 1 if problems else 0
    if args.workdir is None:
        parser.error("--workdir is required (the study's workdir), unless --check")
    try:
        write_report(args.workdir, args.output)
        mechanism(args.workdir, args.output, bicubic(args.output))
    except (FileNotFoundError, ValueError) as err:   # not a study folder, a study without runs, ...
        print(f"experiments.ring_ablation: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
