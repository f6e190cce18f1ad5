"""Benchmark CSVs that keep a change's before and after: a rerun replaces only its own revision's rows."""

from __future__ import annotations

import csv

from experiments.results_csv import replace_rows


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_rerun_replaces_its_own_revision_and_keeps_the_others(tmp_path):
    path = tmp_path / "bench.csv"
    replace_rows(path, [dict(speedup=1.1, revision="before", commit="aaa", machine="old box", date="d0")],
                 ("revision",))
    replace_rows(path, [dict(speedup=1.4, revision="after", commit="bbb")], ("revision",))
    replace_rows(path, [dict(speedup=1.5, revision="after", commit="ccc")], ("revision",))
    rows = _rows(path)
    assert [(r["revision"], r["commit"], r["speedup"]) for r in rows] == [("before", "aaa", "1.1"),
                                                                           ("after", "ccc", "1.5")]
    # The earlier run keeps where it was measured; the new rows get this machine's.
    assert rows[0]["machine"] == "old box" and rows[0]["date"] == "d0"
    assert rows[1]["machine"] not in ("", "old box") and rows[1]["jax"]


def test_a_compound_key_replaces_only_that_case_and_revision(tmp_path):
    """profile_step's use: (case, revision) is the key; another case's rows of the same revision stay."""
    path = tmp_path / "profile.csv"
    replace_rows(path, [dict(case="cpu", revision="after", ms=1), dict(case="v5p", revision="after", ms=2)],
                 ("case", "revision"))
    replace_rows(path, [dict(case="v5p", revision="after", ms=3)], ("case", "revision"))
    assert [(r["case"], r["ms"]) for r in _rows(path)] == [("cpu", "1"), ("v5p", "3")]
