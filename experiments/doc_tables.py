"""The table definitions that `render_tables.py` renders into README.md and docs/*.md.

Each entry of `TABLES` names a CSV under experiments/results/ and a small function from that CSV's rows
to Markdown lines (a table and, at most, a few notes); `table_format.py` formats the figures. Estimates
(the TPU cost model) get columns of their own, headed as estimates. Standard library only: no JAX import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from experiments.pod_tables import (pod_plan, pod_plan_dtype, profile_before_after, profile_categories,  # noqa: F401
                                    profile_rows, profile_top)
from experiments.study_tables import (study_bf16, study_bf16_loss, study_first_results, study_report,  # noqa: F401
                                      study_ring_ablation, study_ring_bicubic, study_ring_mechanism)
from experiments.table_format import num, fmt, ms, spread, ratio, share, table, where, one, distinct


@dataclass(frozen=True)
class Table:
    csv: str                                   # file name under experiments/results/
    render: Callable[[list[dict]], list[str]]  # all the CSV's rows -> Markdown lines (a table and notes)
    select: Callable[[list[dict]], list[dict]] = lambda rows: rows  # the rows the caption describes
    extra: tuple[str, ...] = ()                # more caption fields (CSV columns), e.g. torch_version


SCAN_POINT = dict(kind="scan", B=4, L=65536, N=32)


def scan_cpu(rows):
    pts = where(rows, **SCAN_POINT)
    memory = where(rows, kind="memory")
    out = []
    labels = distinct(pts, "strategy")
    first = {mode: next((r for r in pts if r["mode"] == mode and r["dtype"] == "complex64"), {})
             for mode in ("fwd", "fwd_bwd")}
    out.append(["copy floor (complex64: 24 B/elem forward, 64 B/elem forward + backward)",
                ms(first["fwd"].get("floor_s")), "1", ms(first["fwd_bwd"].get("floor_s")), "1", ""])
    for label in labels:
        fwd, bwd = one(pts, strategy=label, mode="fwd"), one(pts, strategy=label, mode="fwd_bwd")
        impl = (fwd or bwd)["impl"]
        name = f"`{label}`" + (f" (→ `{impl.split(':', 1)[1]}`)" if impl.startswith("auto:") else "")
        mem, auto = one(memory, strategy=label), one(memory, strategy=label + "_autodiff")
        temp = fmt(mem.get("temp_E"))
        if temp and auto.get("temp_E"):
            temp += f" (autodiff {fmt(auto['temp_E'])})"
        out.append([name, spread(fwd, "time_s", ms), fmt(fwd.get("over_floor")),
                    spread(bwd, "time_s", ms), fmt(bwd.get("over_floor")), temp])
    return table(["strategy", "forward, ms: median (spread)", "× floor", "forward + backward, ms",
                  "× floor", "temporaries of value-and-grad at (16, 16384), E"], out)


def scan_auto(rows):
    """`auto` against the fastest strategy at each (B, L, mode) of the grid, complex64."""
    pts = [r for r in where(rows, kind="scan", dtype="complex64")
           if not r["strategy"].endswith(("_reverse", "_bidir"))]
    out = []
    for key in dict.fromkeys((r["B"], r["L"], r["mode"]) for r in pts):
        here = where(pts, B=key[0], L=key[1], mode=key[2])
        auto = one(here, strategy="auto")
        others = [r for r in here if r["strategy"] != "auto" and num(r["time_s"]) is not None]
        if num(auto.get("time_s")) is None or not others:
            continue
        best = min(others, key=lambda r: num(r["time_s"]))
        cells = [f"({key[0]}, {key[1]})", key[2], f"`{auto['impl'].split(':')[-1]}`", ms(auto["time_s"]),
                 f"`{best['strategy']}`", ms(best["time_s"]), ratio(num(auto["time_s"]) / num(best["time_s"]))]
        if num(auto.get("time_min_s")) and num(best.get("time_min_s")):
            fastest = min(others, key=lambda r: num(r.get("time_min_s")) or float("inf"))
            cells.append(ratio(num(auto["time_min_s"]) / num(fastest["time_min_s"])))
        out.append(cells)
    header = ["(B, L)", "mode", "`auto` ran", "`auto`, ms", "fastest other strategy", "its time, ms",
              "`auto` / fastest (medians)"]
    if out and len(out[0]) > len(header):
        header.append("`auto` / fastest (minima)")
    return table(header, out)


MODELS = {"light_x4_64": "LSM-light x4", "s_x2_64": "LSM-S x2"}


def scan_model(rows):
    rows = where(rows, kind="model")
    cases = distinct([{"c": r["strategy"].split(":")[0]} for r in rows], "c")
    strategies = distinct([{"s": r["strategy"].split(":", 1)[1]} for r in rows], "s")
    out = []
    for s in strategies:
        cells = [f"`{s}`"]
        for c in cases:
            for mode in ("fwd", "train_step"):
                r = one(rows, strategy=f"{c}:{s}", mode=mode)
                cells.append(spread(r, "time_s", lambda v: fmt(v)) + (f" [{fmt(r['compile_s'], 2)}]" if r else ""))
        out.append(cells)
    header = ["strategy"] + [f"{MODELS.get(c, c)} {m}" for c in cases for m in ("forward, s", "training step, s")]
    return table(header, out) + ["", "[compile time, s]"]


def vs_reference(rows):
    out = [[f"{r['model']} x{r['scale']}, {r['lr_hw']}", spread(r, "jax_s", fmt), spread(r, "torch_s", fmt),
            f"**{ratio(r['speedup'])}**", fmt(r["fwd_over_floor"]), fmt(r["max_abs_diff"], 2), r.get("reps", "")]
           for r in rows]
    return table(["case", "lsm-jax, s: median (min)", "authors' PyTorch, s: median (min)", "speed-up (medians)",
                  "lsm-jax × floor", "max \\|Δ\\|", "timed calls"], out)


def _code(r) -> str:
    """A benchmark row's code: its revision label and commit (`+`: with uncommitted changes)."""
    return f"{r.get('revision') or '—'} ({r.get('commit') or '?'})"


