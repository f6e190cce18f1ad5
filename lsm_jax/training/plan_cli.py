r"""The `pod_plan` command: compile train's step for TPU topologies here and tabulate per-chip memory,
FLOPs, the cost model's step time, images/s per chip and MFU (`lsm_jax.training.pod_plan`).

    python -m lsm_jax.pod_plan --config configs/lsm.py:x2_scratch --topology v5e:4x4 \
        --batch 32,64 [--mesh=-1,1,1] [--dtype float32,bfloat16] [--remat off,on] [--grad-accum 1,2] \
        [--fit] [--set model.scan.impl=chunked] [--csv plan.csv] [--markdown plan.md]
    python -m lsm_jax.pod_plan --config configs/lsm_s.py:x4_finetune --topology v5p:1x1x1 \
        --no-train --infer 256,1024

Every combination is compiled (one row each); combinations that cannot work get a row that says
why. `--fit` adds, per configuration and topology, the largest per-chip batch that fits: the
compiler's memory at the two largest fitting batches is extrapolated linearly to the HBM, the
estimate is compiled, and the search continues (upwards while everything fits, then bisecting
between the largest fitting and the smallest failing batch) until the two are one step apart.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import itertools
import logging
import math
import os
import sys
from pathlib import Path

from lsm_jax.scan import pick_impl
from lsm_jax.training import pod_plan

log = logging.getLogger("lsm_jax.pod_plan")


def load_config(spec: str):
    """`configs/<variant>.py:<recipe>` -> its training config (as `train --config` loads it)."""
    path, _, recipe = spec.partition(":")
    if not Path(path).is_file():
        raise ValueError(f"--config: no config file {path!r} (expected e.g. configs/lsm.py:x2_scratch)")
    module_spec = importlib.util.spec_from_file_location(f"_plan_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(recipe) if recipe else module.get_config()


def apply_override(config, assignment: str) -> None:
    """`key.sub=value` (value a Python literal, else a string) onto the config, in place."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise ValueError(f"--set {assignment!r}: expected key=value")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    *parents, leaf = key.split(".")
    target = config
    for p in parents:
        target = target[p]
    if leaf not in target:
        raise ValueError(f"--set {key}: no such config field")
    target[leaf] = tuple(value) if isinstance(value, list) else value


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _flags(text: str) -> list[bool]:
    return [v.strip().lower() in ("on", "true", "1", "yes") for v in text.split(",") if v.strip()]


def _tpu_config(config):
    """The config as a TPU run resolves it: 'auto' scan -> what auto picks on a TPU backend."""
    if config.model.scan.impl == "auto":
        config.model.scan.impl = pick_impl(config.patch_size ** 2, platform="tpu")
    return config


def _variant_config(args, spec: str, batch: int, dtype: str, remat: bool, accum: int):
    config = load_config(spec)
    for assignment in args.set:
        apply_override(config, assignment)
    config.batch_size, config.model.dtype, config.model.remat, config.grad_accum_steps = batch, dtype, remat, accum
    return _tpu_config(config)


