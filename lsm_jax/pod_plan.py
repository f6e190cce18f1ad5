r"""The `pod_plan` command: compile train's step for TPU topologies here and tabulate per-chip memory,
FLOPs, the cost model's step time, images/s per chip and MFU (`lsm_jax.pod`).

    lsm-pod-plan --config lsm:x2_scratch --topology v5e:4x4 \
        --batch 32,64 [--mesh=-1,1,1] [--dtype float32,bfloat16] [--remat off,on] [--grad-accum 1,2] \
        [--fit] [--config.model.scan.impl=chunked] [--csv plan.csv] [--markdown plan.md] [-q]
    lsm-pod-plan --config lsm_s:x4_finetune --topology v5p:1x1x1 --no-train --infer 256,1024

`lsm-pod-plan` is `python -m lsm_jax.pod_plan`. A config is a packaged name (`lsm:x2_scratch`) or a file
path (`configs/lsm.py:x2_scratch`), as every command takes it (`lsm_jax.training.config_loader`).

Every combination is compiled (one row each); combinations that cannot work get a row that says
why. `--fit` adds, per configuration and topology, the largest per-chip batch that fits (`lsm_jax.pod.fit`):
the compiler's memory at the two largest fitting batches is extrapolated linearly to the HBM, the
estimate is compiled, and the search continues (upwards while everything fits, then bisecting
between the largest fitting and the smallest failing batch) until the two are one step apart.

Config overrides are `train`'s, `--config.KEY=VALUE` (typed and checked against the config's fields),
applied to every `--config` given. Every option and config is checked before libtpu starts, and bad
input gets one line naming the option. The step time, images/s and MFU are the TPU cost model's
estimates and labelled so; v4 rows are per TensorCore (libtpu lists a v4 chip's two cores as two
devices, while JAX on a real v4 runs each chip as one megacore device).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import sys
from pathlib import Path

from lsm_jax.pod import fit, tables
from lsm_jax.pod import plan as pod_plan
from lsm_jax.pod.plan_config import combination_config, load_tpu_config
from lsm_jax.runtime.command_line import refuse_set
from lsm_jax.training import config_loader
from lsm_jax.training.config_loader import load_config

log = logging.getLogger("lsm_jax.pod_plan")

PROG = "lsm-pod-plan"

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


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(2, f"{PROG}: error: {message} (see {PROG} --help)\n")


def parse(argv: list[str]) -> argparse.Namespace:
    """The options; the `--config.KEY=VALUE` overrides (also written `--config.KEY VALUE`) end up in
    `args.overrides` as written, for `config_loader.load_config`."""
    p = _Parser(prog=PROG,
                description="Compile lsm-train's step for TPU topologies on this machine (libtpu, no TPU needed) and "
                            "tabulate per-chip memory, FLOPs, the cost model's step time, images/s per chip and MFU. "
                            "The Markdown table is printed; --csv and --markdown also write it to files.",
                epilog="Config overrides: --config.KEY=VALUE (or --config.KEY VALUE), as lsm-train takes them (typed; "
                       "an unknown field or a wrong type is an error), applied to every --config.")
    p.add_argument("--config", action="append", required=True, metavar="NAME[:RECIPE]",
                   help="a packaged config (lsm:x2_scratch) or a config file (configs/lsm.py:x2_scratch); repeatable")
    p.add_argument("--topology", action="append", required=True, metavar="TOPOLOGY",
                   help="libtpu topology, e.g. v5e:4x4 (repeatable)")
    p.add_argument("--mesh", action="append", default=None, metavar="D,F,M",
                   help="data,fsdp,model sizes, -1 = the rest (repeatable; default -1,1,1)")
    p.add_argument("--batch", default="", metavar="N,...",
                   help="global batch sizes, comma-separated (default: the recipe's)")
    p.add_argument("--per-chip-batch", default="", metavar="N,...", help="per-chip batch sizes instead of --batch")
    p.add_argument("--dtype", default="float32", metavar="DTYPE,...", help="compute dtypes: float32,bfloat16")
    p.add_argument("--remat", default="off", metavar="off,on", help="rematerialisation: off, on or off,on")
    p.add_argument("--grad-accum", default="1", metavar="K,...", help="gradient-accumulation steps, comma-separated")
    p.add_argument("--fit", action="store_true", help="also find the largest per-chip batch that fits")
    p.add_argument("--no-train", action="store_true", help="only the inference rows")
    p.add_argument("--infer", default="", metavar="SIZE,...", help="LR sizes for inference-forward rows, e.g. 256,1024")
    p.add_argument("--infer-batch", type=int, default=0, metavar="N",
                   help="inference batch (default: one per device)")
    p.add_argument("--profile", action="store_true",
                   help="instead of the plan table: where the training step's time goes (and, with --infer SIZE, "
                        "the inference forward's at that LR size; --no-train: only the forward), per op, source "
                        "line and category, from the compiled program (roofline estimates; --topology cpu compiles "
                        "and runs it on this machine and measures it too)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows of --profile's op and source tables (20)")
    p.add_argument("--csv", default="", metavar="FILE", help="also write every row's fields to FILE as CSV")
    p.add_argument("--markdown", default="", metavar="FILE", help="also write the Markdown table to FILE")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines (one per compiled row): only the table and errors")
    argv = _join_values(config_loader.normalise(list(argv)))
    try:
        refuse_set(argv)   # the old alias: one line saying how to write it now
    except ValueError as err:
        p.error(str(err))
    args, rest = p.parse_known_args(argv)
    args.overrides = [a for a in rest if a.startswith("--config.")]
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _join_values(argv: list[str]) -> list[str]:
    """`--mesh -1,2,1` -> `--mesh=-1,2,1` (argparse would take the value for an option)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--mesh" and i + 1 < len(argv):
            out.append(f"--mesh={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def _check(args: argparse.Namespace) -> dict:
    """Every option checked and every config loaded (with the overrides) before libtpu starts; the
    parsed values, or ValueError naming the option."""
    for spec in args.config:
        try:
            config_loader.load_config(spec, args.overrides)
        except ValueError as err:
            text = str(err)
            if not text.startswith("--"):  # the config document's own error (an unknown recipe, ...)
                text = f"--config {spec}: " + text.removeprefix("ValueError: ")
            raise ValueError(text) from None
    for topo in args.topology:
        if not (args.profile and topo == "cpu"):
            pod_plan.chips.topology_chips(topo)  # the name's form; libtpu checks the rest
    if args.profile and args.fit:
        raise ValueError("--profile profiles programs (the training step, --infer forwards): it does not combine "
                         "with --fit")
    if args.top < 1:
        raise ValueError(f"--top {args.top}: must be ≥ 1")
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
    """Entry point of `lsm-pod-plan` (`python -m lsm_jax.pod_plan`); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    try:
        opts = _check(args)  # before libtpu: a typo costs no TPU start-up
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s",
                        force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.profile:
            return _profile(args, opts)
        rows = _plan(args, opts)
    except pod_plan.LibtpuMissing as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    table = tables.markdown(rows)
    print(table)
    if args.csv:
        tables.write_csv(rows, args.csv)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0


def _profile(args: argparse.Namespace, opts: dict) -> int:
    """Per config, topology and training combination: the step's profile tables (`lsm_jax.pod.profile`),
    and per --infer size the forward's (`lsm_jax.pod.forward_profile`), printed; with --csv, every row of
    every profile."""
    from lsm_jax.pod import forward_profile, profile
    rows = []
    for spec, topo, mesh, dtype, remat, accum in itertools.product(args.config, args.topology, opts["meshes"],
                                                                   opts["dtypes"], opts["remat"], opts["accum"]):
        base = load_config(spec, args.overrides)
        target = None if topo == "cpu" else topo
        profiles = []
        for batch in [] if args.no_train else opts["batch"] or [int(base.batch_size)]:
            config = combination_config(spec, batch, dtype, remat, accum, args.overrides)
            log.info("profiling %s on %s, batch %d, %s", spec, topo, batch, dtype)
            profiles.append(("train", profile.profile_step(config, target, mesh_sizes=mesh)))
        for size in opts["infer"]:
            net = combination_config(spec, int(base.batch_size), dtype, remat, accum, args.overrides).model
            log.info("profiling the forward of %s on %s at %d², %s", spec, topo, size, dtype)
            profiles.append(("forward", forward_profile.profile_forward(net, target, size, args.infer_batch)))
        for kind, prof in profiles:
            print("\n\n".join(prof.tables(top=args.top)) + "\n")
            rows += [{"config": spec, "topology": topo, "dtype": dtype, "program_kind": kind, **r}
                     for r in prof.rows(top=None)]
    if args.csv:
        tables.write_dict_rows(rows, args.csv)
    return 0


def _plan(args: argparse.Namespace, opts: dict) -> list[pod_plan.PlanRow]:
    """Every row: per config and topology, each training combination (and its largest-fit search),
    then the inference sizes."""
    pod_plan.require_libtpu()
    rows: list[pod_plan.PlanRow] = []
    for spec, topo in itertools.product(args.config, args.topology):
        devices = pod_plan.topology_devices(topo)
        for mesh in opts["meshes"]:
            check_mesh(mesh, topo, len(devices))
        chips = pod_plan.chips.topology_chips(topo)
        base = load_tpu_config(spec, args.overrides)
        batches = ([c * chips for c in opts["per_chip"]] if opts["per_chip"]
                   else opts["batch"] or [int(base.batch_size)])
        for mesh, dtype, remat, accum in itertools.product(opts["meshes"], opts["dtypes"], opts["remat"],
                                                           opts["accum"]):
            if args.no_train:
                break
            group = []
            for batch in batches:
                config = combination_config(spec, batch, dtype, remat, accum, args.overrides)
                row = pod_plan.plan_train(config, topo, mesh, devices)
                log.info("%s", tables.brief(row))
                group.append(row)
            if args.fit:
                group += fit.fit_largest(spec, topo, mesh, dtype, remat, accum, group, args.overrides)
            rows += group
        for size in opts["infer"]:
            row = pod_plan.plan_infer(base.model, topo, size, args.infer_batch or len(devices),
                                      str(base.get("variant", "")), devices)
            log.info("%s", tables.brief(row))
            rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
