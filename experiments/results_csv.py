"""The benchmarks' one CSV writer: rows of dicts to a file, written whole or not at all."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence


def write_rows(path: str | Path, rows: Sequence[dict], fields: Iterable[str] | None = None) -> Path:
    """Writes `rows` to `path` (parent folders made) through a temporary file and a rename.

    The columns are `fields` (keys outside them are dropped), or else every key of every row in the
    order first seen, so rows with extra keys (an error message) keep them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fields is None:
        fields = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path
