"""The study's table: mean ± std over seeds of PSNR/SSIM per dataset (the runs' own final
validation, by the SR protocol of `lsm_jax.evaluation.scoring`) and of the final training loss.

Writes `report.md` and `report.csv` into the study folder; the best row (highest mean PSNR on the
first dataset) is marked. The std is the sample standard deviation (ddof 1) over the seeds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import logging

import numpy as np

from lsm_jax.studies.runner import RESULT_FILE, STUDY_FILE, runs_of
from lsm_jax.studies.sweep import Sweep

log = logging.getLogger("lsm_jax.study")


def load_study(workdir: str | os.PathLike) -> tuple[dict[str, Any], Sweep]:
    """(the study.json spec, its sweep)."""
    path = Path(workdir) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{workdir}: no {STUDY_FILE} (not a study folder)")
    spec = json.loads(path.read_text())
    return spec, Sweep.parse(spec["sweep"], spec["zip"], spec["seeds"])


def all_finished(workdir: str | os.PathLike) -> bool:
    """True when every run of the study has its result.json."""
    spec, sweep = load_study(workdir)
    return all((r.directory / RESULT_FILE).is_file() for r in runs_of(Path(workdir).absolute(), sweep))


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan


def collect(workdir: str | os.PathLike) -> dict[str, Any]:
    """Rows per setting: {'keys', 'datasets', 'rows': [{label, values, n, runs, psnr/ssim/loss (mean, std)}]}."""
    workdir = Path(workdir).absolute()
    spec, sweep = load_study(workdir)
    rows, datasets = {}, []
    for run in runs_of(workdir, sweep):
        row = rows.setdefault(run.setting.label, dict(label=run.setting.label, values=dict(run.setting.overrides),
                                                      results=[], missing=0, failed=0))
        path = run.directory / RESULT_FILE
        if not path.is_file():
            row["missing"] += 1
            continue
        result = json.loads(path.read_text())
        if result.get("status") != "done":
            row["failed"] += 1
            continue
        row["results"].append(result)
        for key in result["metrics"]:
            name = key.rsplit("/", 1)[0]
            if name not in datasets:
                datasets.append(name)
    for row in rows.values():
        res = row["results"]
        row["n"] = len(res)
        row["stats"] = {f"{d}/{m}": _mean_std([r["metrics"].get(f"{d}/{m}") for r in res])
                        for d in datasets for m in ("psnr", "ssim")}
        row["stats"]["final_loss"] = _mean_std([r.get("final_loss") for r in res])
    table = list(rows.values())
    best = None
    if datasets:
        scored = [r for r in table if math.isfinite(r["stats"][f"{datasets[0]}/psnr"][0])]
        best = max(scored, key=lambda r: r["stats"][f"{datasets[0]}/psnr"][0])["label"] if scored else None
    for row in table:  # the same seed means the same data order and the same draws for the other weights
        row["paired"] = _paired(row, next((r for r in table if r["label"] == best), None), datasets)
    return dict(spec=spec, keys=sweep.swept_keys(), datasets=datasets, rows=table, best=best)


def _paired(row: dict, best: dict | None, datasets: list[str]) -> tuple[float, float]:
    """Mean ± std over the seeds both rows have of (this row's PSNR − the best row's), first dataset."""
    if best is None or not datasets:
        return math.nan, math.nan
    key = f"{datasets[0]}/psnr"
    mine = {r["seed"]: r["metrics"].get(key) for r in row["results"]}
    theirs = {r["seed"]: r["metrics"].get(key) for r in best["results"]}
    return _mean_std([mine[s] - theirs[s] for s in mine if s in theirs and None not in (mine[s], theirs[s])])


def _pm(stat: tuple[float, float], digits: int) -> str:
    mean, std = stat
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std) else f"{mean:.{digits}f}"


def markdown(data: dict[str, Any]) -> str:
    """The table in Markdown, best row marked with ★."""
    keys, datasets = data["keys"], data["datasets"]
    head = [k for k in keys] + [f"{d} PSNR (dB)" for d in datasets] + [f"{d} SSIM" for d in datasets] + \
        ["final loss"] + ([f"Δ {datasets[0]} PSNR vs ★, paired by seed"] if datasets else []) + ["seeds", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in data["rows"]:
        cells = [row["values"].get(k, "") for k in keys]
        cells += [_pm(row["stats"][f"{d}/psnr"], 2) for d in datasets]
        cells += [_pm(row["stats"][f"{d}/ssim"], 4) for d in datasets]
        cells += [_pm(row["stats"]["final_loss"], 4)]
        cells += [_pm(row["paired"], 2) if row["label"] != data["best"] else "–"] if datasets else []
        cells += [f"{row['n']}" + (f" ({row['missing']} to run)" if row["missing"]
                                                                       else "") +
                  (f" ({row['failed']} non-finite)" if row["failed"] else ""),
                  "★ best" if row["label"] == data["best"] else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    spec = data["spec"]
    note = (f"\nMean ± sample std over seeds; PSNR/SSIM on the Y channel, crop border = scale (SR protocol), "
            f"by each run's own final validation of its exported weights (the EMA; the final weights at "
            f"ema_decay 0). Δ: the mean ± std over seeds of the per-seed difference to the best row (a seed "
            f"fixes the data order and the other weights' initial draws). Config `{spec['config']}`"
            + (f", {spec['steps']} steps" if spec.get("steps") else "")
            + (f", fixed {', '.join(spec['set'])}" if spec.get("set") else "") + ".\n")
    return "\n".join(lines) + "\n" + note


def csv_text(data: dict[str, Any]) -> str:
    """One line per setting: the swept values, then mean and std of every metric, the seed count."""
    buf = io.StringIO()
    w = csv.writer(buf)
    metrics = [f"{d}/{m}" for d in data["datasets"] for m in ("psnr", "ssim")] + ["final_loss"]
    w.writerow(["label", *data["keys"], *[f"{m}_{s}" for m in metrics for s in ("mean", "std")],
                "delta_psnr_vs_best_mean", "delta_psnr_vs_best_std", "seeds", "best"])
    for row in data["rows"]:
        stats = [f"{v:.6g}" if math.isfinite(v) else "" for m in metrics for v in (*row["stats"][m],)]
        stats += [f"{v:.6g}" if math.isfinite(v) else "" for v in row["paired"]]
        w.writerow([row["label"], *[row["values"].get(k, "") for k in data["keys"]], *stats, row["n"],
                    int(row["label"] == data["best"])])
    return buf.getvalue()


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_report(workdir: str | os.PathLike, out: str | os.PathLike | None = None, plots: bool = True) -> list[Path]:
    """Writes report.md and report.csv (and, with `plots`, the eigenvalue figures of each setting's
    first finished seed under eigen/<label>/); returns the paths written."""
    data = collect(workdir)
    out = Path(out) if out else Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_write(out / "report.md", markdown(data)), _write(out / "report.csv", csv_text(data))]
    if plots:
        from lsm_jax.studies import eigen
        for row in data["rows"]:
            if row["results"]:
                seed = row["results"][0]["seed"]
                run_dir = Path(workdir).absolute() / "runs" / row["label"] / f"seed{seed}"
                for line in eigen.make_figures(run_dir, out=out / "eigen" / row["label"]):
                    if line.startswith("wrote "):
                        paths.append(Path(line.split(" ", 1)[1]))
                    else:
                        log.info("%s: %s", row["label"], line)
    return paths
