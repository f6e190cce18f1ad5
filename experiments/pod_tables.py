"""The pod tables of docs/pod.md: the plan (compiler memory beside the cost model's **estimates**), float32 against
bfloat16, and the step's profile (roofline **estimates**, and measured figures on the CPU). Standard library only."""

from __future__ import annotations

from experiments.table_format import fmt, num, one, ratio, share, table, where

TOPOLOGY_ORDER = ("v4:2x2x1", "v5e:4x4", "v5e:16x16", "v5p:2x2x4", "v5p:1x1x1")
VARIANT_ORDER = ("lsm", "lsm_s", "lsm_light")


def _pod_sorted(rows):
    return sorted(rows, key=lambda r: (r["kind"] != "train", VARIANT_ORDER.index(r["variant"])
                                       if r["variant"] in VARIANT_ORDER else 9,
                                       TOPOLOGY_ORDER.index(r["topology"]) if r["topology"] in TOPOLOGY_ORDER else 9,
                                       int(r["global_batch"]), int(r["image"])))


def _estimate_ms(r) -> str:
    x = num(r.get("cost_model_ms"))
    return fmt(x) if x is not None and x > 0 else "–"


def pod_plan_dtype(rows):
    """float32 beside bfloat16 for one case: memory measured by the compiler, time and MFU the cost model's,
    and the roofline's (lsm_jax.pod.profile) where the CSV has it; the commit compiled where recorded."""
    roofline = any(num(r.get("roofline_ms")) is not None for r in rows)
    out = [[r["variant"], r["topology"], r["global_batch"], f"**{r['dtype']}**", r.get("commit") or "?",
            fmt(r["temp_gib"]), fmt(r["total_gib"]), fmt(r["gflops_per_chip"]), _estimate_ms(r),
            fmt(r["images_per_s_per_chip"]) if _estimate_ms(r) != "–" else "–",
            f"{num(r['mfu']) * 100:.1f} %" if num(r.get("mfu")) and _estimate_ms(r) != "–" else "–"]
           + (_roofline_cells(r) if roofline else [])
           for r in rows if r["status"] == "ok"]
    return table(["variant", "topology", "batch", "compute dtype", "code", "temporaries GiB/dev", "GiB/dev",
                  "GFLOP/step/chip", "**estimate:** cost-model step, ms", "**estimate:** img/s/chip",
                  "**estimate:** MFU"] + (ROOFLINE_HEADER if roofline else []), out)


def _roofline_cells(r) -> list[str]:
    ms_, mfu = num(r.get("roofline_ms")), num(r.get("roofline_mfu"))
    if ms_ is None:
        return ["–", "–", "–"]
    return [fmt(ms_), fmt(r["roofline_images_per_s_per_chip"]), f"{mfu * 100:.1f} %"]


ROOFLINE_HEADER = ["**estimate:** roofline step, ms", "**estimate:** roofline img/s/chip", "**estimate:** roofline MFU"]


def pod_plan(rows):
    """The plan table; the roofline columns (lsm_jax.pod.profile, an estimate beside the cost model's)
    appear once the CSV has them (plans written before they existed have none)."""
    roofline = any(num(r.get("roofline_ms")) is not None for r in rows)
    out = []
    for r in _pod_sorted(rows):
        ok = r["status"] == "ok"
        mfu = num(r.get("mfu"))
        note = r["reason"].replace("the TPU cost model gave no time estimate for this program", "no cost-model time")
        out.append([r["kind"], r["variant"], r["topology"], r["global_batch"], fmt(r["batch_per_chip"]), r["image"],
                    r["status"], fmt(r["total_gib"]) if ok else "–", fmt(r["hbm_gib"]) if ok else "–",
                    fmt(r["headroom_gib"]) if ok else "–", fmt(r["gflops_per_chip"]) if ok else "–",
                    r["compile_s"] and fmt(r["compile_s"]) or "–", _estimate_ms(r),
                    fmt(r["images_per_s_per_chip"]) if _estimate_ms(r) != "–" else "–",
                    f"{mfu * 100:.1f} %" if mfu and _estimate_ms(r) != "–" else "–",
                    *(_roofline_cells(r) if roofline else []), note])
    return table(["kind", "variant", "topology", "batch", "batch/chip", "LR px", "status", "GiB/dev", "HBM GiB/dev",
                  "headroom GiB", "GFLOP/step/chip", "compile, s (measured)", "**estimate:** cost-model step, ms",
                  "**estimate:** img/s/chip", "**estimate:** MFU", *(ROOFLINE_HEADER if roofline else []), "note"], out)


def profile_rows(rows, case: str, revision: str | None = None):
    """The rows of one profiled case (experiments/profile_step.py: cpu, v5p, v5e16_bf16), of `revision`
    (default: the newest, i.e. `after` where the CSV has it)."""
    mine = [r for r in rows if r["case"] == case]
    revision = revision or (_revisions(mine) or [""])[-1]
    return [r for r in mine if r.get("revision", "") == revision]