def train_vs_reference(rows):
    """Our training step against the authors' in one run per revision: medians with min-max, the speed-up,
    × floor."""
    out = [[_code(r), f"{r['model']} x{r['scale']}, batch {r['batch']}, {r['lr_hw']} LR, {r['dtype']}",
            f"`{r['semantics']}`", f"{fmt(r['jax_s'])} ({fmt(r['jax_min_s'])}–{fmt(r['jax_max_s'])})",
            f"{fmt(r['torch_s'])} ({fmt(r['torch_min_s'])}–{fmt(r['torch_max_s'])})", f"**{ratio(r['speedup'])}**",
            fmt(r["step_over_floor"]), r["steps"]] for r in rows]
    return table(["our code", "case", "our semantics", "lsm-jax step, s: median (min–max)",
                  "authors' PyTorch step, s: median (min–max)", "speed-up (medians)", "lsm-jax × floor",
                  "timed steps each"], out)


def train_vs_reference_ops(rows):
    """Both sides' measured step time per op kind, a column per (side, revision of our code)."""
    columns = list(dict.fromkeys((r["side"], r.get("revision", "")) for r in rows))
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    cell = {(r["side"], r.get("revision", ""), r["kind"]): r for r in rows}
    out = [[k] + [f"{fmt(cell[(s, v, k)]['ms'])} ({share(cell[(s, v, k)]['share'])})" for s, v in columns]
           for k in kinds]
    out.append(["**profiled total**"] + [fmt(one(rows, side=s, revision=v)["profiled_ms"]) for s, v in columns])
    out.append(["step, ms (one profiled step's wall time; torch: the timed median)"]
               + [fmt(one(rows, side=s, revision=v)["step_ms"]) for s, v in columns])
    return table(["op kind"] + [f"{s}, {v} run: ms per step (share)" for s, v in columns], out)



def _loader_key(config: str) -> tuple[str, str, str]:
    """'photos: records, raw codec, 1 worker(s)' -> ('photos', 'records, raw codec', '1')."""
    data, rest = config.split(": ", 1)
    pipeline, workers = rest.rsplit(", ", 1)
    return data, pipeline, workers.split()[0]


