r"""The committed ring-ablation study (configs/studies/ring_ablation.py): its runs, table, mechanism and pictures.

    lsm-study --config studies/ring_ablation --workdir WORK [--run-index K --num-runs 5]   # train runs
    python -m experiments.ring_ablation --workdir WORK        # harvest WORK's finished runs, rebuild all
    python -m experiments.ring_ablation                       # rebuild all from the committed runs alone
    python -m experiments.ring_ablation --check               # the committed tables match the runs?

experiments/results/studies/ring_ablation/ is itself a study folder (`lsm-study report` reads it): the
study's study.json and, per finished run, `runs/<label>/seed<k>/result.json` (the study tool's result:
metrics, config, seed, versions, training time) and `mechanism.json` (lsm_jax.studies.mechanism's
figures of the trained weights on Set5, computed once when the run is harvested). The trained weights stay
in WORK, so a study can be finished across machines and sessions: run the missing seeds in any WORK
(`--run-index K --num-runs 5` trains seed K of every row) and harvest them. From the runs alone it writes:

    report.md, report.csv, runs.csv   the study tool's table (mean, 95 % CI, Δ paired by seed vs the
                                      declared baseline) and the per-run table it is rebuilt from
    bicubic.csv                       plain bicubic on the same sets (Set5 x2 files; Gray6 LR made on the fly)
    mechanism_runs.csv                per run: |λ·Mk_A| quantiles, e-folding and memory length, |λ| before/after,
                                      margin over bicubic, training time
    mechanism.csv                     per row: those figures as mean and 95 % t CI over the seeds
    decay.png, memory.png, eigenvalues.png   one panel per row, seeds pooled

`--check` compares the committed report and mechanism tables with the ones rebuilt from the runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from experiments import study_folder
from experiments.results_csv import write_rows
from experiments.study_folder import read_csv, unstamped
from experiments.study_tables import RING_ROWS

OUT = Path("experiments/results/studies/ring_ablation")


def harvest(workdir: Path, out: Path) -> list[str]:
    """Copies WORK's finished runs into the committed study folder, each with its mechanism.json (computed
    here from the run's export/latest); see `experiments.study_folder.harvest`. Returns the runs added."""
    from lsm_jax.runtime import compile_cache
    from lsm_jax.studies import mechanism as mech
    compile_cache.configure()
    return study_folder.harvest(workdir, out, {
        "mechanism.json": lambda run_dir: json.dumps(mech.summary_to_json(mech.summarise_run(run_dir)), indent=1)
        + "\n"})


def check(out: Path) -> list[str]:
    """Differences between the committed tables and the ones rebuilt from the committed runs (empty: equal):
    the study tool's report (`study_folder.check_report`) and the mechanism tables from the mechanism.json
    files."""
    problems = study_folder.check_report(out)
    bicubic_psnr = {r["dataset"]: float(r["psnr"]) for r in read_csv(out / "bicubic.csv")}
    per_run, per_row, _ = mechanism_tables(out, bicubic_psnr)
    for name, rows in (("mechanism_runs.csv", per_run), ("mechanism.csv", per_row)):
        if unstamped(out / name) != [{k: str(v) for k, v in r.items()} for r in rows]:
            problems.append(f"{out / name}: differs from the runs' mechanism.json files")
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


def mechanism_tables(out: Path, bicubic_psnr: dict[str, float]) -> tuple[list[dict], list[dict], list[dict]]:
    """(per-run rows, per-row rows, picture rows) from the committed runs' result.json and mechanism.json."""
    from lsm_jax.studies import mechanism as mech
    from lsm_jax.studies.report import collect
    per_run, pictures = [], []
    study = collect(out)
    for row in study["rows"]:
        name = RING_ROWS.get(row["label"], row["label"])
        runs = []
        for result in row["results"]:
            run_dir = out / "runs" / row["label"] / f"seed{result['seed']}"
            summary = mech.summary_from_json(json.loads((run_dir / "mechanism.json").read_text()))
            timing = json.loads((run_dir / "result.json").read_text())   # the record drops the training time
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
                # a resumed run's train_s counts from the resume only: left out
                train_s=timing.get("train_s", "") if not timing.get("resumed_from") else "",
                step_s=timing.get("step_s", "")))
        if runs:
            pictures.append(dict(name=name, runs=runs))
    per_row = []
    for row in pictures:
        mine = [r for r in per_run if r["row"] == row["name"]]
        out_row = dict(row=row["name"], seeds=len(mine), recurrence=mine[0]["recurrence"])
        for key in ("decay_median", "efold_median", "memory_median", "memory_censored", "lambda_abs_initial",
                    "lambda_abs_trained", "bare_efold_median", "Set5_margin_db", "Gray6_margin_db"):
            mean, lo, hi = _mean_ci([r[key] for r in mine])
            out_row.update({f"{key}_mean": mean, f"{key}_ci_lo": lo, f"{key}_ci_hi": hi})
        train = [float(r["train_s"]) for r in mine if r["train_s"] != ""]
        out_row["train_s_min"] = min(train) if train else math.nan
        out_row["train_s_max"] = max(train) if train else math.nan
        out_row["study_runs"] = len(study["records"])   # every run of the design, finished or not
        out_row["Set5_margin_db_min"] = min(r["Set5_margin_db"] for r in mine)
        out_row["Gray6_margin_db_min"] = min(r["Gray6_margin_db"] for r in mine)
        per_row.append(out_row)
    return [study_folder.cells(r) for r in per_run], [study_folder.cells(r) for r in per_row], pictures


def mechanism(out: Path, bicubic_psnr: dict[str, float]) -> None:
    """Per run and per row: the decay, memory and eigenvalue figures and the margin over bicubic; pictures."""
    from lsm_jax.studies import mechanism as mech
    per_run, per_row, pictures = mechanism_tables(out, bicubic_psnr)
    write_rows(out / "mechanism_runs.csv", per_run)
    write_rows(out / "mechanism.csv", per_row)
    mech.plot_rows(pictures, out)


def rebuild(out: Path) -> None:
    """Everything but the study tool's report, from the committed runs: bicubic, mechanism tables, pictures."""
    mechanism(out, bicubic(out))


def main(argv: list[str] | None = None) -> int:
    return study_folder.main(argv, prog="experiments.ring_ablation", description=__doc__.split("\n\n")[0],
                             default_out=OUT, harvest=harvest, rebuild=rebuild, check=check)


if __name__ == "__main__":
    raise SystemExit(main())
