r"""Renders the measured tables of README.md and docs/*.md from the committed CSVs in experiments/results/.

    python -m experiments.render_tables           # rewrite every table block in place
    python -m experiments.render_tables --check   # exit 1 and list the blocks that differ from their CSV
    python -m experiments.render_tables --list    # the table names, their CSVs and where they are used

(from the repository root, as every experiment runs: see experiments/__init__.py).

A block in a Markdown file is

    <!-- table:NAME -->
    (generated: a Markdown table and a caption line naming the CSV, the machine, the date and the versions)
    <!-- /table -->

and NAME is a key of `TABLES` (experiments/doc_tables.py). Each table is a small function from the CSV's rows to Markdown
rows, so rerunning a benchmark and then this script updates the docs with no hand edits. Estimates (the
TPU cost model) get columns of their own, headed as estimates. Standard library only: no JAX import.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from experiments.doc_tables import TABLES, Table

REPO = Path(__file__).resolve().parents[1]
RESULTS = "experiments/results"
BLOCK = re.compile(r"<!-- table:([\w-]+) -->\n(.*?)<!-- /table -->", re.S)
NOT_RECORDED = ("", "not recorded", None)


# ---------------------------------------------------------------------------------------------- rendering

def read_csv(root: Path, name: str) -> list[dict]:
    with open(root / RESULTS / name, newline="") as fh:
        return [{k: ("" if v is None else v) for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]


def _values(rows: list[dict], key: str) -> str:
    seen = [r.get(key) for r in rows]
    known = list(dict.fromkeys(v for v in seen if v not in NOT_RECORDED))
    if not known:
        return "not recorded"
    if key == "date" and len(known) > 1:
        return f"{min(known)} to {max(known)}"
    text = ", ".join(known)
    return text + (" (some rows: not recorded)" if len(known) < len(set(seen)) else "")


def caption(root: Path, spec: Table, rows: list[dict]) -> str:
    rows = spec.select(rows) or rows
    parts = [f"Source: `{RESULTS}/{spec.csv}`", f"machine: {_values(rows, 'machine')}",
             f"date: {_values(rows, 'date')}", f"jax {_values(rows, 'jax')}", f"jaxlib {_values(rows, 'jaxlib')}"]
    parts += [f"{key}: {_values(rows, key)}" for key in spec.extra]
    return "*" + "; ".join(parts) + ".*"


def render(name: str, root: Path = REPO) -> str:
    """The block's body: a blank line, the table, a blank line, the caption line."""
    spec = TABLES[name]
    rows = read_csv(root, spec.csv)
    return "\n" + "\n".join(spec.render(rows)) + "\n\n" + caption(root, spec, rows) + "\n"


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def process(root: Path = REPO, write: bool = False) -> list[str]:
    """Renders every block; returns 'file: table NAME ...' for each block that differs (rewritten when
    `write`) or names no known table."""
    problems = []
    for path in documents(root):
        text = path.read_text()

        def replace(match: re.Match) -> str:
            name, body = match.group(1), match.group(2)
            where_ = f"{path.relative_to(root)}: table {name}"
            if name not in TABLES:
                problems.append(f"{where_}: no such table (known: {', '.join(TABLES)})")
                return match.group(0)
            try:
                want = render(name, root)
            except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
                problems.append(f"{where_}: cannot render from {RESULTS}/{TABLES[name].csv}: {e!r}")
                return match.group(0)
            if body != want:
                problems.append(f"{where_}: differs from {RESULTS}/{TABLES[name].csv}")
            return f"<!-- table:{name} -->\n{want}<!-- /table -->"

        new = BLOCK.sub(replace, text)
        if write and new != text:
            path.write_text(new)
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    p.add_argument("--list", action="store_true", help="the tables, their CSVs and the files using them")
    p.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = p.parse_args(argv)
    if args.list:
        used = {}
        for path in documents(args.root):
            for name in BLOCK.findall(path.read_text()):
                used.setdefault(name[0], []).append(str(path.relative_to(args.root)))
        for name, spec in TABLES.items():
            print(f"{name:22s} {RESULTS}/{spec.csv:40s} {', '.join(used.get(name, ['(unused)']))}")
        return 0
    problems = process(args.root, write=not args.check)
    for line in problems:
        print(line if args.check else line.replace(": differs from ", ": rewritten from "))
    if args.check:
        return 1 if problems else 0
    return 1 if any("differs" not in line for line in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
