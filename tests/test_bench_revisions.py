"""Benchmark CSVs that keep a change's before and after: a rerun replaces only its own revision's rows."""

from __future__ import annotations

import csv

from experiments.bench_train_vs_reference import keep_other_revisions


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_rerun_replaces_its_own_revision_and_keeps_the_others(tmp_path):
    path = tmp_path / "bench.csv"
    keep_other_revisions(path, [dict(speedup=1.1, revision="before", commit="aaa", machine="old box", date="d0")],
                         "before")
    keep_other_revisions(path, [dict(speedup=1.4, revision="after", commit="bbb")], "after")
    keep_other_revisions(path, [dict(speedup=1.5, revision="after", commit="ccc")], "after")
    rows = _rows(path)
    assert [(r["revision"], r["commit"], r["speedup"]) for r in rows] == [("before", "aaa", "1.1"),
                                                                           ("after", "ccc", "1.5")]
    # The earlier run keeps where it was measured; the new rows get this machine's.
    assert rows[0]["machine"] == "old box" and rows[0]["date"] == "d0"
    assert rows[1]["machine"] not in ("", "old box") and rows[1]["jax"]