def data_loader(rows):
    loader = where(rows, benchmark="loader")
    nbytes = {r["config"]: r for r in where(rows, benchmark="bytes")}
    workers = sorted({_loader_key(r["config"])[2] for r in loader}, key=int)
    out = []
    for data, pipeline in dict.fromkeys(_loader_key(r["config"])[:2] for r in loader):
        cells = [data, pipeline]
        for w in workers:
            r = next((r for r in loader if _loader_key(r["config"]) == (data, pipeline, w)), None)
            text = fmt(r["value"]) if r else ""
            if r and pipeline != "pre-made LR" and num(r.get("ratio")) is not None:
                text += f" ({ratio(r['ratio'], 2)})"
            cells.append(text)
        b = nbytes.get(f"{data}: {pipeline}")
        cells.append(f"{fmt(b['value'])} KiB" if b else "")
        out.append(cells)
    return table(["data", "pipeline", *[f"{w} worker{'s' if w != '1' else ''}, patch/s (× pre-made LR)"
                                        for w in workers], "file bytes read per patch"], out)


def data_resize(rows):
    out = []
    for r in where(rows, benchmark="imresize"):
        pil = one(rows, benchmark="pillow", config=r["config"])
        out.append([r["config"], fmt(pil.get("value")), fmt(r["value"]), ratio(r["ratio"], 2)])
    return table(["resize", "Pillow bicubic, img/s", "`imresize`, img/s", "`imresize` / Pillow"], out)


def data_records(rows):
    out = [[r["config"], f"{fmt(r['value'])} {r['unit']}", fmt(r["ratio"], 2)]
           for r in rows if r["benchmark"] in ("breakdown", "footprint")]
    return table(["quantity", "value", "share of the total (breakdown) or × the PNGs (footprint)"], out)


def inference_grid(rows):
    out = []
    for variant, side, mode in dict.fromkeys((r["variant"], r["side"], r["mode"]) for r in rows):
        here = where(rows, variant=variant, side=side, mode=mode)
        f32, bf16 = one(here, dtype="float32", ensemble="False"), one(here, dtype="bfloat16", ensemble="False")
        ens = one(here, dtype="float32", ensemble="True")
        tile = f" ({(f32 or bf16)['budget']} budget: {(f32 or bf16)['tile']}² tiles)" if mode == "tiled" else ""
        out.append([f"{variant} x{(f32 or bf16 or ens)['scale']}", f"{side}²", mode + tile, fmt(f32.get("time_s")),
                    fmt(bf16.get("time_s")), fmt(ens.get("time_s")),
                    " / ".join(fmt(r.get("peak_rss_gb")) for r in (f32, bf16))])
    return table(["model", "LR side", "mode", "float32, s", "bfloat16, s", "float32 + ensemble, s",
                  "peak RSS, GB (float32 / bfloat16)"], out)


def inference_memory(rows):
    """Whole-image float32 peak RSS and its slope per LR pixel between neighbouring sizes."""
    out = []
    for variant in distinct(rows, "variant"):
        pts = where(rows, variant=variant, mode="whole", dtype="float32", ensemble="False")
        pts.sort(key=lambda r: int(r["side"]))
        for prev, r in zip([None] + pts, pts):
            slope = ""
            if prev:
                d = (num(r["peak_rss_gb"]) - num(prev["peak_rss_gb"])) * 1e9 / (int(r["side"]) ** 2 - int(prev["side"]) ** 2)
                slope = f"{fmt(d / 1e3)} KB per LR pixel ({prev['side']}² → {r['side']}²)"
            out.append([f"{variant} x{r['scale']}", f"{r['side']}²", fmt(r["peak_rss_gb"]), slope])
    return table(["model", "LR side", "peak RSS, GB (whole image, float32)", "growth"], out)


QUALITY_METHODS = {"tiled48": "tiled 48", "tiled96": "tiled 96", "buckets": "reflect-pad buckets (before exact buckets)", "bfloat16": "bf16",
                   "ensemble": "ensemble"}


def inference_quality(rows):
    out = []
    for ckpt in distinct(rows, "checkpoint"):
        here = where(rows, checkpoint=ckpt)
        whole = one(here, method="whole")
        cells = [f"{ckpt} ({whole['arch']}, `{whole['semantics']}`)", fmt(whole["set5_psnr"], 5)]
        for m in QUALITY_METHODS:
            r = one(here, method=m)
            cells.append(f"{num(r['delta_db']):+.4f} ({fmt(r['max_abs_delta_db'], 3)})" if r else "")
        out.append(cells)
    return table(["checkpoint", "whole image, dB", *[f"{v}: Δ (max \\|Δ\\|)" for v in QUALITY_METHODS.values()]],
                 out)


