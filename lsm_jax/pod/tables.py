"""Plan rows as tables: the Markdown table's columns (`COLUMNS`, and the README's narrower `COMPACT`),
`markdown`, the CSV of every field (`write_csv`, `read_csv`) and a row's one-line summary (`brief`).

The step time, images/s and MFU are estimates, the TPU cost model's and the roofline's (`lsm_jax.pod.profile`)
in columns of their own, and are labelled so; rows whose
devices are TensorCores (v4: libtpu lists a chip's two cores as two devices) say so in their note."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from lsm_jax.pod.plan import PlanRow, as_dict

COLUMNS = [("kind", "kind"), ("variant", "variant"), ("recipe", "recipe"), ("topology", "topology"),
           ("mesh", "mesh"), ("global_batch", "batch"), ("batch_per_chip", "batch/chip"), ("image", "LR px"),
           ("dtype", "dtype"), ("remat", "remat"), ("grad_accum", "accum"), ("status", "status"),
           ("total_gib", "GiB/dev"), ("hbm_gib", "HBM GiB/dev"), ("headroom_gib", "headroom GiB"),
           ("temp_gib", "temp GiB"), ("gflops_per_chip", "GFLOP/step/chip"),
           ("cost_model_ms", "cost-model estimate (ms)"),
           ("images_per_s_per_chip", "img/s/chip (cost-model estimate)"), ("mfu", "MFU (cost-model estimate)"),
           ("roofline_ms", "roofline estimate (ms)"),
           ("roofline_images_per_s_per_chip", "img/s/chip (roofline estimate)"),
           ("roofline_mfu", "MFU (roofline estimate)"), ("compile_s", "compile s"), ("reason", "note")]
PERCENT = ("mfu", "roofline_mfu")

# The README's narrower table (dtype, remat and accumulation stated above it instead).
COMPACT = [c for c in COLUMNS if c[0] not in ("recipe", "mesh", "dtype", "remat", "grad_accum", "temp_gib")]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


def per_core_note(row: PlanRow) -> str:
    """The note for a row whose devices are TensorCores, not chips (v4: libtpu lists a chip's two
    cores as two devices, while JAX on a real v4 runs each chip as one megacore device)."""
    if row.devices > row.chips > 0:
        return (f"per TensorCore ({row.devices // row.chips} per chip; JAX runs a real v4 chip as one "
                "megacore device)")
    return ""


def markdown(rows: list[PlanRow], columns=COLUMNS) -> str:
    """A Markdown table of the rows (MFU as a percentage). The step time, images/s and MFU are the
    TPU cost model's estimates (so labelled), never measurements; rows whose devices are TensorCores
    (v4) say so in their note."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        d = as_dict(r)
        note = per_core_note(r)
        if note and note not in d["reason"]:
            d["reason"] = f"{note}; {d['reason']}" if d["reason"] else note
        cells = [(f"{d[k]:.1%}" if k in PERCENT and d[k] is not None else _cell(d[k])) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[PlanRow], path: str | Path) -> None:
    """All fields of every row; written to a temporary name, then renamed."""
    fields = list(as_dict(rows[0]).keys()) if rows else [f.name for f in dataclasses.fields(PlanRow)]
    write_dict_rows([as_dict(r) for r in rows], path, fields)


def write_dict_rows(rows: list[dict], path: str | Path, fields: list[str] | None = None) -> None:
    """Rows of dicts as CSV (columns: `fields`, or every key in the order first seen); written to a
    temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = fields or list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_csv(path: str | Path) -> list[PlanRow]:
    """The rows of a CSV written by `write_csv` (or appended row by row), typed again; columns that are
    not row fields (a benchmark's machine and date) are ignored; no file: no rows."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [PlanRow(**{field.name: _typed(field, r.get(field.name) or "") for field in dataclasses.fields(PlanRow)})
                for r in csv.DictReader(f)]


def _typed(field: dataclasses.Field, text: str):
    kind = str(field.type)  # a string: plan.py postpones its annotations
    if text == "":
        return None if field.default is None else ("" if kind == "str" else field.default)
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "True"
    if "float" in kind:
        return float(text)
    return text


def brief(r: PlanRow) -> str:
    """One line per row, for the log: what was compiled, its status, memory and compile time."""
    mem = f"{r.total_gib:.2f}/{r.hbm_gib:.2f} GiB" if r.total_gib is not None and r.hbm_gib else "-"
    return (f"{r.kind} {r.variant}:{r.recipe} {r.topology} mesh {r.mesh} batch {r.global_batch} {r.dtype} "
            f"remat={r.remat} accum={r.grad_accum}: {r.status} {mem} compile {r.compile_s or 0:.0f}s {r.reason}")
