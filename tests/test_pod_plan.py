"""pod_plan: the training step compiled for a real TPU topology on this CPU (needs libtpu; skipped
without it), checked against a CPU compile of the same step; and the command without libtpu."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from lsm_jax import pod_plan as plan_cli
from lsm_jax.pod import fit, plan as pod_plan, tables
from lsm_jax.training import sharding
from lsm_jax.training.state import abstract_like
from lsm_jax.training.step import build
from fixture_training import micro_config

HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None


def _abstract_batch(parts, config):
    b, p, s = config.batch_size, config.patch_size, config.model.upscale
    return {"lq": jax.ShapeDtypeStruct((b, p, p, 3), jnp.float32, sharding=parts.batch_sharding),
            "gt": jax.ShapeDtypeStruct((b, p * s, p * s, 3), jnp.float32, sharding=parts.batch_sharding)}


def _micro():
    config = micro_config(batch_size=8)
    config.model.scan.impl = "associative"  # what 'auto' picks on a TPU, here on both sides
    return config


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e '.[tpu]')")
def test_tiny_step_compiles_for_v5e_2x2_and_agrees_with_a_cpu_compile(tmp_path):
    config = _micro()
    row = pod_plan.plan_train(config, "v5e:2x2", (-1, 1, 1))
    assert row.status == "ok", row.reason
    assert (row.devices, row.chips, row.mesh) == (4, 4, "4×1×1")
    assert 0 < row.total_gib < row.hbm_gib and row.headroom_gib > 0
    # The same step compiled for 4 CPU devices: FLOPs of the per-device program agree.
    mesh = sharding.make_mesh(-1, 1, 1, devices=jax.devices("cpu")[:4])
    parts = build(config, mesh)
    cpu = parts.step.lower(abstract_like(parts.abstract_state, parts.state_shardings),
                           _abstract_batch(parts, config)).compile()
    cpu_gflops = float(cpu.cost_analysis()["flops"]) / 1e9  # v5e: one device per chip
    ratio = row.gflops_per_chip / cpu_gflops
    print(f"TPU/CPU FLOPs per device: {row.gflops_per_chip:.4f} / {cpu_gflops:.4f} GFLOP = {ratio:.3f}")
    assert abs(ratio - 1) < 0.10
    # Data parallel: gradients are all-reduced, nothing (no activation) is all-gathered.
    assert "all-reduce" in row.collectives and "all-gather" not in row.collectives, row.collectives
    # MFU = FLOPs per device / the cost model's step time / the v5e's peak (197 TFLOP/s bf16 per chip,
    # one device per chip); images/s per chip = global batch / step time / chips.
    seconds = row.cost_model_ms / 1e3
    assert seconds > 0 and row.mfu == pytest.approx(row.gflops_per_chip * 1e9 / seconds / 197e12, rel=1e-9)
    assert row.images_per_s_per_chip == pytest.approx(8 / seconds / 4, rel=1e-9)
    # The roofline of the same program (lsm_jax.pod.profile), in columns of its own: its own time, and
    # images/s and MFU from it the same way (FLOPs counted from the HLO, within 5 % of XLA's count).
    roof = row.roofline_ms / 1e3
    assert roof > 0 and row.roofline_images_per_s_per_chip == pytest.approx(8 / roof / 4, rel=1e-9)
    assert row.roofline_mfu == pytest.approx(row.gflops_per_chip * 1e9 / roof / 197e12, rel=0.05)
    # The report: CSV and Markdown.
    tables.write_csv([row], tmp_path / "plan.csv")
    assert "v5e:2x2" in (tmp_path / "plan.csv").read_text()
    assert "| train |" in tables.markdown([row])
    assert tables.read_csv(tmp_path / "plan.csv") == [row]


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e '.[tpu]')")
def test_impossible_combinations_get_a_row_that_says_why():
    config = _micro()
    config.batch_size = 6
    row = pod_plan.plan_train(config, "v5e:2x2", (-1, 1, 1))
    assert row.status == "invalid" and "not a multiple of the 4 batch shards" in row.reason


def test_without_libtpu_the_command_says_how_to_get_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "libtpu" else real(name, *a))
    assert plan_cli.main(["--config", "lsm_light:tiny", "--topology", "v5e:2x2"]) == 2
    assert "pip install -e '.[tpu]'" in capsys.readouterr().err


def test_compiler_oom_messages_and_topology_names_are_read():
    msg = ("RESOURCE_EXHAUSTED: E1000: CompileTimeHbmOom: Ran out of memory on HBM, the total memory required "
           "for HLO temporaries (200.00G) exceeds available HBM (15.25G). HLO module: jit_step.")
    assert pod_plan.parse_oom(msg) == pytest.approx((200.0, 15.25))
    assert pod_plan.parse_oom("Used 20.50G of 15.75G hbm. Exceeded hbm capacity by 4.75G.") == \
        pytest.approx((20.5, 15.75))
    assert pod_plan.chips.topology_chips("v4:2x2x1") == 4 and pod_plan.chips.topology_chips("v5e:16x16") == 256
    with pytest.raises(ValueError, match="expected '<chip>:<dims>'"):
        pod_plan.chips.topology_chips("v5e-16")


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed (pip install -e '.[tpu]')")
def test_a_v4_mesh_takes_both_tensorcores_of_each_chip():
    devices = pod_plan.topology_devices("v4:2x2x1")  # libtpu lists the 2 cores of each of 4 chips
    assert len(devices) == 8 and pod_plan.chips.devices_per_chip(devices) == 2
    mesh = sharding.make_mesh(-1, 1, 1, devices=devices)
    assert mesh.devices.shape == (8, 1, 1)
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in devices)
    # Neighbouring data shards share a chip.
    first_chip = [d.coords for d in mesh.devices.flat[:2]]
    assert first_chip[0] == first_chip[1]


def _fit_search(monkeypatch, memory, hbm=15.75):
    """fit.fit_largest on a memory model (GiB per device of a global batch, 4 devices), seeded with
    batches 8 and 16; returns (the rows it compiled, the batches in compile order)."""
    def row(batch, gib):
        return pod_plan.PlanRow("train", "lsm_light", "tiny", "v5e:2x2", "4×1×1", batch, 64, "float32", False, 1,
                                devices=4, chips=4, status="ok" if gib <= hbm else "oom", total_gib=gib, hbm_gib=hbm)

    compiled = []

    def fake_plan_train(config, topology, mesh):
        compiled.append(config.batch_size)
        return row(config.batch_size, memory(config.batch_size))

    monkeypatch.setattr(pod_plan, "plan_train", fake_plan_train)
    rows = [row(8, memory(8)), row(16, memory(16))]
    found = fit.fit_largest("lsm_light:tiny", "v5e:2x2", (-1, 1, 1), "float32", False, 1, rows)
    assert all("largest-fit search" in r.reason for r in found)
    return found, compiled


def _largest(found):
    """The largest fitting batch the search compiled (its row, and only its, says so)."""
    best = max((r for r in found if r.status == "ok"), key=lambda r: r.global_batch)
    assert [r.global_batch for r in found if "the largest fit" in r.reason] in ([best.global_batch], [])
    return best.global_batch


def test_fit_search_steps_down_then_bisects_to_the_largest_batch_that_fits(monkeypatch):
    def memory(batch):  # linear up to 40 images, steeper beyond: the first guess overshoots
        return 1.0 + 0.25 * batch + (0.2 * (batch - 40) if batch > 40 else 0.0)

    found, compiled = _fit_search(monkeypatch, memory)
    assert compiled[0] == 56  # 16 + (15.75 - 5) / 0.25 = 59, down to a multiple of the 4 devices
    # 48 fits (15.6 GiB) and 52 does not (16.4): the answer is 48, not the first fit after stepping down (44).
    assert _largest(found) == 48
    assert "the largest fit (52 fails)" in found[compiled.index(48)].reason
    assert 52 in compiled and max(c for c in compiled if memory(c) <= 15.75) == 48


def test_fit_search_goes_on_upwards_while_the_guesses_fit(monkeypatch):
    def memory(batch):  # flattens out: the linear extrapolation undershoots
        return 1.0 + 0.25 * min(batch, 24) + 0.05 * max(batch - 24, 0)

    found, compiled = _fit_search(monkeypatch, memory)
    assert memory(compiled[0]) <= 15.75  # the first guess fits; the search must not stop there
    largest = max(b for b in range(4, 400, 4) if memory(b) <= 15.75)
    assert _largest(found) == largest and largest + 4 in compiled


def test_flops_count_every_micro_batch_of_gradient_accumulation(monkeypatch):
    """XLA's cost analysis counts a loop body once: k = 2 micro-batches of 8 images must cost twice
    one batch of 8, both in pod_plan's figure and in the training meter's (CPU compile, 1 device)."""
    from lsm_jax.training import throughput
    seen = {}
    real_fill = pod_plan._fill_from_compiled

    def recording_fill(row, compiled, devices, micro=None):
        seen[row.grad_accum] = (compiled, micro)
        return real_fill(row, compiled, devices, micro)

    monkeypatch.setattr(pod_plan, "_fill_from_compiled", recording_fill)
    devices = jax.devices("cpu")[:1]
    gflops, meter_flops = {}, {}
    for k in (1, 2):
        config = micro_config(batch_size=8 * k, grad_accum_steps=k)
        row = pod_plan.plan_train(config, "cpu:1", (-1, 1, 1), devices)
        assert row.status == "ok", row.reason
        gflops[k] = row.gflops_per_chip
        compiled, micro = seen[k]
        meter_flops[k] = throughput.Meter(compiled, config.batch_size, devices, k, micro).flops_per_step
    print(f"GFLOP per step: k=1 {gflops[1]:.5f}, k=2 {gflops[2]:.5f}; meter {meter_flops[1]:.4g}, {meter_flops[2]:.4g}")
    assert gflops[2] / gflops[1] == pytest.approx(2.0, rel=0.02)
    assert meter_flops[2] / meter_flops[1] == pytest.approx(2.0, rel=0.02)
    assert meter_flops[1] == pytest.approx(gflops[1] * 1e9, rel=1e-6)


TINY = "configs/lsm_light.py:tiny"


@pytest.fixture
def no_libtpu_start(monkeypatch):
    """Bad input must be refused before libtpu starts: touching it fails the test."""
    def started(*a, **k):
        raise AssertionError("libtpu was started for bad input")

    monkeypatch.setattr(pod_plan, "require_libtpu", started)
    monkeypatch.setattr(pod_plan, "topology_devices", started)


@pytest.mark.parametrize("args, expected", [
    (["--config.nosuch.field=3"], "--config.nosuch.field=3: no such config field"),
    (["--config.model.rmin=abc"], "--config.model.rmin=abc: "),
    (["--config.model.rmin", "abc"], "--config.model.rmin=abc: "),
    (["--config.model.rmin"], "--config.model.rmin: expected --config.KEY=VALUE"),
    # The old alias is refused, saying how to write the override now.
    (["--set", "model.rmin=0.5"], "--set model.rmin=0.5: write config overrides as --config.KEY=VALUE "
                                  "(--config.model.rmin=0.5)"),
    (["--set=model.rmin=0.5"], "--set model.rmin=0.5: write config overrides as --config.KEY=VALUE"),
    (["--set", "model.rmin"], "--set model.rmin: write config overrides as --config.KEY=VALUE (--config.KEY=VALUE)"),
    (["--config", "lsm_light:nosuch"], "--config lsm_light:nosuch: unknown recipe 'nosuch'"),
    (["--infer", "0"], "--infer 0: every value must be ≥ 1"),
    (["--batch", "8,0"], "--batch 8,0: every value must be ≥ 1"),
    (["--grad-accum", "0"], "--grad-accum 0: every value must be ≥ 1"),
    (["--mesh", "2,2"], "--mesh 2,2: expected three sizes"),
])
def test_bad_input_is_one_line_naming_the_option_before_libtpu(args, expected, no_libtpu_start, capsys):
    assert _status(["--config", TINY, "--topology", "v5e:2x2", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"lsm-pod-plan: error: {expected}"), err


def _status(argv) -> int:
    """The command's exit status (argparse's own errors exit)."""
    try:
        return plan_cli.main(argv)
    except SystemExit as done:
        return done.code


def test_a_missing_config_file_is_reported_before_libtpu_starts(no_libtpu_start, capsys):
    assert plan_cli.main(["--config", "configs/nosuch.py:x2_scratch", "--topology", "v5e:2x2"]) == 2
    err = capsys.readouterr().err
    # The config loader's one message (it lists the packaged configs), nothing of pod_plan's own.
    assert err.startswith("lsm-pod-plan: error: --config: no config file or packaged config "
                          "'configs/nosuch.py' (expected a .py file, or one of: lsm, ")
    assert len(err.splitlines()) == 1 and err.endswith(")\n"), err
    # Through the command: one line and nothing else (a started libtpu writes its own warnings).
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "lsm_jax.pod_plan", "--config", "configs/nosuch.py:x2_scratch",
                           "--topology", "v5e:2x2", "--config.model.rmin=abc"], capture_output=True, text=True,
                          cwd=repo, timeout=300)
    assert done.returncode == 2 and done.stdout == "" and done.stderr == err, done.stderr


class _FakeDevice:
    device_kind = "TPU v5 lite"

    def __init__(self, i):
        self.id, self.coords = i, (i, 0, 0)


def test_overrides_reach_the_plan_and_a_mesh_must_match_the_devices(monkeypatch, capsys):
    monkeypatch.setattr(pod_plan, "require_libtpu", lambda: None)
    monkeypatch.setattr(pod_plan, "topology_devices", lambda name: [_FakeDevice(i) for i in range(4)])
    planned = []

    def fake_plan_train(config, topology, mesh, devices=None):
        planned.append((config, mesh))
        return pod_plan.PlanRow("train", "lsm_light", "tiny", topology, "4×1×1", config.batch_size, 32, "float32",
                                False, 1, devices=4, chips=4, status="invalid", reason="fake")

    monkeypatch.setattr(pod_plan, "plan_train", fake_plan_train)
    # A config file and a packaged config: every override applies to both.
    argv = ["--config", TINY, "--config", "lsm_light:tiny", "--topology", "v5e:2x2", "--batch", "8",
            "--config.model.rmin=0.5", "--config.model.d_state", "8"]
    assert plan_cli.main(argv) == 0
    assert len(planned) == 2
    for config, mesh in planned:
        assert config.model.rmin == 0.5 and config.model.d_state == 8 and mesh == (-1, 1, 1)
    capsys.readouterr()
    for mesh_arg, message in (("3,1,1", "--mesh 3,1,1: uses 3 devices, but v5e:2x2 has 4"),
                              ("-1,3,1", "--mesh -1,3,1: the fixed sizes (3 devices) do not divide the 4 devices")):
        assert plan_cli.main(argv + ["--mesh", mesh_arg]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"lsm-pod-plan: error: {message}"), err
    assert len(planned) == 2  # nothing compiled for a mesh that does not fit


@pytest.mark.parametrize("flag, level", [(None, "INFO"), ("-q", "WARNING"), ("--quiet", "WARNING")])
def test_quiet_leaves_the_table_and_no_progress_lines(flag, level, monkeypatch, capsys, tmp_path):
    import logging
    monkeypatch.setattr(pod_plan, "require_libtpu", lambda: None)
    monkeypatch.setattr(pod_plan, "topology_devices", lambda name: [_FakeDevice(i) for i in range(4)])
    monkeypatch.setattr(pod_plan, "plan_train", lambda config, topology, mesh, devices=None: pod_plan.PlanRow(
        "train", "lsm_light", "tiny", topology, "4×1×1", config.batch_size, 32, "float32", False, 1, devices=4,
        chips=4, status="invalid", reason="fake"))
    seen = {}
    monkeypatch.setattr(plan_cli.logging, "basicConfig", lambda **kw: seen.update(level=kw["level"]))
    csv, md = tmp_path / "plan.csv", tmp_path / "plan.md"
    argv = ["--config", TINY, "--topology", "v5e:2x2", "--batch", "8", "--csv", str(csv), "--markdown", str(md)]
    assert plan_cli.main(argv + ([flag] if flag else [])) == 0
    assert seen["level"] == getattr(logging, level)          # the rows' progress lines are log.info
    out = capsys.readouterr().out
    assert out.startswith("| ") and out == md.read_text() and csv.is_file()   # the table, whatever -q says


class _FakeCompiled:
    """What _fill_from_compiled reads from a compiled program: memory and cost analyses, HLO text."""

    def __init__(self, flops, seconds, temp=2 * 2**30):
        self.flops, self.seconds, self.temp = flops, seconds, temp

    def memory_analysis(self):
        import types
        return types.SimpleNamespace(argument_size_in_bytes=2**30, output_size_in_bytes=2**30,
                                     alias_size_in_bytes=2**30, temp_size_in_bytes=self.temp)

    def cost_analysis(self):
        return {"flops": self.flops, "optimal_seconds": self.seconds}

    def as_text(self):
        return "all-reduce(x)"


class _Core:
    def __init__(self, i, kind, cores_per_chip):
        self.id, self.device_kind, self.coords = i, kind, (i // cores_per_chip, 0, 0)


@pytest.mark.parametrize("kind, cores, peak_per_chip", [("TPU v5 lite", 1, 197e12), ("TPU v4", 2, 275e12),
                                                        ("TPU v5", 1, 459e12)])
def test_plan_figures_follow_their_formulas(kind, cores, peak_per_chip):
    """From known compiler figures: GFLOP per chip = per-device FLOPs × devices per chip; images/s per
    chip = global batch / step time / chips; MFU = per-device FLOPs / step time / per-device peak (the
    chip's bf16 peak / devices per chip); with k accumulation steps the scan body counts k times."""
    chips_n, batch = 4, 32
    devices = [_Core(i, kind, cores) for i in range(chips_n * cores)]
    for k, (flops, seconds), micro in ((1, (3e12, 0.25), None), (4, (1.2e12, 0.1), _FakeCompiled(0.9e12, 0.05))):
        row = pod_plan.PlanRow("train", "lsm", "x2_scratch", "x:2x2", "", batch, 64, "float32", False, k,
                               devices=len(devices), chips=chips_n, device_kind=kind)
        pod_plan._fill_from_compiled(row, _FakeCompiled(flops, seconds), devices, micro)
        step_flops = flops + (k - 1) * (micro.flops if micro else 0.0)        # per device
        step_s = seconds + (k - 1) * (micro.seconds if micro else 0.0)
        assert row.gflops_per_chip == pytest.approx(step_flops * cores / 1e9, rel=1e-12)
        assert row.cost_model_ms == pytest.approx(step_s * 1e3, rel=1e-12)
        assert row.images_per_s_per_chip == pytest.approx(batch / step_s / chips_n, rel=1e-12)
        assert row.mfu == pytest.approx(step_flops / step_s / (peak_per_chip / cores), rel=1e-12)
        assert row.total_gib == pytest.approx(3.0) and row.temp_gib == pytest.approx(2.0)


def test_hbm_capacities_are_gib_and_hold_what_the_compiler_allows():
    """The compiler's limits per device (libtpu's out-of-memory messages, in GiB) fit inside the
    published capacity per device; read as decimal GB, v5e's 16 would be 14.9 GiB, below its 15.75."""
    chips = pod_plan.chips
    expected = {"TPU v4": 15.25, "TPU v5 lite": 15.75, "TPU v5": 95.73, "TPU v6 lite": 31.24}
    assert chips.COMPILER_HBM_GIB_PER_DEVICE == expected
    for kind, limit in expected.items():
        per_chip = 2 if kind == "TPU v4" else 1  # libtpu lists a v4 chip's two TensorCores as two devices
        capacity = chips.chip_of(kind).per_device(per_chip).hbm_bytes / 2**30
        assert limit <= capacity <= limit * 1.05, (kind, capacity, limit)
        assert chips.usable_hbm_bytes(kind, per_chip) == limit * 2**30
    assert chips.chip_of("TPU v5 lite").hbm_bytes == 16 * 2**30


def test_tables_label_estimates_and_per_core_rows():
    v4 = pod_plan.PlanRow("train", "lsm", "x2_scratch", "v4:2x2x1", "8×1×1", 32, 64, "float32", False, 1,
                          devices=8, chips=4, device_kind="TPU v4", cost_model_ms=70.0, total_gib=11.0)
    v5e = pod_plan.PlanRow("train", "lsm", "x2_scratch", "v5e:4x4", "16×1×1", 32, 64, "float32", False, 1,
                           devices=16, chips=16, device_kind="TPU v5 lite", cost_model_ms=70.0)
    for columns in (tables.COLUMNS, tables.COMPACT):
        header, _, row_v4, row_v5e = tables.markdown([v4, v5e], columns).splitlines()
        names = [h.strip() for h in header.strip("|").split("|")]
        assert "cost-model estimate (ms)" in names and not any(n.endswith(" ms") for n in names)
        assert "per TensorCore" in row_v4 and "per TensorCore" not in row_v5e


def test_the_csv_reads_back_as_the_rows_it_was_written_from(tmp_path):
    rows = [pod_plan.PlanRow("train", "lsm", "x2_scratch", "v4:2x2x1", "8×1×1", 32, 64, "float32", True, 2,
                             devices=8, chips=4, device_kind="TPU v4", cost_model_ms=70.0, total_gib=11.5,
                             collectives="all-reduce:3"),
            pod_plan.PlanRow("infer", "lsm_s", "x4", "v5p:1x1x1", "1×1×1", 1, 256, "float32", False, 1,
                             status="oom", reason="a | b")]
    tables.write_csv(rows, tmp_path / "plan.csv")
    assert tables.read_csv(tmp_path / "plan.csv") == rows
    assert tables.read_csv(tmp_path / "none.csv") == []


def test_profile_flag_prints_the_profile_tables_and_writes_every_row(monkeypatch, tmp_path, capsys):
    from lsm_jax.pod import forward_profile, profile

    calls = []

    class FakeProfile:
        def tables(self, top):
            return [f"| table | top {top} |"]

        def rows(self, top=None):
            return [{"level": "total", "roofline_ms": 1.5}, {"level": "category", "name": "scan"}]

    def fake_profile_step(config, topology, mesh_sizes=(-1, 1, 1)):
        calls.append((int(config.batch_size), topology, tuple(mesh_sizes)))
        return FakeProfile()

    def fake_profile_forward(net, topology, size, batch):
        calls.append(("forward", int(net.upscale), topology, size, batch))
        return FakeProfile()

    monkeypatch.setattr(profile, "profile_step", fake_profile_step)
    monkeypatch.setattr(forward_profile, "profile_forward", fake_profile_forward)
    out = tmp_path / "p.csv"
    assert plan_cli.main(["--config", "lsm_light:tiny", "--topology", "cpu", "--batch", "4,8", "--profile",
                          "--top", "7", "-q", "--csv", str(out)]) == 0
    assert calls == [(4, None, (-1, 1, 1)), (8, None, (-1, 1, 1))]
    assert capsys.readouterr().out.count("| table | top 7 |") == 2
    rows = out.read_text().splitlines()
    assert rows[0].startswith("config,topology,dtype,program_kind,level") and len(rows) == 5
    assert rows[1].split(",")[3] == "train"
    # --infer adds the forward's profile at each size; --no-train leaves only those.
    calls.clear()
    assert plan_cli.main(["--config", "lsm_light:tiny", "--topology", "cpu", "--profile", "--infer", "32,48",
                          "--no-train", "--infer-batch", "2", "-q", "--csv", str(out)]) == 0
    assert calls == [("forward", 2, None, 32, 2), ("forward", 2, None, 48, 2)]
    assert {r.split(",")[3] for r in out.read_text().splitlines()[1:]} == {"forward"}


@pytest.mark.parametrize("extra", [["--fit"], ["--top", "0"], ["--no-train"]])
def test_profile_refuses_what_it_cannot_combine_with(extra, capsys):
    assert plan_cli.main(["--config", "lsm_light:tiny", "--topology", "cpu", "--profile", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsm-pod-plan: error:") and "\n" not in err


def test_the_docs_plan_table_shows_roofline_columns_once_the_csv_has_them():
    import csv

    from experiments import pod_tables
    with open(Path(__file__).resolve().parents[1] / "experiments/results/pod_plan.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    before = pod_tables.pod_plan(rows)
    assert "roofline" not in before[0]
    rows[0] = dict(rows[0], roofline_ms="12.5", roofline_images_per_s_per_chip="640", roofline_mfu="0.123")
    after = pod_tables.pod_plan(rows)
    assert after[0].count("**estimate:** roofline") == 3 and after[0].count("|") == before[0].count("|") + 3
    assert sum("| 12.5 | 640 | 12.3 % |" in line for line in after[2:]) == 1
    assert all(line.count("|") == after[0].count("|") for line in after[2:])
