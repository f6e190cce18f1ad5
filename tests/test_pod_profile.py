"""pod.profile: the ops of a compiled program with FLOPs, bytes, roofline time and category. A tiny
program with known ops on the CPU (FLOPs, bytes, categories, a measured trace); the training step of the
micro model compiled for one v5p chip (needs libtpu; skipped without it): every category sums to the total."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import pytest

from lsm_jax.pod import hlo_cost, profile
from fixture_training import micro_config

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
M, K, N = 64, 48, 40
CEILING = profile.Ceiling("cpu", 1e11, 1e10, "given for the test")


def _tiny():
    """One dot, one transpose, one sort, one reduce: each its own op on the CPU backend."""
    def f(a, b):
        e = jnp.sort(a @ b, axis=0)                   # (M, N), sorted along M
        return jnp.sum(jnp.exp(e), axis=0), a.T       # a reduce; a transpose of an argument
    a = jnp.arange(M * K, dtype=jnp.float32).reshape(M, K) / (M * K)
    b = jnp.ones((K, N), jnp.float32)
    return jax.jit(f), a, b


def test_a_tiny_program_has_its_ops_costed_and_categorised():
    fn, a, b = _tiny()
    compiled = fn.lower(a, b).compile()
    prof = profile.profile_compiled(compiled, "tiny", "cpu", CEILING)
    by_kind = {}
    for o in prof.ops:
        by_kind.setdefault(o.kind, []).append(o)
    dot = by_kind["dot"]
    assert len(dot) == 1 and dot[0].category == "matmul/conv"
    assert dot[0].flops == 2 * M * N * K
    assert (M * K + K * N + M * N) * 4 <= dot[0].bytes <= 2 * (M * K + K * N + M * N) * 4
    assert [o.category for o in by_kind["sort"]] == ["sort/gather/scatter"]
    assert by_kind["sort"][0].bytes == 2 * M * N * 4
    layout = [o for o in prof.ops if o.category == "layout"]
    assert any(o.bytes == 2 * M * K * 4 for o in layout)               # the transpose: read a, write aᵀ
    assert all(o.flops == 0 for o in layout)
    reduce = [o for o in prof.ops if o.kind == "reduce"]
    assert reduce and all(o.category == "norm/elementwise" for o in reduce)
    # FLOPs agree with XLA's own count; the roofline of each op is the larger of its two times.
    assert prof.flops == pytest.approx(prof.xla_flops, rel=0.05)
    for o in prof.ops:
        assert o.roofline_s == pytest.approx(max(o.flops / CEILING.peak_flops, o.bytes / CEILING.bandwidth))
    # Per category and per module the rows add up to the total.
    for key in ("category", "module"):
        assert sum(g["roofline_s"] for g in prof.group(key)) == pytest.approx(prof.roofline_s)
        assert sum(g["flops"] for g in prof.group(key)) == pytest.approx(prof.flops)
    tables = prof.tables()
    assert len(tables) == 5 and "**estimate:** roofline ms" in tables[1]
    rows = prof.rows()
    assert rows[0]["level"] == "total" and {r["level"] for r in rows} == {"total", "category", "module", "site", "op"}
    assert sum(g["roofline_s"] for g in prof.group("site")) == pytest.approx(prof.roofline_s)


def test_the_cpu_trace_measures_the_ops():
    fn, a, b = _tiny()
    compiled = fn.lower(a, b).compile()
    prof = profile.profile_compiled(compiled, "tiny", "cpu", CEILING)
    profile.measure(prof, lambda: jax.block_until_ready(compiled(a, b)), steps=2)
    sort = next(o for o in prof.ops if o.kind == "sort")
    assert sort.measured_s > 0 and prof.measured_step_s >= prof.measured_busy_s > 0
    assert "measured ms" in prof.tables()[1]


def test_conv_flops_count_valid_taps_only():
    """A 3×3 'SAME' convolution over 4×4: the border outputs see fewer taps (XLA's counting)."""
    x = jnp.ones((1, 4, 4, 2))
    w = jnp.ones((3, 3, 2, 5))
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
    module = hlo_cost.parse_module(conv.lower(x, w).compile().as_text())
    flops = sum(module.instr_flops(c, i) for c, instrs in module.computations.items() for i in instrs
                if i.opcode == "convolution")
    valid = (2 + 3 + 3 + 2) ** 2    # per spatial dim: taps that land inside, summed over the 4 outputs
    assert flops == 2 * 5 * 2 * valid


LOOP = """HloModule loop

%body (p: (s32[], f32[4])) -> (s32[], f32[4]) {
  %p = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = f32[4]{0} get-tuple-element(%p), index=1
  %one = s32[] constant(1)
  %next = s32[] add(%i, %one)
  %y = f32[4]{0} multiply(%x, %x)
  ROOT %t = (s32[], f32[4]{0}) tuple(%next, %y)
}

%cond (p: (s32[], f32[4])) -> pred[] {
  %p = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %n = s32[] constant(7)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %zero = s32[] constant(0)
  %init = (s32[], f32[4]{0}) tuple(%zero, %x)
  %w = (s32[], f32[4]{0}) while(%init), condition=%cond, body=%body
  ROOT %r = f32[4]{0} get-tuple-element(%w), index=1
}
"""


def test_a_loop_body_counts_its_trip_count_and_tiled_layouts_pad():
    """No known_trip_count (as libtpu prints a gradient-accumulation scan): read from `i < 7`."""
    module = hlo_cost.parse_module(LOOP)
    while_op = module.by_name[module.entry]["w"]
    assert module.trip_count(while_op) == 7
    ops = {o.name: o for o in profile.collect_ops(module, CEILING)}
    assert ops["w/y"].count == 7 and ops["w/y"].flops == 7 * 4 and ops["w/y"].bytes == 7 * 2 * 16
    assert module.instr_flops(module.entry, while_op) == 7 * (4 + 1 + 1)   # body multiply and add, the compare
    tiled, = hlo_cost.parse_arrays("f32[3,100]{1,0:T(8,128)S(1)}")
    assert (tiled.elements, tiled.nbytes, tiled.memory_space) == (300, 8 * 128 * 4, 1)


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e '.[tpu]')")
def test_the_micro_step_on_one_v5p_chip_sums_up():
    config = micro_config(batch_size=8)
    config.model.scan.impl = "associative"  # what 'auto' picks on a TPU
    prof = profile.profile_step(config, "v5p:1x1x1")
    assert prof.target == "v5p:1x1x1" and prof.ceiling.peak_flops == pytest.approx(459e12)
    assert prof.cost_model_s and prof.cost_model_s > 0
    assert prof.flops == pytest.approx(prof.xla_flops, rel=0.05)
    cats = {g["name"]: g for g in prof.group("category")}
    assert set(cats) <= set(profile.CATEGORIES)
    assert {"matmul/conv", "attention", "sort/gather/scatter", "scan", "norm/elementwise", "layout"} <= set(cats)
    for field in ("roofline_s", "flops", "bytes"):
        assert sum(g[field] for g in cats.values()) == pytest.approx(getattr(prof, field), rel=1e-9)
    assert sum(g["roofline_share"] for g in cats.values()) == pytest.approx(1.0)
    assert cats["matmul/conv"]["flops"] > 0.5 * prof.flops      # the projections and convolutions
    # The roofline MFU: FLOPs / (roofline time × the v5p's 459 TFLOP/s).
    assert prof.roofline_mfu == pytest.approx(prof.flops / prof.roofline_s / 459e12)
    summary = prof.tables()[0]
    assert "**estimate:** cost-model ms" in summary and "v5p:1x1x1" in summary


