"""Plan a TPU run without a TPU: compile the real training step (or the inference forward) ahead of
time for a TPU topology on this machine and read the compiler's memory and cost figures.

    rows = [plan_train(config, "v5e:4x4", (-1, 1, 1))]     # config: a training config (recipes)

The training step is `lsm_jax.training.step.build`, the one `train` runs: same sharding rules,
donation, optimizer and EMA, lowered from abstract shapes (no parameter is allocated). Needs the
`libtpu` package (`pip install -e '.[tpu]'`); compilation only, no TPU is touched.

Every memory figure is the compiler's (`memory_analysis`, or its out-of-memory message); FLOPs and
the step time are the compiled program's `cost_analysis` (`optimal_seconds`: the TPU cost model's
estimate, not a measurement). With gradient accumulation (k micro-batches in a `lax.scan`, whose
body the cost analysis counts once) the scan body is compiled alone as well and counted k times
(`throughput.step_cost`); the row's compile time includes it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from lsm_jax.runtime import chips
from lsm_jax.training import sharding, throughput
from lsm_jax.training.state import abstract_like

LIBTPU_HINT = ("pod_plan needs the libtpu package to compile for TPU topologies on this machine: "
               "pip install -e '.[tpu]'  (or: pip install libtpu)")


class LibtpuMissing(RuntimeError):
    """libtpu is not installed: TPU programs cannot be compiled here."""


@dataclasses.dataclass
class PlanRow:
    """One compiled (or rejected) combination; figures are per device unless named per chip."""
    kind: str                 # 'train' | 'infer'
    variant: str
    recipe: str
    topology: str
    mesh: str                 # 'data×fsdp×model'
    global_batch: int
    image: int                # LR side of the input (training patch or inference image)
    dtype: str
    remat: bool
    grad_accum: int
    devices: int = 0
    chips: int = 0
    device_kind: str = ""
    status: str = "ok"        # ok | oom | invalid | error
    reason: str = ""
    batch_per_chip: float = 0.0
    argument_gib: float | None = None
    output_gib: float | None = None
    alias_gib: float | None = None
    temp_gib: float | None = None
    total_gib: float | None = None     # argument + output − aliased (donated) + temporaries
    hbm_gib: float | None = None       # HBM per device the compiler allows (chips.usable_hbm_bytes)
    headroom_gib: float | None = None
    gflops_per_chip: float | None = None
    cost_model_ms: float | None = None
    images_per_s_per_chip: float | None = None
    mfu: float | None = None
    # The roofline of the same program (lsm_jax.pod.profile): Σ over ops of max(FLOPs/peak, bytes/HBM
    # bandwidth), a lower bound for ops run one after another; it has a time where the cost model has none.
    roofline_ms: float | None = None
    roofline_images_per_s_per_chip: float | None = None
    roofline_mfu: float | None = None
    compile_s: float | None = None
    collectives: str = ""


def require_libtpu() -> None:
    """Raises LibtpuMissing with the install command when libtpu is absent."""
    if importlib.util.find_spec("libtpu") is None:
        raise LibtpuMissing(LIBTPU_HINT)


def topology_devices(name: str) -> list:
    """The devices of a TPU topology ('v5e:4x4', 'v4:2x2x1', 'v5p:2x2x4', ...) for compilation."""
    require_libtpu()
    # Another process (a CPU training run with libtpu importable) may hold libtpu's lock file;
    # compiling needs no exclusive TPU access.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies
    try:
        return list(topologies.get_topology_desc(topology_name=name, platform="tpu").devices)
    except Exception as err:  # libtpu rejects unknown names with a long message
        raise ValueError(f"topology {name!r}: libtpu cannot describe it ({str(err).splitlines()[0][:200]})") from None


_GIB = 2.0**30
# The two shapes of libtpu's compile-time out-of-memory message.
_OOM = (re.compile(r"required[^()]*\(([\d.]+)([KMGT])\)[^()]*exceeds available HBM \(([\d.]+)([KMGT])\)"),
        re.compile(r"Used ([\d.]+)([KMGT]) of ([\d.]+)([KMGT]) hbm"))


def _bytes(value: str, unit: str) -> float:
    return float(value) * 1024.0 ** ("KMGT".index(unit.upper()) + 1)


def parse_oom(message: str) -> tuple[float, float] | None:
    """(GiB needed, GiB available) per device from the compiler's out-of-memory message, if it has them."""
    for pattern in _OOM:
        m = pattern.search(message)
        if m:
            return _bytes(*m.group(1, 2)) / _GIB, _bytes(*m.group(3, 4)) / _GIB
    return None