def inference_seams(rows):
    out = [[f"{r['checkpoint']}, {QUALITY_METHODS[r['method']]}", fmt(r["interior_excess_8bit"]),
            fmt(r["band_excess_8bit"]), fmt(r["interior_dev_8bit"]), fmt(r["band_dev_8bit"])]
           for r in rows if num(r.get("band_excess_8bit")) is not None]
    return table(["case", "excess error, interior", "excess error, blend bands", "deviation from whole, interior",
                  "deviation from whole, bands"], out)


def bench_inference(rows):
    out = [[f"{r['model']} x{r['scale']}, {r['lr_hw']}", f"`{r['semantics']}`", spread(r, "fwd_s", fmt),
            fmt(r["compile_s"]), fmt(r["gflop"]), fmt(r["matmul_gflops"]), fmt(r["floor_s"]),
            fmt(r["fwd_over_floor"])] for r in rows]
    return table(["case", "semantics", "forward, s: median (min)", "compile, s", "GFLOP", "matmul GFLOP/s",
                  "floor, s", "× floor"], out)


def outside_anchors(rows):
    out = [[r["machine_measured_on"], r["case"], r["figure"]] for r in rows]
    return table(["machine", "case", "figure (outside figure: not measured by this repository)"], out)


def demo(rows):
    out = [[r["date"], r["steps"], fmt(r["set5_x2_psnr"], 4), fmt(r["bicubic_psnr"], 4),
            f"{num(r['margin_db']):+.2f}", fmt(r["set5_x2_ssim"], 4), fmt(r["train_minutes"]),
            fmt(r["step_s"]), r.get("note", "")] for r in rows]
    return table(["date", "steps", "Set5 x2 Y-PSNR, dB", "bicubic, dB", "margin, dB", "SSIM",
                  "training, min", "s/step", "conditions"], out)


def model_zoo(rows):
    out = [[f"`{r['model']}`", r["variant"], f"x{r['scale']}", r["task"], f"{int(r['parameters']):,}",
            f"`{r['authors_file']}`"] for r in rows]
    return table(["`--model`", "variant", "scale", "task", "parameters", "the authors' file"], out)


def export_onnx(rows):
    out = [[r["model"], f"x{r['scale']}", r["semantics"], r["size"], f"{num(r['bytes']) / 1e6:.1f} MB",
            f"{int(r['nodes']):,}", f"{fmt(r['export_s'])} + {fmt(r['check_s'])}", r["max_abs_diff"],
            f"{r['levels_differing']} of {int(r['samples']):,}"] for r in rows]
    return table(["model (random init)", "scale", "semantics", "LR size", "file", "nodes", "export + check, s",
                  "max \\|ONNX − JAX\\|", "8-bit samples one level apart"], out)


def bench_folder(rows):
    out = [[r.get("bucketing", ""), r["mode"], r["compiles"], fmt(r["first_s"]), fmt(r["steady_median_s"]),
            fmt(r["total_s"]), r["date"]] for r in rows]
    return table(["bucketing", "mode", "compiles", "first image, s", "steady median, s",
                  f"total, s ({rows[0]['images']} images)", "date"], out)


def bench_train(rows):
    out = [[f"{r['model']} x{r['scale']}, batch {r['batch']}, {r['patch']}² LR", f"`{r['semantics']}`", r["dtype"],
            fmt(r["step_s"]), fmt(r["img_per_s"]), fmt(r["compile_s"]), fmt(r["gflop"]), fmt(r["matmul_gflops"]),
            fmt(r["step_over_floor"]), fmt(num(r["compiled_bytes"]) / 1e9 if num(r["compiled_bytes"]) else "")]
           for r in rows if not r.get("error")]
    return table(["case", "semantics", "dtype", "step, s (median)", "img/s", "compile, s", "GFLOP/step",
                  "matmul GFLOP/s", "× floor", "compiled memory, GB"], out)