def _revisions(rows) -> list[str]:
    """The revisions present, `before` first, the others in the CSV's order."""
    found = list(dict.fromkeys(r.get("revision", "") for r in rows))
    return sorted(found, key=lambda v: v != "before")



def _total_note(total, tpu: bool) -> str:
    cm = num(total.get("cost_model_ms"))
    return (f"{total['program']} on {total['target']}: roofline total {fmt(total['roofline_ms'])} ms "
            f"(MFU {share(total['roofline_mfu'])}, {fmt(total.get('roofline_images_per_s_per_chip'))} "
            + ("img/s/chip)" if tpu else "img/s)")
            + (f" against the cost model's {fmt(cm)} ms; both **estimates**" if cm and cm > 0
               else ", an **estimate**" + ("; the cost model gives no time" if tpu else ""))
            + f". Ceilings: {total['ceiling']}.")


def profile_categories(rows, case: str):
    """Per category, one revision (the newest): ops, GFLOP, bytes, roofline ms and share; on the CPU the
    measured time and share beside them."""
    rows = profile_rows(rows, case)
    tpu = rows[0]["target"] != "cpu"
    total = one(rows, level="total")
    out = []
    for r in where(rows, level="category") + [dict(total, name="**total**", roofline_share=1, measured_share=1)]:
        line = [r["name"], r["ops"], fmt(num(r["flops"]) / 1e9), fmt(num(r["bytes"]) / 1e9), fmt(r["roofline_ms"]),
                share(r["roofline_share"])]
        out.append(line + ([fmt(r["measured_ms"]), share(r["measured_share"])] if not tpu else []))
    header = ["category", "ops", "GFLOP", "GB moved", "**estimate:** roofline ms", "**estimate:** share"]
    header += [] if tpu else ["measured ms", "measured share"]
    note = _total_note(total, tpu)
    if not tpu:
        busy = num(total["measured_busy_ms"])
        note += (f" Measured: ops ran during {fmt(busy)} ms of a {fmt(total['measured_step_ms'])} ms step, "
                 f"{ratio(busy / num(total['roofline_ms']), 2)} the roofline; an op's measured time is the wall time its"
                 " trace events cover, and ops that run at the same time each count theirs.")
    return table(header, out) + ["", note]


def profile_before_after(rows, case: str):
    """Per category, `before` beside `after` a change (both roofline **estimates** of compiled programs):
    GB moved, roofline ms and share, and after/before, `before` being the first revision and `after` the
    newest; a note per revision (the ones between too) with its total and commit."""
    revisions = _revisions([r for r in rows if r["case"] == case])
    if len(revisions) < 2:
        return profile_categories(rows, case)
    by_revision = {v: profile_rows(rows, case, v) for v in revisions}
    before, after = by_revision[revisions[0]], by_revision[revisions[-1]]
    out = []
    for b in where(before, level="category") + [dict(one(before, level="total"), name="**total**")]:
        a = one(after, level="total") if b["level"] == "total" else one(after, level="category", name=b["name"])
        ms_b, ms_a = num(b["roofline_ms"]), num(a.get("roofline_ms"))
        out.append([b["name"], fmt(num(b["bytes"]) / 1e9), fmt(num(a.get("bytes")) / 1e9) if a else "–",
                    fmt(ms_b), fmt(ms_a), "100.0 %" if b["level"] == "total" else share(a.get("roofline_share")),
                    f"{ms_a / ms_b:.2f}×" if ms_a is not None and ms_b else "–"])
    header = ["category", f"GB moved, {revisions[0]}", f"GB moved, {revisions[-1]}",
              f"**estimate:** roofline ms, {revisions[0]}", f"**estimate:** roofline ms, {revisions[-1]}",
              f"**estimate:** share, {revisions[-1]}", f"{revisions[-1]} / {revisions[0]}"]
    notes = [f"- **{v}** (commit {one(rs, level='total').get('commit', '?')}): "
             + _total_note(one(rs, level="total"), True)
             for v, rs in by_revision.items()]
    return table(header, out) + [""] + notes


def profile_top(rows, case: str = "v5p"):
    """The source lines with the most roofline time in the newest revision of `case`'s profile."""
    out = [[r["rank"], r["name"], r["category"], r["ops"], fmt(num(r["flops"]) / 1e9), fmt(num(r["bytes"]) / 1e9),
            fmt(r["roofline_ms"]), share(r["roofline_share"])] for r in where(profile_rows(rows, case), level="site")]
    return table(["#", "source line", "category", "ops", "GFLOP", "GB moved", "**estimate:** roofline ms",
                  "**estimate:** share"], out)
