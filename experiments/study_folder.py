"""A committed study folder: a study the study lab trained, kept in the repository as its study.json and,
per finished run, `runs/<label>/seed<k>/result.json` plus the per-run files a study computes once when it
harvests the run (the ring ablation's mechanism.json, the bf16 study's history.json). The trained weights
stay in the workdir, so a study can be trained across machines and sessions and harvested run by run.

From those files alone the study tool's report is rebuilt (report.md, report.csv, runs.csv) and checked:
`check_report` lists every committed table that differs from the one the runs give.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

from experiments.results_csv import METADATA, write_rows


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def cells(row: dict) -> dict:
    """A table row for a results CSV: floats to 6 significant digits, non-finite ones blank."""
    return {k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else ("" if isinstance(v, float) else v))
            for k, v in row.items()}


def write_text(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside `path`, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def unstamped(path: Path) -> list[dict]:
    """A results CSV's rows without the machine/date/version stamp."""
    return [{k: v for k, v in r.items() if k not in METADATA} for r in read_csv(path)]


def harvest(workdir: Path, out: Path, extras: dict[str, Callable[[Path], str]]) -> list[str]:
    """Copies WORK's finished runs into the committed study folder `out`, each with the files of `extras`
    ({file name: function of the run's directory giving its text}, computed here). A run already committed
    with the same result.json and every extra file is skipped; WORK must hold the same study (its study.json
    equal to the committed one). Returns the runs added, as 'label/seed<k>'."""
    try:
        spec = json.loads((workdir / "study.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{workdir / 'study.json'}: not valid JSON ({err})") from None
    if (out / "study.json").exists() and json.loads((out / "study.json").read_text()) != spec:
        raise ValueError(f"{workdir / 'study.json'}: another study than {out / 'study.json'} (steps, rows or "
                         f"data differ); harvest into another folder with -o")
    write_text(out / "study.json", (workdir / "study.json").read_text())
    added = []
    for result_path in sorted(workdir.glob("runs/*/seed*/result.json")):
        run_dir = result_path.parent
        dest = out / run_dir.relative_to(workdir)
        text = result_path.read_text()
        if all((dest / name).exists() for name in extras) and (dest / "result.json").exists() \
                and json.loads((dest / "result.json").read_text()) == json.loads(text):
            continue
        for name, make in extras.items():
            write_text(dest / name, make(run_dir))
        write_text(dest / "result.json", text)   # last: a run counts once all are whole
        added.append(f"{run_dir.parent.name}/{run_dir.name}")
    return added


def write_report(out: Path) -> None:
    """The study tool's report of the committed runs (no eigen figures: a study draws its own pictures);
    report.csv and runs.csv stamped (machine, date, versions; the tool's own columns kept)."""
    from lsm_jax.studies import report
    report.write_report(out, out, plots=False)
    for name in ("report.csv", "runs.csv"):
        write_rows(out / name, read_csv(out / name))


def check_report(out: Path) -> list[str]:
    """Differences between the committed report and the one rebuilt from the committed runs (empty: equal):
    report.md and report.csv from runs.csv, runs.csv from the result.json files."""
    from lsm_jax.studies import report
    data = report.table_from_runs(out / "runs.csv")
    problems = []
    if report.markdown(data) != (out / "report.md").read_text():
        problems.append(f"{out / 'report.md'}: differs from the table rebuilt from runs.csv")
    if unstamped(out / "report.csv") != list(csv.DictReader(report.csv_text(data).splitlines())):
        problems.append(f"{out / 'report.csv'}: differs from the table rebuilt from runs.csv")
    runs = report.collect(out)
    if unstamped(out / "runs.csv") != list(csv.DictReader(
            report.runs_csv_text(runs["spec"], runs["keys"], runs["records"]).splitlines())):
        problems.append(f"{out / 'runs.csv'}: differs from the runs' result.json files")
    return problems


def main(argv: list[str] | None, *, prog: str, description: str, default_out: Path,
         harvest: Callable[[Path, Path], list[str]], rebuild: Callable[[Path], None],
         check: Callable[[Path], list[str]]) -> int:
    """The command of a committed study folder: `--workdir WORK` (repeatable) harvests WORK's finished runs,
    then `rebuild(out)` writes every table and picture from the committed runs; `--check` only compares."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--workdir", type=Path, action="append", default=[],
                        help="a workdir of this study (lsm-study --workdir) whose finished runs to add; repeatable")
    parser.add_argument("-o", "--output", type=Path, default=default_out,
                        help=f"results folder (default: {default_out})")
    parser.add_argument("--check", action="store_true", help="only compare the committed tables with the runs")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.output)
        print("\n".join(problems) or f"{args.output}: the tables match the committed runs")
        return 1 if problems else 0
    try:
        for workdir in args.workdir:
            added = harvest(workdir, args.output)
            print(f"{workdir}: {len(added)} run(s) added" + "".join(f"\n  {a}" for a in added))
        if not (args.output / "study.json").exists():
            raise FileNotFoundError(f"{args.output / 'study.json'}: no study harvested yet (give --workdir)")
        write_report(args.output)
        rebuild(args.output)
    except (FileNotFoundError, ValueError) as err:   # not a study folder, a study without runs, ...
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0