def compile_cache(rows):
    out = [[f"`{r['config']}`", fmt(r["cache_off_s"]), fmt(r["cache_cold_s"]), fmt(r["cache_warm_s"]),
            ratio(r["warm_over_off"], 2)] for r in rows]
    return table(["config", "cache off, s", "cache cold, s", "cache warm, s", "warm / off"], out)


TABLES: dict[str, Table] = {
    "profile_tpu": Table("profile_step.csv", lambda rows: profile_before_after(rows, "v5p"),
                         lambda rows: where(rows, case="v5p")),
    "profile_v5e16": Table("profile_step.csv", lambda rows: profile_before_after(rows, "v5e16_bf16"),
                           lambda rows: where(rows, case="v5e16_bf16")),
    "profile_cpu": Table("profile_step.csv", lambda rows: profile_categories(rows, "cpu"),
                         lambda rows: profile_rows(rows, "cpu")),
    "profile_top": Table("profile_step.csv", profile_top, lambda rows: profile_rows(rows, "v5p")),
    "scan_cpu": Table("scan_cpu.csv", scan_cpu, lambda rows: where(rows, **SCAN_POINT) + where(rows, kind="memory")),
    "scan_auto": Table("scan_cpu.csv", scan_auto, lambda rows: where(rows, kind="scan")),
    "scan_model": Table("scan_model_cpu.csv", scan_model),
    "vs_reference": Table("bench_vs_reference.csv", vs_reference, extra=("torch_version", "torch_threads")),
    "train_vs_reference": Table("bench_train_vs_reference.csv", train_vs_reference,
                                extra=("torch_version", "torch_threads")),
    "train_vs_reference_ops": Table("bench_train_vs_reference_ops.csv", train_vs_reference_ops),
    "data_loader": Table("bench_data.csv", data_loader, lambda rows: where(rows, benchmark="loader")),
    "data_resize": Table("bench_data.csv", data_resize,
                         lambda rows: [r for r in rows if r["benchmark"] in ("pillow", "imresize")]),
    "data_records": Table("bench_data.csv", data_records,
                          lambda rows: [r for r in rows if r["benchmark"] in ("breakdown", "footprint")]),
    "inference_grid": Table("bench_inference_grid.csv", inference_grid),
    "inference_memory": Table("bench_inference_grid.csv", inference_memory,
                              lambda rows: where(rows, mode="whole", dtype="float32", ensemble="False")),
    "inference_quality": Table("inference_quality.csv", inference_quality),
    "inference_seams": Table("inference_quality.csv", inference_seams,
                             lambda rows: [r for r in rows if num(r.get("band_excess_8bit")) is not None]),
    "bench_inference": Table("bench_inference.csv", bench_inference, extra=("allocator",)),
    "demo": Table("demo.csv", demo),
    "model_zoo": Table("model_zoo.csv", model_zoo),
    "pod_plan_dtype": Table("pod_plan_dtype.csv", pod_plan_dtype),
    "export_onnx": Table("export_onnx.csv", export_onnx, extra=("onnxruntime",)),
    "anchors_authors_code": Table("outside_anchors.csv",
                                  lambda rows: outside_anchors(where(rows, section="authors_code"))),
    "anchors_floor": Table("outside_anchors.csv", lambda rows: outside_anchors(where(rows, section="floor"))),
    "bench_folder": Table("bench_folder.csv", bench_folder),
    "bench_train": Table("bench_train.csv", bench_train),
    "compile_cache": Table("compile_cache.csv", compile_cache),
    "study_first_results": Table("studies/first_results/report.csv", study_first_results),
    "study_ring_ablation": Table("studies/ring_ablation/report.csv", study_ring_ablation),
    "study_ring_mechanism": Table("studies/ring_ablation/mechanism.csv", study_ring_mechanism),
    "study_ring_bicubic": Table("studies/ring_ablation/bicubic.csv", study_ring_bicubic),
    "study_ring_ablation_1600": Table("studies/ring_ablation_1600/report.csv", study_ring_ablation),
    "study_ring_mechanism_1600": Table("studies/ring_ablation_1600/mechanism.csv", study_ring_mechanism),
    "study_bf16": Table("studies/bf16_quality/report.csv", study_bf16),
    "study_bf16_loss": Table("studies/bf16_quality/loss_curves.csv", study_bf16_loss),
    "pod_plan": Table("pod_plan.csv", pod_plan),
}
