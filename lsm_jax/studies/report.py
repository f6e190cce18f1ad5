"""The study's table: per setting, the mean and 95 % t-based confidence interval over seeds of
PSNR/SSIM per dataset (the runs' own final validation, by the SR protocol of
`lsm_jax.evaluation.scoring`) and of the final training loss, with the sample std; against the
study's declared baseline (`STUDY['baseline']`, a row label), the difference paired by seed with
its 95 % CI, paired-t p-value and minimum detectable effect (80 % power). A study without a declared
baseline gets no Δ column: the best row is never picked after the fact.

Writes `report.md`, `report.csv` and `runs.csv` (one line per run: final metrics, overrides, seed,
versions) into the output folder; `table_from_runs` rebuilds the same table from `runs.csv` alone,
so a committed folder of report + runs.csv is enough to check or recompute it.
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

from lsm_jax.studies import statistics as st
from lsm_jax.studies.runner import RESULT_FILE, STUDY_FILE, runs_of
from lsm_jax.studies.sweep import Sweep

log = logging.getLogger("lsm_jax.study")

RUNS_CSV = "runs.csv"
LEVEL = 0.95
POWER = 0.8


def load_study(workdir: str | os.PathLike) -> tuple[dict[str, Any], Sweep]:
    """(the study.json spec, its sweep)."""
    path = Path(workdir) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{workdir}: no {STUDY_FILE}, so not a study folder (`lsm-study --config NAME "
                                f"--workdir {workdir}` makes one; a folder holding a study's {RUNS_CSV} can be "
                                f"reported too)")
    spec = json.loads(path.read_text())
    return spec, Sweep.parse(spec["sweep"], spec["zip"], spec["seeds"])


def all_finished(workdir: str | os.PathLike) -> bool:
    """True when every run of the study has its result.json."""
    spec, sweep = load_study(workdir)
    return all((r.directory / RESULT_FILE).is_file() for r in runs_of(Path(workdir).absolute(), sweep))


# ---------------------------------------------------------------------------------------------- runs

def _records_of_study(workdir: Path) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(spec, swept keys, one record per run: label, seed, status, values, metrics, versions)."""
    spec, sweep = load_study(workdir)
    records = []
    for run in runs_of(workdir, sweep):
        rec = dict(label=run.setting.label, seed=run.seed, config_seed=None, status="missing",
                   values=dict(run.setting.overrides), metrics={}, versions={})
        path = run.directory / RESULT_FILE
        if path.is_file():
            result = json.loads(path.read_text())
            metrics = dict(result.get("metrics", {}))
            if "final_loss" in result:
                metrics["final_loss"] = result["final_loss"]
            rec.update(status=result.get("status", "done"), config_seed=result.get("config_seed"),
                       metrics=metrics, versions=result.get("versions", {}))
        records.append(rec)
    return spec, sweep.swept_keys(), records


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def runs_csv_text(spec: dict[str, Any], keys: list[str], records: list[dict[str, Any]]) -> str:
    """One line per run: label, seed, status, `override:<key>`, `metric:<name>` (full precision),
    `version:<package>`, and the study's `study:*` fields (config, steps, set, seeds, baseline)."""
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    versions = list(dict.fromkeys(v for r in records for v in r["versions"]))
    study = dict(config=spec.get("config", ""), steps=spec.get("steps") or "", set=";".join(spec.get("set", [])),
                 seeds=spec.get("seeds", ""), baseline=spec.get("baseline") or "")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "seed", "config_seed", "status", *[f"override:{k}" for k in keys],
                *[f"metric:{m}" for m in metrics], *[f"version:{v}" for v in versions],
                *[f"study:{k}" for k in study]])
    for r in records:
        w.writerow([r["label"], r["seed"], _cell(r.get("config_seed")), r["status"],
                    *[r["values"].get(k, "") for k in keys], *[_cell(r["metrics"].get(m)) for m in metrics],
                    *[r["versions"].get(v, "") for v in versions], *study.values()])
    return buf.getvalue()


