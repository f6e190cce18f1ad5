"""Formatting the figures of the docs' tables: numbers, spreads, ratios, Markdown rows and row selection.

Used by `doc_tables.py`; standard library only (the renderer must not import JAX).
"""

from __future__ import annotations

from typing import Callable


def num(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if x != x else x  # NaN -> None


def fmt(value, digits: int = 3) -> str:
    """`digits` significant figures, no exponent for ordinary magnitudes; '' for a missing value."""
    x = num(value)
    if x is None:
        return ""
    if x == 0:
        return "0"
    if abs(x) < 1e-3:
        return f"{x:.1e}"
    text = f"{x:.{digits}g}"
    if "e" in text:
        return f"{x:.0f}"
    return text


def ms(seconds) -> str:
    x = num(seconds)
    return "" if x is None else fmt(x * 1e3)


def spread(row: dict, key: str, unit: Callable = fmt) -> str:
    """The median `key` with the spread the CSV holds: `key_min`/`key_max` columns (`time_s` ->
    `time_min_s`, `time_max_s`) give "median (min–max)", a min alone "median (min …)"."""
    stem, _, suffix = key.rpartition("_")
    lo, hi = row.get(f"{stem}_min_{suffix}"), row.get(f"{stem}_max_{suffix}")
    text = unit(row.get(key))
    if not text:
        return ""
    if num(lo) is not None and num(hi) is not None:
        return f"{text} ({unit(lo)}–{unit(hi)})"
    if num(lo) is not None:
        return f"{text} (min {unit(lo)})"
    return text


def ratio(x, digits: int = 3) -> str:
    text = fmt(x, digits)
    return f"{text}×" if text else ""


def share(x) -> str:
    """A fraction as a percentage with one decimal ('' when missing)."""
    x = num(x)
    return "" if x is None else f"{x * 100:.1f} %"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def where(rows: list[dict], **conditions) -> list[dict]:
    return [r for r in rows if all(str(r.get(k)) == str(v) for k, v in conditions.items())]


def one(rows: list[dict], **conditions) -> dict:
    found = where(rows, **conditions)
    return found[0] if found else {}


def distinct(rows: list[dict], key: str) -> list[str]:
    return list(dict.fromkeys(r[key] for r in rows))