def collectives(hlo_text: str) -> dict[str, int]:
    """How many of each cross-device collective an optimized HLO module contains."""
    ops = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
    return {op: len(re.findall(rf"\b{op}(?:-start)?\(", hlo_text)) for op in ops}


def _fill_from_compiled(row: PlanRow, compiled, devices: list, micro=None) -> None:
    """The row's figures from the compiled step; `micro`: the compiled accumulation-scan body when the
    step accumulates k = row.grad_accum > 1 micro-batches (the cost analysis counts that body once)."""
    per_chip = chips.devices_per_chip(devices)
    chip = chips.chip_of(devices[0].device_kind)
    dev = chip.per_device(per_chip) if chip else None
    mem = compiled.memory_analysis()
    arg, out, alias, temp = (mem.argument_size_in_bytes, mem.output_size_in_bytes,
                             mem.alias_size_in_bytes, mem.temp_size_in_bytes)
    total = arg + out - alias + temp
    row.argument_gib, row.output_gib, row.alias_gib, row.temp_gib = (x / _GIB for x in (arg, out, alias, temp))
    row.total_gib = total / _GIB
    usable = chips.usable_hbm_bytes(devices[0].device_kind, per_chip)
    if usable:
        row.hbm_gib = usable / _GIB
        row.headroom_gib = row.hbm_gib - row.total_gib
    k = row.grad_accum if micro is not None else 1
    # FLOPs and the cost model's seconds of the per-device SPMD program, the scan body counted k times.
    flops = throughput.step_cost(throughput.compiled_flops(compiled), k,
                                 throughput.compiled_flops(micro) if k > 1 else 0.0)
    row.gflops_per_chip = flops * per_chip / 1e9
    seconds = throughput.compiled_seconds(compiled)
    micro_seconds = throughput.compiled_seconds(micro) if k > 1 else 0.0
    if seconds > 0 and (k == 1 or micro_seconds > 0):
        seconds = throughput.step_cost(seconds, k, micro_seconds)
        row.cost_model_ms = seconds * 1e3
        row.images_per_s_per_chip = row.global_batch / seconds / row.chips
        if dev:
            row.mfu = flops / seconds / dev.bf16_flops  # per device: FLOPs / estimated time / peak
    else:
        bad = micro_seconds if seconds > 0 else seconds
        row.reason = f"the TPU cost model gave no time estimate for this program (optimal_seconds={bad:.4g})"
    text = compiled.as_text()
    row.collectives = " ".join(f"{k}={v}" for k, v in collectives(text).items() if v)
    _fill_roofline(row, compiled, text, devices)


def _fill_roofline(row: PlanRow, compiled, hlo_text: str, devices: list) -> None:
    """The roofline estimate of the compiled program (`lsm_jax.pod.profile`; a loop body counts its trip
    count, so an accumulating step is counted whole). No ceiling known for the chip: left empty."""
    from lsm_jax.pod.ceilings import tpu_ceiling
    from lsm_jax.pod.profile import profile_compiled
    try:
        ceiling = tpu_ceiling(devices)
    except ValueError:
        return
    prof = profile_compiled(compiled, row.kind, row.topology, ceiling, hlo_text)
    if prof.roofline_s > 0:
        row.roofline_ms = prof.roofline_s * 1e3
        row.roofline_images_per_s_per_chip = row.global_batch / prof.roofline_s / row.chips
        row.roofline_mfu = prof.roofline_mfu


def _compile(row: PlanRow, lowered_fn, devices: list, micro_fn=None) -> PlanRow:
    t0 = time.perf_counter()
    try:
        compiled = lowered_fn().compile()
        micro = micro_fn().compile() if micro_fn is not None else None
    except Exception as err:  # the compiler's out-of-memory error carries its own figures
        row.compile_s = time.perf_counter() - t0
        msg = str(err)
        figures = parse_oom(msg)
        if "RESOURCE_EXHAUSTED" in msg or "out of memory" in msg.lower():
            row.status = "oom"
            if figures:
                row.total_gib, row.hbm_gib = figures
                row.reason = (f"out of memory: the compiler needs at least {figures[0]:.2f} GiB per device, "
                              f"{figures[1]:.2f} GiB available")
            else:
                row.reason = "out of memory: " + msg.splitlines()[0][:200]
        else:
            row.status, row.reason = "error", msg.splitlines()[0][:300]
        return row
    row.compile_s = time.perf_counter() - t0
    _fill_from_compiled(row, compiled, devices, micro)
    return row


