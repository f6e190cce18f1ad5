"""The measured tables in README.md and docs/*.md equal what experiments/render_tables.py renders from the
committed CSVs, and every CSV records its machine, date and versions. Standard library only: no JAX."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import render_tables as rt

REPO = Path(__file__).resolve().parents[1]


def test_rendered_tables_match_their_csvs():
    problems = rt.process(REPO, write=False)
    assert not problems, "run `python -m experiments.render_tables`:\n" + "\n".join(problems)


def test_every_table_is_used_and_every_block_is_known():
    used = {name for path in rt.documents(REPO) for name, _ in rt.BLOCK.findall(path.read_text())}
    assert used <= set(rt.TABLES)
    assert set(rt.TABLES) - used == set(), f"tables defined but rendered nowhere: {set(rt.TABLES) - used}"


def test_every_results_csv_records_machine_date_and_versions():
    for path in sorted((REPO / "experiments" / "results").rglob("*.csv")):
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        missing = [k for k in ("machine", "date", "jax", "jaxlib") if k not in reader.fieldnames]
        assert not missing, f"{path.relative_to(REPO)} lacks {missing}"
        assert all(r["machine"] and r["date"] for r in rows), f"{path.relative_to(REPO)}: a row without machine/date"


@pytest.fixture
def copy(tmp_path):
    """README.md, docs/ and experiments/results/ copied, to be edited."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copytree(REPO / "experiments" / "results", tmp_path / "experiments" / "results")
    return tmp_path


def _first_block(root: Path, name: str) -> Path:
    return next(p for p in rt.documents(root) if f"<!-- table:{name} -->" in p.read_text())


def test_check_fails_when_a_figure_in_a_rendered_table_is_edited(copy):
    doc = _first_block(copy, "bench_folder")
    text = doc.read_text()
    start = text.index("<!-- table:bench_folder -->")
    block = text[start:text.index("<!-- /table -->", start)]
    edited = block.replace("| 20 |", "| 19 |", 1)
    assert edited != block
    doc.write_text(text.replace(block, edited))
    problems = rt.process(copy, write=False)
    assert problems == [f"{doc.relative_to(copy)}: table bench_folder: differs from "
                        f"experiments/results/bench_folder.csv"]
    assert rt.main(["--check", "--root", str(copy)]) == 1
    rt.process(copy, write=True)  # rendering restores it
    assert doc.read_text() == text and rt.process(copy, write=False) == []


def test_check_fails_when_the_csv_changes_and_rendering_follows_it(copy):
    path = copy / "experiments" / "results" / "compile_cache.csv"
    rows = list(csv.DictReader(open(path, newline="")))
    rows[0]["cache_warm_s"] = "12.5"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert any("table compile_cache: differs" in p for p in rt.process(copy, write=False))
    rt.process(copy, write=True)
    assert "| 12.5 |" in _first_block(copy, "compile_cache").read_text()
    assert rt.process(copy, write=False) == []


def test_unknown_table_name_is_reported(copy):
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- table:no_such_table -->\n<!-- /table -->\n")
    assert any("no_such_table: no such table" in p for p in rt.process(copy, write=False))


def test_caption_names_source_machine_date_and_versions():
    body = rt.render("vs_reference")
    caption = body.strip().splitlines()[-1]
    for text in ("experiments/results/bench_vs_reference.csv", "machine:", "date:", "jax ", "jaxlib ",
                 "torch_version:"):
        assert text in caption


def test_estimates_have_columns_of_their_own():
    header = rt.render("pod_plan").strip().splitlines()[0]
    assert "**estimate:** cost-model step, ms" in header
    measured = header.split("**estimate:**")[0]
    assert "compile, s (measured)" in measured and "estimate" not in measured.replace("**estimate:**", "")


def test_write_rows_adds_the_metadata(tmp_path):
    from experiments import results_csv
    path = results_csv.write_rows(tmp_path / "x.csv", [{"a": 1, "jax": "own"}], fields=("a", "jax"))
    row = next(csv.DictReader(open(path, newline="")))
    assert list(row) == ["a", "jax", "machine", "date", "jaxlib"]
    assert row["jax"] == "own" and row["machine"] and row["date"] and row["jaxlib"]


def test_append_rows_stamps_only_the_new_rows(tmp_path):
    from experiments import results_csv
    path = tmp_path / "runs.csv"
    path.write_text("x,machine,date,jax,jaxlib\n1,old box,2026-01-01,0.1,\n")   # jaxlib not recorded then
    results_csv.append_rows(path, [{"x": 2}])
    with open(path, newline="") as fh:
        old, new = list(csv.DictReader(fh))
    assert old == {"x": "1", "machine": "old box", "date": "2026-01-01", "jax": "0.1", "jaxlib": ""}
    assert new["x"] == "2" and new["machine"] and new["date"] and new["jax"] and new["jaxlib"]


def test_the_renderer_imports_no_jax():
    code = ("import sys, runpy; sys.argv = ['render_tables.py', '--check']; "
            "mods = sys.modules\n"
            "try:\n    runpy.run_module('experiments.render_tables', run_name='__main__')\n"
            "except SystemExit as e:\n    assert 'jax' not in mods, 'jax imported'; raise")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
