r"""The `pod_plan` command: compile train's step for TPU topologies here and tabulate per-chip memory,
FLOPs, the cost model's step time, images/s per chip and MFU (`lsm_jax.pod.plan`).

    python -m lsm_jax.pod_plan --config configs/lsm.py:x2_scratch --topology v5e:4x4 \
        --batch 32,64 [--mesh=-1,1,1] [--dtype float32,bfloat16] [--remat off,on] [--grad-accum 1,2] \
        [--fit] [--config.model.scan.impl=chunked] [--csv plan.csv] [--markdown plan.md]
    python -m lsm_jax.pod_plan --config configs/lsm_s.py:x4_finetune --topology v5p:1x1x1 \
        --no-train --infer 256,1024

Every combination is compiled (one row each); combinations that cannot work get a row that says
why. `--fit` adds, per configuration and topology, the largest per-chip batch that fits: the
compiler's memory at the two largest fitting batches is extrapolated linearly to the HBM, the
estimate is compiled, and the search continues (upwards while everything fits, then bisecting
between the largest fitting and the smallest failing batch) until the two are one step apart.

Config overrides are `train`'s (`--config.key=value`, typed and checked against the config's fields;
`--set key=value` is the same). Every option and config is checked before libtpu starts, and bad
input gets one line naming the option. The step time, images/s and MFU are the TPU cost model's
estimates and labelled so; v4 rows are per TensorCore (libtpu lists a v4 chip's two cores as two
devices, while JAX on a real v4 runs each chip as one megacore device).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import logging
import math
import os
import sys
from pathlib import Path

from lsm_jax.scan import pick_impl
from lsm_jax.pod import plan as pod_plan

log = logging.getLogger("lsm_jax.pod_plan")


def load_config(spec: str, overrides: list[str] = ()):
    """`configs/<variant>.py:<recipe>` -> its training config with `key=value` overrides, parsed as
    `train --config ... --config.key=value` parses them (`lsm_jax.train.load_config`: typed,
    locked, one-line ValueError naming the override)."""
    from lsm_jax import train as cli
    if not Path(spec.partition(":")[0]).is_file():
        raise ValueError(f"--config: no config file {spec.partition(':')[0]!r} (expected e.g. "
                         "configs/lsm.py:x2_scratch)")
    return cli.load_config(spec, [f"--config.{o}" for o in overrides])


def _positive(option: str, text: str, allow_empty: bool = True) -> list[int]:
    """Comma-separated integers ≥ 1 of an option, or ValueError naming it."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} {text}: expected comma-separated integers") from None
    if any(v < 1 for v in values):
        raise ValueError(f"{option} {text}: every value must be ≥ 1")
    if not values and not allow_empty:
        raise ValueError(f"{option}: no value given")
    return values


def _choices(option: str, text: str, allowed: dict) -> list:
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{option} {text}: expected a comma-separated list of {', '.join(sorted(set(allowed)))}")
    return [allowed[v] for v in values]


def _mesh(text: str) -> tuple[int, int, int]:
    """`data,fsdp,model` sizes (-1: the remaining devices) or ValueError naming --mesh."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--mesh {text}: expected three integers data,fsdp,model, e.g. -1,1,1") from None
    if len(sizes) != 3 or sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"--mesh {text}: expected three sizes data,fsdp,model, each ≥ 1 or one of them -1")
    return sizes


def check_mesh(sizes: tuple[int, int, int], topology: str, devices: int) -> None:
    """Refuses a mesh that does not use exactly the topology's devices, naming --mesh."""
    text = ",".join(str(s) for s in sizes)
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes and devices % known:
        raise ValueError(f"--mesh {text}: the fixed sizes ({known} devices) do not divide the {devices} devices "
                         f"of {topology}")
    if -1 not in sizes and known != devices:
        raise ValueError(f"--mesh {text}: uses {known} devices, but {topology} has {devices}")


def _tpu_config(config):
    """The config as a TPU run resolves it: 'auto' scan -> what auto picks on a TPU backend."""
    if config.model.scan.impl == "auto":
        config.model.scan.impl = pick_impl(config.patch_size ** 2, platform="tpu")
    return config


def _variant_config(args, spec: str, batch: int, dtype: str, remat: bool, accum: int):
    config = load_config(spec, args.set)
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
           ("cost_model_ms", "cost-model estimate (ms)"),
           ("images_per_s_per_chip", "img/s/chip (cost-model estimate)"), ("mfu", "MFU (cost-model estimate)"),
           ("compile_s", "compile s"), ("reason", "note")]


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


def per_core_note(row: pod_plan.PlanRow) -> str:
    """The note for a row whose devices are TensorCores, not chips (v4: libtpu lists a chip's two
    cores as two devices, while JAX on a real v4 runs each chip as one megacore device)."""
    if row.devices > row.chips > 0:
        return (f"per TensorCore ({row.devices // row.chips} per chip; JAX runs a real v4 chip as one "
                "megacore device)")
    return ""


