"""Where a step's time goes: every op of a compiled program with its FLOPs, bytes, roofline time and a
category, summed per category and per source module. All times are ESTIMATES, except the CPU's
measured column.

    prof = profile_step(config, "v5p:1x1x1")           # the training step compiled for a TPU topology
    prof = profile_step(config, None)                  # on this CPU, with a measured profile beside it
    print("\\n\\n".join(prof.tables()))                  # Markdown: summary, categories, top ops, modules
    rows = prof.rows()                                  # dicts for a CSV

Per op (`lsm_jax.pod.hlo_cost`, from the optimized HLO text): FLOPs counted from shapes, bytes moved at
the op's boundary, roofline time = max(FLOPs / peak, bytes / memory bandwidth). The peak is the chip's
bf16 matrix peak (`lsm_jax.runtime.chips`: XLA runs float32 matmuls as bf16 passes at the default
precision) for every FLOP, matmul or not; non-matmul ops are far below the machine balance, so their
time is set by bytes anyway. A while loop's body ops count trip-count times (once where the compiler
does not know the count), so a step with gradient accumulation is counted whole. The roofline total
assumes ops run one after another at their ceilings: a lower bound on a real step, not a prediction.
On the CPU the ceilings are measured on the spot (`cpu_ceiling`), and the step is also run and traced
(`measure`, `lsm_jax.pod.cpu_trace`): the one measurement beside the estimates.

Categories (`categorise`), first rule that applies:
  collectives                a cross-device collective (all-reduce, all-gather, ...), its payload
                             charged at the HBM bandwidth (the chip table has no ICI figure): a floor;
  scan                       the op's innermost lsm_jax source frame is in `lsm_jax/scan/` (the linear
                             recurrence, whatever strategy), or a custom call a scan strategy emits;
  attention                  innermost lsm_jax frame in `model/window_attention.py`: the attention core
                             (Q·Kᵀ, softmax, A·V, position bias, masks). Its learned projections run in
                             `layers.py` (Linear, Conv) and count as matmul/conv;
  sort/gather/scatter        a sort, gather or scatter (the SMU's token sort and its gathers);
  matmul/conv                a dot or convolution (projections, convolutions, the MLP; their gradients);
  layout                     only moves data: copy, transpose, pad, slice, concatenate, convert,
                             broadcast, dynamic-slice/-update-slice, async copies (the compiler's
                             prefetches into on-chip memory cost nothing here: see hlo_cost);
  norm/elementwise           the rest with arithmetic: normalisation, activations, losses, the optimizer;
  other                      custom calls, control flow and ops with no cost.
The source module of an op is the file of its innermost frame inside the lsm_jax package (from the
HLO's stack-frame tables; `scan` for lsm_jax/scan/*), `optax` for the optimizer's own code. An op the
compiler added (a copy, a prefetch into on-chip memory) takes the source of what produced its operand,
`(arguments)` when that is a program argument (parameters, optimizer state, the batch). A data-moving
op's category is then decided without that source (a copy the compiler added to attention's data is
layout, not attention); a compute op keeps it (a backward dot whose metadata the compiler dropped).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp

from lsm_jax.pod.ceilings import Ceiling, cpu_ceiling, tpu_ceiling
from lsm_jax.pod.hlo_cost import COLLECTIVES, ELEMENTWISE, MOVEMENT, Module, parse_module

CATEGORIES = ("matmul/conv", "attention", "sort/gather/scatter", "scan", "norm/elementwise", "layout",
              "collectives", "other")
SCAN_TARGETS = ("linear_recurrence", "tpu_custom_call")   # custom calls of lsm_jax/scan (ffi, pallas)


@dataclasses.dataclass
class OpRow:
    """One op of the program (a while loop's body op once, with `count` = its trip count)."""
    name: str
    hlo_name: str
    opcode: str
    kind: str
    category: str
    module: str
    source: str
    count: int
    flops: float           # per step (all `count` runs)
    bytes: float           # per step
    roofline_s: float      # estimate: max(flops / peak, bytes / bandwidth), per step
    bound: str             # 'compute' | 'memory' | ''
    measured_s: float | None = None   # CPU only: measured per step


def op_kind(module: Module, comp: str, instr) -> str:
    """What an op does, from its opcode and (fusions, async calls) the opcodes inside it."""
    instr = module.async_start(comp, instr)
    op = instr.opcode
    base = re.sub(r"-(start|done|update)$", "", op)
    if base in COLLECTIVES:
        return "collective"
    if base in ("copy", "send", "recv"):
        return "layout"
    if base == "custom-call" and not instr.called:
        return "custom-call"
    if op in ("while", "conditional"):
        return "control"
    ops = set()
    if instr.called and op not in ("sort", "reduce", "reduce-window", "scatter", "select-and-scatter", "map"):
        for c in instr.called:
            ops |= module.opcodes(c)
    else:
        ops = {op}
    for key, kind in (("convolution", "conv"), ("dot", "dot"), ("sort", "sort"), ("scatter", "scatter"),
                      ("select-and-scatter", "scatter"), ("gather", "gather"), ("custom-call", "custom-call")):
        if key in ops:
            return kind
    if base == "custom-call":
        return "custom-call"
    if ops & {"reduce", "reduce-window"}:
        return "reduce"
    if ops & ELEMENTWISE or any(o.startswith("rng") for o in ops):
        return "elementwise"
    if ops & MOVEMENT:
        return "layout"
    return "none"


def _frame_of(module: Module, comp: str, instr) -> tuple[int, bool]:
    """(an op's stack frame, whether it is inherited): its own, its async start's, its fused root's; for
    an op the compiler added (a copy, a prefetch) the frame of what produced its first operand
    (inherited); -1 for a program argument."""
    table = module.by_name[comp]
    for step in range(8):
        instr = module.async_start(comp, instr)
        if instr.frame_id:
            return instr.frame_id, step > 0
        if instr.opcode == "fusion" and instr.called:
            body = module.computations.get(instr.called[0], [])
            frame = next((i.frame_id for i in body if i.root and i.frame_id), 0) or \
                next((i.frame_id for i in body if i.frame_id), 0)
            if frame:
                return frame, step > 0
        if instr.opcode == "parameter" and comp == module.entry:
            return -1, True
        if not instr.operands or instr.operands[0] not in table:
            break
        instr = table[instr.operands[0]]
    return 0, True


def source_module(module: Module, comp: str, instr) -> tuple[str, str, bool]:
    """(module label, 'file:line', inherited) of an op's innermost source frame inside the lsm_jax
    package; inherited: the op has no source of its own (the compiler added it)."""
    frame, inherited = _frame_of(module, comp, instr)
    if frame < 0:
        return "(arguments)", "", True
    chain = module.frames.chain(frame) if frame else []
    for file, function, line in chain:
        if "/lsm_jax/" in file or file.startswith("lsm_jax/"):
            rel = file.split("lsm_jax/", 1)[1] if "/lsm_jax/" not in file else file.rsplit("/lsm_jax/", 1)[1]
            stem = rel.rsplit("/", 1)[-1].removesuffix(".py")
            label = "scan" if rel.startswith("scan/") else stem
            if chain and "optax" in chain[0][0]:
                label = "optax"
            return label, f"{rel}:{line} {function}", inherited
    if chain:
        return (("optax" if "optax" in chain[0][0] else "(other)"), f"{chain[0][0].rsplit('/', 1)[-1]}:{chain[0][2]}",
                inherited)
    return "(compiler)", "", True


def categorise(kind: str, source: str, target: str = "") -> str:
    """The category of an op of `kind` (op_kind) whose source module is `source` (see the docstring)."""
    if kind == "collective":
        return "collectives"
    if source == "scan" or (kind == "custom-call" and any(t in target for t in SCAN_TARGETS)):
        return "scan"
    if source == "window_attention":
        return "attention"
    if kind in ("sort", "gather", "scatter"):
        return "sort/gather/scatter"
    if kind in ("dot", "conv"):
        return "matmul/conv"
    if kind == "layout":
        return "layout"
    if kind in ("elementwise", "reduce"):
        return "norm/elementwise"
    return "other"


def collect_ops(module: Module, ceiling: Ceiling) -> list[OpRow]:
    """Every op of the entry computation; while loops (and plain calls) open into their body ops,
    counted trip-count times."""
    rows: list[OpRow] = []

    def visit(comp: str, count: int, prefix: str):
        for instr in module.computations.get(comp, []):
            op = instr.opcode
            if op in ("parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all",
                      "add-dependency", "opt-barrier"):
                continue
            if op == "while":
                trips = module.trip_count(instr) or 1
                for c in instr.called:
                    visit(c, count * trips, f"{prefix}{instr.name}/")
                continue
            if op == "call":
                for c in instr.called:
                    visit(c, count, f"{prefix}{instr.name}/")
                continue
            kind = op_kind(module, comp, instr)
            label, where, inherited = source_module(module, comp, instr)
            target = instr.attr("custom_call_target") or ""
            # An op with no source of its own: a layout op the compiler added is layout, whatever it moves;
            # a compute op (the backward's dots lose their metadata on the CPU) keeps its operand's source.
            category = categorise(kind, "(compiler)" if inherited and kind in ("layout", "none") else label, target)
            flops = count * module.instr_flops(comp, instr)
            nbytes = count * module.instr_bytes(comp, instr)
            t_c, t_m = flops / ceiling.peak_flops, nbytes / ceiling.bandwidth
            bound = "" if not (t_c or t_m) else ("compute" if t_c >= t_m else "memory")
            rows.append(OpRow(prefix + instr.name, instr.name, op, kind, category, label, where, count, flops, nbytes,
                              max(t_c, t_m), bound))

    visit(module.entry, 1, "")
    return rows


def _cost(compiled) -> dict:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - a backend without a cost analysis
        return {}
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return dict(cost or {})


@dataclasses.dataclass
class Profile:
    """The ops of one compiled program, their estimates and (CPU) measurements; see the module docstring."""
    program: str
    target: str                 # a TPU topology name, or 'cpu'
    ceiling: Ceiling
    ops: list[OpRow]
    xla_flops: float | None = None          # the compiler's own count (cost_analysis)
    xla_bytes: float | None = None
    cost_model_s: float | None = None       # the TPU cost model's step (optimal_seconds), where it has one
    measured_step_s: float | None = None    # CPU: wall time of a traced step (the call, dispatch included)
    measured_busy_s: float | None = None    # CPU: time in that step while at least one op ran
    measured_note: str = ""
    batch: int = 0                          # global batch of the step (0: unknown)
    chips: int = 1

    @property
    def images_per_s_per_chip(self) -> float | None:
        """The roofline's throughput (an estimate): batch / roofline time / chips; where the TPU cost
        model gives no time (v5e, v4 programs), this is the only speed estimate."""
        return self.batch / self.roofline_s / self.chips if self.batch and self.roofline_s else None

    @property
    def flops(self) -> float:
        return sum(o.flops for o in self.ops)

    @property
    def bytes(self) -> float:
        return sum(o.bytes for o in self.ops)

    @property
    def roofline_s(self) -> float:
        return sum(o.roofline_s for o in self.ops)

    @property
    def measured_ops_s(self) -> float | None:
        """CPU: the sum of the ops' measured times (ops that overlap each count)."""
        return None if self.measured_step_s is None else sum(o.measured_s or 0.0 for o in self.ops)

    @property
    def roofline_mfu(self) -> float:
        """FLOPs of the step / (roofline time × peak): the MFU the roofline total implies (an estimate).
        The FLOPs are counted here, loop bodies trip-count times (XLA's cost analysis counts them once)."""
        return self.flops / self.roofline_s / self.ceiling.peak_flops if self.roofline_s else 0.0

    def group(self, key: str) -> list[dict[str, Any]]:
        """Sums per category (key='category', in CATEGORIES order), per source module (key='module') or
        per source line and category (key='site': name = 'file:line', with its 'category'), the last
        two largest roofline first."""
        out: dict[Any, dict[str, Any]] = {}
        names = list(CATEGORIES) if key == "category" else []
        for o in self.ops:
            k = (o.source or o.module, o.category) if key == "site" else getattr(o, key)
            g = out.setdefault(k, dict(name=k[0] if key == "site" else k, ops=0, flops=0.0, bytes=0.0,
                                       roofline_s=0.0, measured_s=None))
            if key == "site":
                g.update(category=o.category, module=o.module)
            g["ops"] += 1
            g["flops"] += o.flops
            g["bytes"] += o.bytes
            g["roofline_s"] += o.roofline_s
            if o.measured_s is not None:
                g["measured_s"] = (g["measured_s"] or 0.0) + o.measured_s
        total_r = self.roofline_s or 1.0
        total_m = sum(o.measured_s or 0.0 for o in self.ops) or None
        rows = [out[n] for n in names if n in out] if names else sorted(out.values(), key=lambda g: -g["roofline_s"])
        for g in rows:
            g["roofline_share"] = g["roofline_s"] / total_r
            g["measured_share"] = (g["measured_s"] or 0.0) / total_m if total_m else None
        return rows

    def top(self, n: int = 20) -> list[OpRow]:
        return sorted(self.ops, key=lambda o: -o.roofline_s)[:n]

    def tables(self, top: int = 20) -> list[str]:
        """Markdown: the summary, the per-category table, the top ops, the top source lines and the
        per-module table."""
        from lsm_jax.pod.profile_tables import markdown_tables
        return markdown_tables(self, top)

    def rows(self, top: int | None = 20) -> list[dict[str, Any]]:
        """Dicts for a CSV: one 'total' row, one per category and per module, and the `top` source lines
        ('site') and ops (every one when None)."""
        from lsm_jax.pod.profile_tables import csv_rows
        return csv_rows(self, top)


def profile_compiled(compiled, program: str, target: str, ceiling: Ceiling, hlo_text: str | None = None) -> Profile:
    """The profile of a compiled program (estimates only); `hlo_text`: its `as_text()` when the caller
    already has it (a full model's is tens of MB)."""
    module = parse_module(compiled.as_text() if hlo_text is None else hlo_text)
    cost = _cost(compiled)
    seconds = float(cost.get("optimal_seconds", -1.0))
    return Profile(program, target, ceiling, collect_ops(module, ceiling),
                   xla_flops=float(cost["flops"]) if "flops" in cost else None,
                   xla_bytes=float(cost["bytes accessed"]) if "bytes accessed" in cost else None,
                   cost_model_s=seconds if seconds > 0 else None)


def profile_target(compiled, program: str, topology: str | None, devices: list, batch: int,
                   ceiling: Ceiling | None = None) -> Profile:
    """`profile_compiled` for a program compiled for `topology` (its chips' published ceilings) or, with
    topology=None, for this CPU (ceilings measured now); `batch` and the chip count filled in."""
    from lsm_jax.runtime import chips
    if topology is not None:
        prof = profile_compiled(compiled, program, topology, ceiling or tpu_ceiling(devices))
        prof.chips = chips.topology_chips(topology)
    else:
        prof = profile_compiled(compiled, program, "cpu", ceiling or cpu_ceiling())
    prof.batch = batch
    return prof


def measure(prof: Profile, run, steps: int = 3) -> Profile:
    """Fills the measured columns of a CPU profile: `run()` executes one step of the same compiled
    program (`lsm_jax.pod.cpu_trace.op_times`)."""
    from lsm_jax.pod import cpu_trace
    times = cpu_trace.op_times(run, {o.hlo_name for o in prof.ops}, steps)
    for o in prof.ops:
        o.measured_s = times.per_op.get(o.hlo_name, 0.0)
    prof.measured_step_s, prof.measured_busy_s = times.wall_s, times.busy_s
    prof.measured_note = (f"Measured: {steps} traced steps on this CPU; an op's time is the wall time its trace "
                          f"events cover (all threads). Ops ran during {times.busy_s * 1e3:.3g} ms of the "
                          f"{times.wall_s * 1e3:.3g} ms step; the rest is dispatch, argument handling and waiting")
    return prof


def profile_step(config, topology: str | None = None, batch: int | None = None, *, mesh_sizes=(-1, 1, 1),
                 measure_cpu: bool = True, steps: int = 3, ceiling: Ceiling | None = None,
                 program: str = "") -> Profile:
    """The profile of `train`'s step for `config` (a training config; `batch` overrides its global
    batch): compiled for `topology` through libtpu (estimates only), or with topology=None on this CPU
    (one device), where `measure_cpu` also runs `steps` traced steps and fills the measured columns.
    The step is `lsm_jax.training.step.build`'s, as `pod_plan` compiles it."""
    from lsm_jax.pod import plan
    from lsm_jax.pod.plan_config import tpu_config
    from lsm_jax.training import sharding
    from lsm_jax.training.state import abstract_like
    from lsm_jax.training.step import build, check_config
    config = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") else config
    if batch is not None:
        config.batch_size = int(batch)
    if topology is not None:
        config = tpu_config(config)
        devices = plan.topology_devices(topology)
    else:
        devices = jax.devices("cpu")[:1]
    mesh = sharding.make_mesh(*mesh_sizes, devices=devices)
    check_config(config, mesh)
    parts = build(config, mesh)
    b, p, s = int(config.batch_size), int(config.patch_size), int(config.model.upscale)
    shapes = {"lq": (b, p, p, 3), "gt": (b, p * s, p * s, 3)}
    abstract_batch = {k: jax.ShapeDtypeStruct(v, jnp.float32, sharding=parts.batch_sharding) for k, v in shapes.items()}
    compiled = parts.step.lower(abstract_like(parts.abstract_state, parts.state_shardings), abstract_batch).compile()
    program = program or f"train {config.get('variant', '')}:{config.get('recipe', '')} batch {b}"
    prof = profile_target(compiled, program, topology, devices, b, ceiling)
    if topology is None and measure_cpu:
        keys = jax.random.split(jax.random.key(0), 2)
        data = {k: jax.device_put(jax.random.uniform(key, v, jnp.float32), parts.batch_sharding)
                for key, (k, v) in zip(keys, shapes.items())}
        holder = {"state": parts.init()}

        def run():
            holder["state"], metrics = compiled(holder["state"], data)
            jax.block_until_ready(metrics)
        run()  # warm-up: first-call allocations out of the trace
        measure(prof, run, steps)
    return prof