def table_from_runs(path: str | os.PathLike) -> dict[str, Any]:
    """The table (as `collect`) rebuilt from a runs.csv alone (the file or a folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RUNS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a study's runs.csv)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no runs")
    cols = list(rows[0])
    keys = [c.split(":", 1)[1] for c in cols if c.startswith("override:")]
    study = {c.split(":", 1)[1]: rows[0][c] for c in cols if c.startswith("study:")}
    spec = dict(config=study.get("config", ""), steps=int(study["steps"]) if study.get("steps") else None,
                set=[s for s in study.get("set", "").split(";") if s],
                seeds=int(study["seeds"]) if study.get("seeds") else None, baseline=study.get("baseline") or None)
    records = []
    for r in rows:
        metrics = {c.split(":", 1)[1]: float(r[c]) for c in cols if c.startswith("metric:") and r[c] != ""}
        records.append(dict(label=r["label"], seed=int(r["seed"]), status=r["status"],
                            config_seed=int(r["config_seed"]) if r.get("config_seed") else None,
                            values={k: r[f"override:{k}"] for k in keys if r[f"override:{k}"] != ""},
                            metrics=metrics,
                            versions={c.split(":", 1)[1]: r[c] for c in cols if c.startswith("version:") and r[c]}))
    return _table(spec, keys, records)


# ---------------------------------------------------------------------------------------------- the table

def _table(spec: dict[str, Any], keys: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    rows, datasets = {}, []
    for rec in records:
        row = rows.setdefault(rec["label"], dict(label=rec["label"], values=dict(rec["values"]), results=[],
                                                 missing=0, failed=0))
        if rec["status"] == "missing":
            row["missing"] += 1
        elif rec["status"] != "done":
            row["failed"] += 1
        else:
            row["results"].append(rec)
            for key in rec["metrics"]:
                if key != "final_loss" and key.rsplit("/", 1)[0] not in datasets:
                    datasets.append(key.rsplit("/", 1)[0])
    metrics = [f"{d}/{m}" for d in datasets for m in ("psnr", "ssim")] + ["final_loss"]
    for row in rows.values():
        row["n"] = len(row["results"])
        row["stats"] = {m: st.mean_ci([r["metrics"].get(m) for r in row["results"]], LEVEL) for m in metrics}
    baseline = spec.get("baseline") or None
    if baseline is not None and baseline not in rows:
        raise ValueError(f"declared baseline {baseline!r} is not a row of the study (rows: {', '.join(rows)})")
    for row in rows.values():
        row["paired"] = ({m: compare_rows(row, rows[baseline], m) for m in metrics}
                         if baseline is not None and row["label"] != baseline else {})
    return dict(spec=spec, keys=keys, datasets=datasets, metrics=metrics, rows=list(rows.values()),
                baseline=baseline, records=records)


def collect(workdir: str | os.PathLike) -> dict[str, Any]:
    """The table of a study folder (its study.json and runs), or, in a folder without study.json,
    of its runs.csv: {'spec', 'keys', 'datasets', 'metrics', 'rows', 'baseline', 'records'}; each row
    has label, values, n, missing, failed, stats[metric] (a `MeanCI`) and paired[metric] (a `Paired`
    against the baseline; empty for the baseline row and when none is declared)."""
    workdir = Path(workdir).absolute()
    if not (workdir / STUDY_FILE).is_file() and (workdir / RUNS_CSV).is_file():
        return table_from_runs(workdir / RUNS_CSV)
    spec, keys, records = _records_of_study(workdir)
    return _table(spec, keys, records)


def compare_rows(a: dict[str, Any], b: dict[str, Any], metric: str) -> st.Paired:
    """Row a − row b on `metric`, paired by seed (the same seed: the same data order and the same
    draws of the weights the settings share)."""
    return st.paired_difference({r["seed"]: r["metrics"].get(metric) for r in a["results"]},
                                {r["seed"]: r["metrics"].get(metric) for r in b["results"]}, LEVEL)


def find_row(data: dict[str, Any], name: str) -> dict[str, Any]:
    """A row by its label or its 1-based position in the table."""
    for row in data["rows"]:
        if row["label"] == name:
            return row
    if name.isdigit() and 1 <= int(name) <= len(data["rows"]):
        return data["rows"][int(name) - 1]
    raise ValueError(f"--compare {name}: no such row (rows: " +
                     ", ".join(f"{i} {r['label']}" for i, r in enumerate(data["rows"], 1)) + ")")


def _num(v: float, digits: int, sign: bool = False) -> str:
    if not math.isfinite(v):
        return "–"
    return (f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}").replace("-", "−")


def _ci(s: st.MeanCI, digits: int) -> str:
    if not math.isfinite(s.mean):
        return "–"
    if not math.isfinite(s.lo):
        return _num(s.mean, digits)
    return f"{_num(s.mean, digits)} ± {_num(s.hi - s.mean, digits)}"


def _delta(p: st.Paired, digits: int) -> str:
    if not math.isfinite(p.mean):
        return "–"
    if not math.isfinite(p.lo):
        return _num(p.mean, digits, sign=True) + f" (n {p.n})"
    return f"{_num(p.mean, digits, sign=True)} [{_num(p.lo, digits)}, {_num(p.hi, digits)}]"


def _p(p: float) -> str:
    return "–" if not math.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def comparison_text(data: dict[str, Any], a: str, b: str) -> str:
    """The paired comparison of two rows on every metric (a − b), for `report --compare A B`."""
    ra, rb = find_row(data, a), find_row(data, b)
    lines = [f"A = {ra['label']} (n {ra['n']})", f"B = {rb['label']} (n {rb['n']})",
             "A − B, paired by seed; 95 % t CI; two-sided paired-t p; MDE at 80 % power (α 0.05)",
             "| metric | A | B | Δ = A − B [95 % CI] | p | pairs | SD of Δ | MDE "
             "| largest Δ magnitude the CI leaves open |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in data["metrics"]:
        digits = 2 if m.endswith("psnr") else 4
        p = compare_rows(ra, rb, m)
        mde = st.minimum_detectable_effect(p.sd, p.n, 1 - LEVEL, POWER)
        lines.append(f"| {m} | {_ci(ra['stats'][m], digits)} | {_ci(rb['stats'][m], digits)} | {_delta(p, digits)} "
                     f"| {_p(p.p)} | {p.n} | {_num(p.sd, digits)} | {_num(mde, digits)} "
                     f"| {_num(st.largest_effect_left_open(p), digits)} |")
    return "\n".join(lines) + "\n"


def markdown(data: dict[str, Any]) -> str:
    """The table in Markdown; the declared baseline row is marked ◆ baseline."""
    keys, datasets, base = data["keys"], data["datasets"], data["baseline"]
    first = f"{datasets[0]}/psnr" if datasets else None
    head = [k for k in keys] + [f"{d} PSNR (dB)" for d in datasets] + [f"{d} PSNR std" for d in datasets] + \
        [f"{d} SSIM" for d in datasets] + ["final loss"]
    if base is not None and first:
        head += [f"Δ {datasets[0]} PSNR vs baseline [95 % CI]", "p"]
    head += ["seeds", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in data["rows"]:
        s = row["stats"]
        cells = [row["values"].get(k, "") for k in keys]
        cells += [_ci(s[f"{d}/psnr"], 2) for d in datasets]
        cells += [_num(s[f"{d}/psnr"].std, 2) for d in datasets]
        cells += [_ci(s[f"{d}/ssim"], 4) for d in datasets]
        cells += [_ci(s["final_loss"], 4)]
        if base is not None and first:
            cells += ["–", "–"] if row["label"] == base else [_delta(row["paired"][first], 2),
                                                              _p(row["paired"][first].p)]
        cells += [f"{row['n']}" + (f" ({row['missing']} to run)" if row["missing"] else "") +
                  (f" ({row['failed']} non-finite)" if row["failed"] else ""),
                  "◆ baseline" if row["label"] == base else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    spec = data["spec"]
    note = ["", "Mean ± half-width of the 95 % t-based confidence interval over seeds (t_{0.975, n−1} · s/√n); "
            "std: the sample std over seeds. PSNR/SSIM on the Y channel, crop border = scale (SR protocol), by "
            "each run's own final validation of its exported weights (the EMA; the final weights at ema_decay 0)."]
    if base is None:
        note.append("No declared baseline (the study document sets no `STUDY['baseline']`): no Δ column. "
                    "Compare two rows with `lsm-study report DIR --compare A B`.")
    elif first:
        note.append(f"Δ: this row − the declared baseline `{base}`, paired by seed (a seed fixes the data order "
                    "and the other weights' initial draws): mean [95 % t CI], two-sided paired-t p.")
        note.append("")
        note.append(f"Minimum detectable effect on {first} (paired t, α 0.05 two-sided, 80 % power, from each "
                    "row's observed SD of the per-seed Δ; (t_{0.975,n−1} + t_{0.8,n−1}) · SD/√n). "
                    "'No effect of size e' holds only where the Δ CI lies inside ±e:")
        note.append("")
        for row in data["rows"]:
            if row["label"] == base:
                continue
            p = row["paired"][first]
            mde = st.minimum_detectable_effect(p.sd, p.n, 1 - LEVEL, POWER)
            note.append(f"- `{row['label']}`: MDE {_num(mde, 2)} dB (SD of Δ {_num(p.sd, 2)} dB, {p.n} pairs); "
                        f"the CI leaves |Δ| up to {_num(st.largest_effect_left_open(p), 2)} dB open.")
    note.append("")
    note.append(f"Config `{spec.get('config', '')}`" + (f", {spec['steps']} steps" if spec.get("steps") else "")
                + (f", fixed {', '.join(spec['set'])}" if spec.get("set") else "")
                + f". Per-run results: `{RUNS_CSV}` (the table is rebuilt from it alone by `report`).")
    return "\n".join(lines) + "\n" + "\n".join(note) + "\n"


def csv_text(data: dict[str, Any]) -> str:
    """One line per setting: the swept values; per metric mean, std, 95 % CI; per metric the paired Δ
    against the baseline (mean, CI, p, SD, pairs, MDE; empty without a baseline); seeds; baseline flag."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    metrics = data["metrics"]
    w.writerow(["label", *data["keys"], *[f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci_lo", "ci_hi")],
                *[f"delta_{m}_{s}" for m in metrics for s in ("mean", "ci_lo", "ci_hi", "p", "sd", "pairs", "mde")],
                "seeds", "baseline"])
    g = lambda v: f"{v:.6g}" if isinstance(v, (int, float)) and math.isfinite(v) else ""  # noqa: E731
    for row in data["rows"]:
        stats = [g(v) for m in metrics for v in (row["stats"][m].mean, row["stats"][m].std, row["stats"][m].lo,
                                                  row["stats"][m].hi)]
        deltas = []
        for m in metrics:
            p = row["paired"].get(m)
            if p is None:
                deltas += [""] * 7
            else:
                mde = st.minimum_detectable_effect(p.sd, p.n, 1 - LEVEL, POWER)
                deltas += [g(p.mean), g(p.lo), g(p.hi), g(p.p), g(p.sd), str(p.n), g(mde)]
        w.writerow([row["label"], *[row["values"].get(k, "") for k in data["keys"]], *stats, *deltas, row["n"],
                    int(row["label"] == data["baseline"])])
    return buf.getvalue()


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_report(workdir: str | os.PathLike, out: str | os.PathLike | None = None, plots: bool = True) -> list[Path]:
    """Writes report.md, report.csv and runs.csv (and, with `plots`, the eigenvalue figures of each
    setting's first finished seed under eigen/<label>/); returns the paths written. From a folder
    holding only a runs.csv, the table is rebuilt from it (no figures: there are no checkpoints)."""
    data = collect(workdir)
    out = Path(out) if out else Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [_write(out / "report.md", markdown(data)), _write(out / "report.csv", csv_text(data))]
    from_study = (Path(workdir) / STUDY_FILE).is_file()
    if from_study or (out.absolute() != Path(workdir).absolute()):
        paths.append(_write(out / RUNS_CSV, runs_csv_text(data["spec"], data["keys"], data["records"])))
    if plots and from_study:
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