def fit_largest(args, spec, topo, mesh, dtype, remat, accum, rows, max_compiles: int = 8) -> list[pod_plan.PlanRow]:
    """Rows searching the largest per-chip batch that fits, from the fitting rows already compiled.

    The compiler's memory at the two largest fitting batches is extrapolated linearly to the HBM. While
    no batch has failed, the search extrapolates upwards from the largest fitting one; once one fails,
    it steps down by the estimated excess, then bisects between the largest fitting and the smallest
    failing batch until they are one step (devices × micro-batches) apart. The largest fitting row's
    note says 'largest-fit search: the largest fit'; every row of the search says 'largest-fit search'."""
    ok = sorted((r for r in rows if r.status == "ok" and r.total_gib is not None), key=lambda r: r.global_batch)
    if len(ok) < 2 or ok[-1].hbm_gib is None:
        return []
    a, b = ok[-2], ok[-1]
    hbm = b.hbm_gib
    quantum = b.devices * accum  # every device gets whole micro-batches (a model axis > 1 needs fewer)
    points = {r.global_batch: r.total_gib for r in ok}  # fitting batch -> GiB per device
    slope = (b.total_gib - a.total_gib) / (b.global_batch - a.global_batch)  # GiB per example of the global batch
    seed, lo, hi = b.global_batch, b.global_batch, None
    down = lambda x: x // quantum * quantum  # noqa: E731

    def upward() -> int:  # extrapolate from the two largest fitting batches; at least one step up
        x0, x1 = sorted(points)[-2:]
        s = (points[x1] - points[x0]) / (x1 - x0)
        return max(down(x1 + int((hbm - points[x1]) / s)) if s > 0 else 2 * x1, x1 + quantum)

    guess = upward()
    out = []
    for _ in range(max_compiles):
        if guess <= lo or (hi is not None and guess >= hi):
            break
        row = pod_plan.plan_train(_variant_config(args, spec, guess, dtype, remat, accum), topo, mesh)
        row.reason = (row.reason + "; " if row.reason else "") + "largest-fit search"
        out.append(row)
        log.info("%s", _brief(row))
        if row.status == "ok" and row.total_gib is not None:
            lo, points[guess] = guess, row.total_gib
        elif row.status == "ok":
            lo = guess
        else:
            hi = guess if hi is None else min(hi, guess)
        if hi is None:
            guess = upward()
        elif hi - lo <= quantum:
            break
        elif lo == seed:  # nothing above the seed fits yet: step down by the estimated excess
            over = (row.total_gib or hbm * 1.1) - hbm if row.status != "ok" else 0.0
            step = int(math.ceil(over / slope * 1.05)) if slope > 0 and over > 0 else (hi - lo) // 2
            guess = min(max(down(hi - step), lo + quantum), down(hi - 1))
        else:  # bisect
            guess = min(max(down((lo + hi) // 2), lo + quantum), down(hi - 1))
    best = max((r for r in out if r.status == "ok"), key=lambda r: r.global_batch, default=None)
    if best is not None:
        best.reason += (f": the largest fit ({hi} fails)" if hi is not None else
                        f": the largest fit in {len(out)} compiles, none failed (no upper bound found)")
    return out


def _brief(r: pod_plan.PlanRow) -> str:
    mem = f"{r.total_gib:.2f}/{r.hbm_gib:.2f} GiB" if r.total_gib is not None and r.hbm_gib else "-"
    return (f"{r.kind} {r.variant}:{r.recipe} {r.topology} mesh {r.mesh} batch {r.global_batch} {r.dtype} "
            f"remat={r.remat} accum={r.grad_accum}: {r.status} {mem} compile {r.compile_s or 0:.0f}s {r.reason}")


COLUMNS = [("kind", "kind"), ("variant", "variant"), ("recipe", "recipe"), ("topology", "topology"),
           ("mesh", "mesh"), ("global_batch", "batch"), ("batch_per_chip", "batch/chip"), ("image", "LR px"),
           ("dtype", "dtype"), ("remat", "remat"), ("grad_accum", "accum"), ("status", "status"),
           ("total_gib", "GiB/dev"), ("hbm_gib", "HBM GiB/dev"), ("headroom_gib", "headroom GiB"),
           ("temp_gib", "temp GiB"), ("gflops_per_chip", "GFLOP/step/chip"),
           ("cost_model_ms", "cost-model ms (estimate)"), ("images_per_s_per_chip", "img/s/chip (estimate)"),
           ("mfu", "MFU (estimate)"), ("compile_s", "compile s"), ("reason", "note")]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


# The README's narrower table (dtype, remat and accumulation stated above it instead).
COMPACT = [c for c in COLUMNS if c[0] not in ("recipe", "mesh", "dtype", "remat", "grad_accum", "temp_gib")]


def markdown(rows: list[pod_plan.PlanRow], columns=COLUMNS) -> str:
    """A Markdown table of the rows (MFU as a percentage)."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        d = pod_plan.as_dict(r)
        cells = [(f"{d[k]:.1%}" if k == "mfu" and d[k] is not None else _cell(d[k])) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[pod_plan.PlanRow], path: str) -> None:
    """All fields of every row; written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        fields = list(pod_plan.as_dict(rows[0]).keys()) if rows else [k for k, _ in COLUMNS]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(pod_plan.as_dict(r))
    os.replace(tmp, path)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lsm_jax.pod_plan", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", required=True, help="configs/<variant>.py:<recipe> (repeatable)")
    p.add_argument("--topology", action="append", required=True, help="libtpu topology, e.g. v5e:4x4 (repeatable)")
    p.add_argument("--mesh", action="append", default=None, help="data,fsdp,model sizes, -1 = the rest (repeatable)")
    p.add_argument("--batch", default="", help="global batch sizes, comma-separated (default: the recipe's)")
    p.add_argument("--per-chip-batch", default="", help="per-chip batch sizes instead of --batch")
    p.add_argument("--dtype", default="float32", help="compute dtypes: float32,bfloat16")
    p.add_argument("--remat", default="off", help="off,on")
    p.add_argument("--grad-accum", default="1", help="gradient-accumulation steps, comma-separated")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--fit", action="store_true", help="also find the largest per-chip batch that fits")
    p.add_argument("--no-train", action="store_true", help="only the inference rows")
    p.add_argument("--infer", default="", help="LR sizes for inference-forward rows, e.g. 256,1024")
    p.add_argument("--infer-batch", type=int, default=0, help="inference batch (default: one per device)")
    p.add_argument("--csv", default="", help="write every row's fields to this CSV")
    p.add_argument("--markdown", default="", help="write the Markdown table to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.pod_plan`; returns the exit status."""
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        pod_plan.require_libtpu()
        meshes = [tuple(_ints(m)) for m in (args.mesh or ["-1,1,1"])]
        rows: list[pod_plan.PlanRow] = []
        for spec, topo in itertools.product(args.config, args.topology):
            devices = pod_plan.topology_devices(topo)
            chips = pod_plan.chips.topology_chips(topo)
            base = load_config(spec)
            for assignment in args.set:
                apply_override(base, assignment)
            batches = ([c * chips for c in _ints(args.per_chip_batch)] if args.per_chip_batch
                       else _ints(args.batch) or [int(base.batch_size)])
            for mesh, dtype, remat, accum in itertools.product(meshes, args.dtype.split(","), _flags(args.remat),
                                                               _ints(args.grad_accum)):
                if args.no_train:
                    break
                group = []
                for batch in batches:
                    row = pod_plan.plan_train(_variant_config(args, spec, batch, dtype, remat, accum), topo, mesh,
                                              devices)
                    log.info("%s", _brief(row))
                    group.append(row)
                if args.fit:
                    group += fit_largest(args, spec, topo, mesh, dtype, remat, accum, group)
                rows += group
            for size in _ints(args.infer):
                net = _tpu_config(base).model
                row = pod_plan.plan_infer(net, topo, size, args.infer_batch or len(devices),
                                          str(base.get("variant", "")), devices)
                log.info("%s", _brief(row))
                rows.append(row)
    except pod_plan.LibtpuMissing as err:
        print(f"lsm_jax.pod_plan: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"lsm_jax.pod_plan: error: {err}", file=sys.stderr)
        return 2
    table = markdown(rows)
    print(table)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0