def test_the_micro_forward_on_this_cpu_is_profiled_and_measured():
    """`forward_profile`: the inference forward of the micro model at 16², compiled and traced here; its
    categories sum to the total and the attention, sort and scan ops of the network are found."""
    from lsm_jax.pod.forward_profile import profile_forward
    config = micro_config(batch_size=2)
    prof = profile_forward(config.model, None, size=16, batch=2, steps=1, ceiling=CEILING)
    assert prof.target == "cpu" and prof.batch == 2 and prof.program.startswith("forward x2 16² batch 2")
    cats = {g["name"]: g for g in prof.group("category")}
    assert {"matmul/conv", "attention", "sort/gather/scatter", "scan"} <= set(cats)
    for field in ("roofline_s", "flops"):
        assert sum(g[field] for g in cats.values()) == pytest.approx(getattr(prof, field), rel=1e-9)
    assert prof.flops == pytest.approx(prof.xla_flops, rel=0.05)
    assert prof.measured_step_s >= prof.measured_busy_s > 0
    assert sum(o.measured_s for o in prof.ops) > 0
    with pytest.raises(ValueError, match="batch a multiple"):
        profile_forward(config.model, None, size=16, batch=-1)


def _profile_rows(revision: str, scale: float) -> list[dict]:
    base = dict(case="v5p", revision=revision, commit=f"c_{revision}", program="train x", target="v5p:1x1x1",
                ops="1", flops="1e9", roofline_mfu="0.1", roofline_images_per_s_per_chip="10", cost_model_ms="",
                ceiling="given")
    cats = [dict(base, level="category", name="matmul/conv", bytes=str(2e9 * scale), roofline_ms=str(4 * scale),
                 roofline_share="0.4"),
            dict(base, level="category", name="attention", bytes=str(3e9), roofline_ms="6", roofline_share="0.6")]
    return cats + [dict(base, level="total", name="step", bytes=str(2e9 * scale + 3e9), roofline_ms=str(4 * scale + 6))]


def test_the_docs_profile_table_sets_a_change_before_and_after_side_by_side():
    from experiments import pod_tables
    rows = _profile_rows("before", 1.0) + _profile_rows("after", 0.5)
    lines = pod_tables.profile_before_after(rows, "v5p")
    assert "roofline ms, before" in lines[0] and "after / before" in lines[0]
    assert lines[2].startswith("| matmul/conv | 2 | 1 | 4 | 2 |") and lines[2].endswith("| 0.50× |")
    assert lines[3].endswith("| 1.00× |") and lines[4].startswith("| **total** |") and lines[4].endswith("| 10 | 8 | 100.0 % | 0.80× |")
    assert any("**before** (commit c_before)" in line for line in lines)
    # One revision only: the plain per-category table of it; the newest revision is the one shown.
    assert pod_tables.profile_before_after(_profile_rows("before", 1.0), "v5p")[0].startswith("| category | ops |")
    assert pod_tables.profile_rows(rows, "v5p")[0]["revision"] == "after"


def test_torch_ops_are_sorted_into_the_op_kinds_both_sides_share():
    from experiments.bench_train_vs_reference import torch_kind
    assert [torch_kind(op) for op in ("aten::mkldnn_convolution", "aten::addmm", "aten::bmm", "aten::sort",
                                      "aten::gather", "aten::copy_", "aten::cat", "aten::roll",
                                      "aten::native_layer_norm", "aten::gelu", "aten::_softmax", "aten::cumsum")] \
        == ["matmul/conv"] * 3 + ["sort/gather/scatter"] * 2 + ["layout"] * 3 + ["elementwise/norm"] * 3 + ["scan"]