def markdown(rows: list[pod_plan.PlanRow], columns=COLUMNS) -> str:
    """A Markdown table of the rows (MFU as a percentage). The step time, images/s and MFU are the
    TPU cost model's estimates (so labelled), never measurements; rows whose devices are TensorCores
    (v4) say so in their note."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        d = pod_plan.as_dict(r)
        note = per_core_note(r)
        if note and note not in d["reason"]:
            d["reason"] = f"{note}; {d['reason']}" if d["reason"] else note
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


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(2, f"lsm_jax.pod_plan: error: {message} (see --help)\n")


def parse(argv: list[str]) -> argparse.Namespace:
    """The options; `--config.key=value` overrides (as `train` takes them) and their alias
    `--set key=value` end up in `args.set` as `key=value`."""
    p = _Parser(prog="python -m lsm_jax.pod_plan", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Config overrides: --config.key=value, as train takes them (typed; an unknown field or a "
                       "wrong type is an error), or --set key=value.")
    p.add_argument("--config", action="append", required=True, help="configs/<variant>.py:<recipe> (repeatable)")
    p.add_argument("--topology", action="append", required=True, help="libtpu topology, e.g. v5e:4x4 (repeatable)")
    p.add_argument("--mesh", action="append", default=None, help="data,fsdp,model sizes, -1 = the rest (repeatable)")
    p.add_argument("--batch", default="", help="global batch sizes, comma-separated (default: the recipe's)")
    p.add_argument("--per-chip-batch", default="", help="per-chip batch sizes instead of --batch")
    p.add_argument("--dtype", default="float32", help="compute dtypes: float32,bfloat16")
    p.add_argument("--remat", default="off", help="off,on")
    p.add_argument("--grad-accum", default="1", help="gradient-accumulation steps, comma-separated")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable; the same "
                   "as --config.key=value)")
    p.add_argument("--fit", action="store_true", help="also find the largest per-chip batch that fits")
    p.add_argument("--no-train", action="store_true", help="only the inference rows")
    p.add_argument("--infer", default="", help="LR sizes for inference-forward rows, e.g. 256,1024")
    p.add_argument("--infer-batch", type=int, default=0, help="inference batch (default: one per device)")
    p.add_argument("--csv", default="", help="write every row's fields to this CSV")
    p.add_argument("--markdown", default="", help="write the Markdown table to this file")
    args, rest = p.parse_known_args(_split_overrides(argv))
    overrides = [a[len("--config."):] for a in rest if a.startswith("--config.")]
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    for text in args.set:
        if "=" not in text:
            p.error(f"--set {text}: expected key=value")
    args.alias = set(args.set)  # written as --set key=value: errors name them so
    args.set = list(args.set) + overrides
    return args


def _split_overrides(argv: list[str]) -> list[str]:
    """`--config.key value` -> `--config.key=value`, `--mesh -1,2,1` -> `--mesh=-1,2,1` (argparse would
    take these values for options)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if ((a.startswith("--config.") and "=" not in a) or a == "--mesh") and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _check(args: argparse.Namespace) -> dict:
    """Every option checked and every config loaded (with its overrides) before libtpu starts; the
    parsed values, or ValueError naming the option."""
    for spec in args.config:
        try:
            load_config(spec, args.set)
        except ValueError as err:  # name an override as the user wrote it
            text = str(err)
            for o in args.set:
                if text.startswith(f"--config.{o}:") and o in getattr(args, "alias", ()):
                    text = f"--set {o}:" + text[len(f"--config.{o}:"):]
            if not text.startswith("--"):  # the config file's own error (an unknown recipe, ...)
                text = f"--config {spec}: " + text.removeprefix("ValueError: ")
            raise ValueError(text) from None
    for topo in args.topology:
        pod_plan.chips.topology_chips(topo)  # the name's form; libtpu checks the rest
    if args.infer_batch < 0:
        raise ValueError(f"--infer-batch {args.infer_batch}: must be ≥ 1 (or 0: one image per device)")
    if args.no_train and not args.infer:
        raise ValueError("--no-train: nothing to plan without --infer sizes")
    return dict(meshes=[_mesh(m) for m in (args.mesh or ["-1,1,1"])],
                batch=_positive("--batch", args.batch), per_chip=_positive("--per-chip-batch", args.per_chip_batch),
                dtypes=_choices("--dtype", args.dtype, {"float32": "float32", "bfloat16": "bfloat16"}),
                remat=_choices("--remat", args.remat, {"off": False, "on": True, "false": False, "true": True}),
                accum=_positive("--grad-accum", args.grad_accum, allow_empty=False),
                infer=_positive("--infer", args.infer))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.pod_plan`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    try:
        opts = _check(args)  # before libtpu: a typo costs no TPU start-up
    except ValueError as err:
        print(f"lsm_jax.pod_plan: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        pod_plan.require_libtpu()
        rows: list[pod_plan.PlanRow] = []
        for spec, topo in itertools.product(args.config, args.topology):
            devices = pod_plan.topology_devices(topo)
            for mesh in opts["meshes"]:
                check_mesh(mesh, topo, len(devices))
            chips = pod_plan.chips.topology_chips(topo)
            base = load_config(spec, args.set)
            batches = ([c * chips for c in opts["per_chip"]] if opts["per_chip"]
                       else opts["batch"] or [int(base.batch_size)])
            for mesh, dtype, remat, accum in itertools.product(opts["meshes"], opts["dtypes"], opts["remat"],
                                                               opts["accum"]):
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
            for size in opts["infer"]:
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


if __name__ == "__main__":
    sys.exit(main())
