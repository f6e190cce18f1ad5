"""The benchmarks' one CSV writer: rows of dicts to a file, written whole or not at all.

Every row carries where and when it was measured: `machine`, `date` (UTC, ISO), `jax` and `jaxlib`
(installed versions) are added to each row that lacks them, as the last columns, so that
`experiments/render_tables.py` can caption each table with them. A benchmark that sets any of these
itself (bench_scan names the device) keeps its own value. `LSM_BENCH_MACHINE` overrides the machine
description (e.g. "2-core x86-64 CPU (dev VM)"); otherwise it is read from the host.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

METADATA = ("machine", "date", "jax", "jaxlib")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> str:
    """A one-line description of this host: `LSM_BENCH_MACHINE`, or cores, architecture, CPU name and,
    when the benchmark has already started JAX on an accelerator, its device kind."""
    if os.environ.get("LSM_BENCH_MACHINE"):
        return os.environ["LSM_BENCH_MACHINE"]
    text = f"{os.cpu_count()}-core {platform.machine().replace('_', '-')} CPU"
    name = _cpu_name()
    if name:
        text += f" ({name})"
    jax = sys.modules.get("jax")  # never imported here: only asked when the benchmark already uses it
    if jax is not None:
        try:
            device = jax.devices()[0]
            if device.platform != "cpu":
                text += f", {len(jax.devices())}x {device.device_kind}"
        except Exception:  # noqa: BLE001 - a description must never stop a benchmark's write
            pass
    return text


def metadata_values() -> dict:
    """The metadata columns' values for rows measured now."""
    return {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            "jax": _version("jax"), "jaxlib": _version("jaxlib")}


def head_commit() -> str:
    """The short hash of the checked-out code, with `+` when its code has uncommitted changes (results
    and docs do not count: a benchmark run between two results commits measured the committed code)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                              text=True).stdout.strip()
    try:
        dirty = "+" if git("status", "--porcelain", "-uno", "--", ".", ":!experiments/results", ":!docs",
                           ":!*.md") else ""
        return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty
    except OSError:
        return "unknown"


def write_rows(path: str | Path, rows: Sequence[dict], fields: Iterable[str] | None = None,
               measured_now: int | None = None) -> Path:
    """Writes `rows` to `path` (parent folders made) through a temporary file and a rename.

    The columns are `fields` (keys outside them are dropped), or else every key of every row in the
    order first seen, so rows with extra keys (an error message) keep them. The metadata columns
    (`METADATA`) are appended when missing, and filled in the rows measured now that have no value for
    them: every row, or the last `measured_now` rows (earlier runs keep what they recorded, blanks too).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fields is None:
        fields = list(dict.fromkeys(k for row in rows for k in row))
    fields = list(fields)
    fields += [name for name in METADATA if name not in fields]
    meta = metadata_values()
    first_new = 0 if measured_now is None else len(rows) - measured_now
    rows = [row if i < first_new else {**row, **{k: v for k, v in meta.items() if row.get(k) in (None, "")}}
            for i, row in enumerate(rows)]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def replace_rows(path: str | Path, rows: Sequence[dict], key: Sequence[str],
                 fields: Iterable[str] | None = None) -> Path:
    """`write_rows` for a rerun: the rows already in `path` whose `key` values equal some new row's are
    dropped, the others kept in their order (with the metadata of their own run), and `rows` written after
    them. So a benchmark that labels its rows (a `revision`, a profiled `case`) keeps every other label's."""
    path = Path(path)
    replaced = {tuple(str(r.get(k, "")) for k in key) for r in rows}
    old = []
    if path.exists():
        with open(path, newline="") as fh:
            old = [r for r in csv.DictReader(fh) if tuple(r.get(k, "") for k in key) not in replaced]
    return write_rows(path, old + list(rows), fields, measured_now=len(rows))


def append_rows(path: str | Path, rows: Sequence[dict]) -> Path:
    """`write_rows` of the CSV's existing rows (kept as they are) followed by `rows`: one row per run
    accumulates, for tables that show runs side by side (before/after a change)."""
    old = []
    if Path(path).exists():
        with open(path, newline="") as fh:
            old = list(csv.DictReader(fh))
    return write_rows(path, old + list(rows), measured_now=len(rows))