def _label(config: ml_collections.ConfigDict) -> tuple[str, str]:
    return str(config.get("variant", "")), str(config.get("recipe", ""))


def plan_train(config: ml_collections.ConfigDict, topology: str, mesh_sizes=(-1, 1, 1),
               devices: list | None = None) -> PlanRow:
    """Compiles `train`'s step for `config` on `topology` and reports the compiler's figures.

    `config` is a full training config (batch_size is the global batch; model.dtype, model.remat and
    grad_accum_steps are honoured). Rows that cannot work say why (status invalid / oom)."""
    from lsm_jax.training.step import TrainingError, build, check_config
    devices = devices if devices is not None else topology_devices(topology)
    variant, recipe = _label(config)
    row = PlanRow("train", variant, recipe, topology, "", int(config.batch_size), int(config.patch_size),
                  str(config.model.dtype), bool(config.model.remat), int(config.get("grad_accum_steps", 1)),
                  devices=len(devices), chips=chips.topology_chips(topology), device_kind=devices[0].device_kind)
    row.batch_per_chip = row.global_batch / row.chips
    try:
        mesh = sharding.make_mesh(*mesh_sizes, devices=devices)
        row.mesh = "×".join(str(s) for s in mesh.devices.shape)
        check_config(config, mesh)
    except (ValueError, TrainingError) as err:
        row.status, row.reason = "invalid", str(err).split(";")[0]
        row.mesh = row.mesh or "×".join(str(s) for s in mesh_sizes)
        return row
    parts = build(config, mesh)
    state = abstract_like(parts.abstract_state, parts.state_shardings)
    b, p, s = row.global_batch, row.image, int(config.model.upscale)
    batch = {"lq": jax.ShapeDtypeStruct((b, p, p, 3), jnp.float32, sharding=parts.batch_sharding),
             "gt": jax.ShapeDtypeStruct((b, p * s, p * s, 3), jnp.float32, sharding=parts.batch_sharding)}
    micro = (lambda: parts.lower_micro_step(batch)) if parts.micro_step is not None else None
    return _compile(row, lambda: parts.step.lower(state, batch), devices, micro)


def make_infer_fn(net_cfg: ml_collections.ConfigDict):
    """(graphdef, abstract params, forward(params, x)): the pure forward `upscale` jits."""
    from lsm_jax.model.network import LSM
    graphdef, params = nnx.split(nnx.eval_shape(lambda: LSM(net_cfg, rngs=nnx.Rngs(0))))
    return graphdef, params, lambda prm, x: nnx.merge(graphdef, prm)(x)


def plan_infer(net_cfg: ml_collections.ConfigDict, topology: str, size: int, batch: int = 1,
               variant: str = "", devices: list | None = None) -> PlanRow:
    """Compiles the inference forward (parameters replicated, the batch split over devices) for an
    LR input of size×size."""
    devices = devices if devices is not None else topology_devices(topology)
    row = PlanRow("infer", variant, f"x{net_cfg.upscale}", topology, "", batch, size, str(net_cfg.dtype), False,
                  1, devices=len(devices), chips=chips.topology_chips(topology),
                  device_kind=devices[0].device_kind)
    row.batch_per_chip = batch / row.chips
    mesh = sharding.make_mesh(-1, 1, 1, devices=devices)
    row.mesh = "×".join(str(s) for s in mesh.devices.shape)
    if batch % len(devices):
        row.status, row.reason = "invalid", f"batch {batch} is not a multiple of the {len(devices)} devices"
        return row
    _, params, fwd = make_infer_fn(net_cfg)
    rep = NamedSharding(mesh, P())
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), params)
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32, sharding=sharding.batch_sharding(mesh, 4))
    return _compile(row, lambda: jax.jit(fwd).lower(params, x), devices)


def as_dict(row: PlanRow) -> dict[str, Any]:
    """The row as a flat dict (CSV)."""
    return dataclasses.asdict(row)
