"""A step profile (`lsm_jax.pod.profile.Profile`) as Markdown tables and CSV rows. Every roofline and
cost-model figure sits in a column headed **estimate:**; the CPU's measured columns say so."""

from __future__ import annotations

from typing import Any


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    return f"{x:.0f}" if "e" in text and abs(x) >= 1 else text


def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.1f} %"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows])


def markdown_tables(prof, top: int = 20) -> list[str]:
    measured = prof.measured_step_s is not None
    mfu = prof.roofline_mfu
    cm = prof.cost_model_s
    summary = _table(
        ["program", "target", "GFLOP/step", "GB moved/step", "**estimate:** roofline ms", "**estimate:** roofline MFU",
         "**estimate:** roofline img/s/chip", "**estimate:** cost-model ms", "measured: ops ms", "measured: step ms"],
        [[prof.program, prof.target, _f(prof.flops / 1e9), _f(prof.bytes / 1e9),
          _f(prof.roofline_s * 1e3), _pct(mfu), _f(prof.images_per_s_per_chip), _f(cm * 1e3) if cm else "– (none)",
          _f(prof.measured_ops_s * 1e3) if measured else "–", _f(prof.measured_step_s * 1e3) if measured else "–"]])
    summary += (f"\n\nCeilings: {prof.ceiling.note}. Roofline = Σ over ops of max(FLOPs / peak, bytes / bandwidth): "
                "an estimate, a lower bound for ops run one after another.")
    if prof.xla_flops:
        summary += f" FLOPs counted here / XLA's cost analysis: {prof.flops / prof.xla_flops:.3f}"
        summary += f"; bytes: {prof.bytes / prof.xla_bytes:.2f}." if prof.xla_bytes else "."
    if measured:
        summary += " " + prof.measured_note + "."
    head = ["ops", "GFLOP", "GB", "**estimate:** roofline ms", "**estimate:** share"]
    head += ["measured ms", "measured share"] if measured else []

    def grouped(key: str, first: str) -> str:
        rows = []
        for g in prof.group(key):
            r = [g["name"], g["ops"], _f(g["flops"] / 1e9), _f(g["bytes"] / 1e9), _f(g["roofline_s"] * 1e3),
                 _pct(g["roofline_share"])]
            if measured:
                r += [_f((g["measured_s"] or 0) * 1e3), _pct(g["measured_share"])]
            rows.append(r)
        return _table([first] + head, rows)

    tops = []
    for i, o in enumerate(prof.top(top), 1):
        r = [i, f"`{o.name}`", o.kind, o.category, f"{o.module} ({o.source})" if o.source else o.module,
             o.count, _f(o.flops / 1e9), _f(o.bytes / 1e6), o.bound, _f(o.roofline_s * 1e3)]
        if measured:
            r.append(_f((o.measured_s or 0) * 1e3))
        tops.append(r)
    top_head = ["#", "op", "kind", "category", "source", "runs", "GFLOP", "MB", "bound", "**estimate:** roofline ms"]
    top_head += ["measured ms"] if measured else []
    sites = []
    for i, g in enumerate(prof.group("site")[:top], 1):
        r = [i, g["name"], g["category"], g["ops"], _f(g["flops"] / 1e9), _f(g["bytes"] / 1e9), _f(g["roofline_s"] * 1e3),
             _pct(g["roofline_share"])]
        sites.append(r + ([_f((g["measured_s"] or 0) * 1e3)] if measured else []))
    site_head = ["#", "source line", "category", "ops", "GFLOP", "GB", "**estimate:** roofline ms", "**estimate:** share"]
    site_head += ["measured ms"] if measured else []
    return [summary, grouped("category", "category"), _table(top_head, tops), _table(site_head, sites),
            grouped("module", "source module")]


def csv_rows(prof, top: int | None = 20) -> list[dict[str, Any]]:
    base = dict(program=prof.program, target=prof.target, device=prof.ceiling.device,
                peak_flops=prof.ceiling.peak_flops, bandwidth=prof.ceiling.bandwidth)
    measured = prof.measured_step_s is not None
    rows = [dict(base, level="total", name="step", ops=len(prof.ops), flops=prof.flops,
                 bytes=prof.bytes, roofline_ms=prof.roofline_s * 1e3, roofline_share=1.0,
                 roofline_mfu=prof.roofline_mfu, roofline_images_per_s_per_chip=prof.images_per_s_per_chip,
                 batch=prof.batch or None, cost_model_ms=prof.cost_model_s * 1e3 if prof.cost_model_s else None,
                 measured_ms=prof.measured_ops_s * 1e3 if measured else None,
                 measured_busy_ms=prof.measured_busy_s * 1e3 if measured else None,
                 measured_step_ms=prof.measured_step_s * 1e3 if measured else None,
                 xla_flops=prof.xla_flops, xla_bytes=prof.xla_bytes)]
    for level in ("category", "module"):
        for g in prof.group(level):
            rows.append(dict(base, level=level, name=g["name"], ops=g["ops"], flops=g["flops"], bytes=g["bytes"],
                             roofline_ms=g["roofline_s"] * 1e3, roofline_share=g["roofline_share"],
                             measured_ms=g["measured_s"] * 1e3 if g["measured_s"] is not None else None,
                             measured_share=g["measured_share"]))
    sites = prof.group("site")
    for rank, g in enumerate(sites[:top] if top else sites, 1):
        rows.append(dict(base, level="site", rank=rank, name=g["name"], category=g["category"], module=g["module"],
                         ops=g["ops"], flops=g["flops"], bytes=g["bytes"], roofline_ms=g["roofline_s"] * 1e3,
                         roofline_share=g["roofline_share"],
                         measured_ms=g["measured_s"] * 1e3 if g["measured_s"] is not None else None,
                         measured_share=g["measured_share"]))
    ops = prof.top(top) if top else prof.ops
    for rank, o in enumerate(ops, 1):
        rows.append(dict(base, level="op", rank=rank, name=o.name, kind=o.kind, category=o.category, module=o.module,
                         source=o.source, runs=o.count, flops=o.flops, bytes=o.bytes, roofline_ms=o.roofline_s * 1e3,
                         roofline_share=o.roofline_s / prof.roofline_s if prof.roofline_s else None, bound=o.bound,
                         measured_ms=o.measured_s * 1e3 if o.measured_s is not None else None))
    return rows
