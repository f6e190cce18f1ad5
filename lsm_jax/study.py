r"""The `study` command: run a sweep, report it, and picture the LRU of a trained model.

    lsm-study [run] --config lsm_light:tiny --workdir studies/ring --sweep model.rmin=0.4,0.9 \
        [--zip a.b=v1,v2 ...] [--config.a.b=v ...] [--seeds 3] [--steps N] [-i BENCHMARK_DIR ...] \
        [--run-index i --num-runs n] [-q]
    lsm-study --config studies/ring_settings --workdir studies/ring
    lsm-study report studies/ring [-o DIR] [--compare A B]
    lsm-study eigen CKPT_OR_WORKDIR [-i LR_IMAGE] [-o DIR] [--init]
    lsm-study states CKPT_OR_WORKDIR -i LR_IMAGE [--block K] [-o DIR]

(`python -m lsm_jax.study ...` is the same; `lsm-study --help` lists the commands, `lsm-study COMMAND --help`
gives a command's options.) Without a command, `run` is meant. `--config` takes a packaged config or study
document by name (`lsm_light:tiny`, `studies/ring_settings`) or a config file by its path
(`configs/studies/ring_settings.py`); `--config.KEY=VALUE` fixes a field for every run, as `lsm-train` takes
it. A config document may define `STUDY = dict(sweep=[...], zip=[...], set=[...], seeds=3, steps=400,
baseline='<row label>')` (`set`: fixed `KEY=VALUE` fields; the baseline is the declared reference row of the
report's paired Δ): its axes come before the command line's, and the command line's seeds/steps win.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lsm_jax.runtime.command_line import refuse_set
from lsm_jax.training import config_loader

PROG = "lsm-study"
COMMANDS = ("run", "report", "eigen", "states")
USAGE = (f"{PROG} [run] --config NAME[:ARG] --workdir DIR [--sweep KEY=V1,V2 ...] [--config.KEY=VALUE ...] ...\n"
         f"       {PROG} report DIR [-o DIR] [--compare A B]\n"
         f"       {PROG} eigen CHECKPOINT [-i IMAGE] [-o DIR]\n"
         f"       {PROG} states CHECKPOINT -i IMAGE [-o DIR]\n"
         f"       {PROG} {{{','.join(COMMANDS)}}} --help")
# Spellings before the commands' one vocabulary, per command: still read, not shown in the help.
RENAMED = {"run": {"--data": "--input"}, "report": {"--out": "--output"},
           "eigen": {"--out": "--output", "--image": "--input"}, "states": {"--out": "--output", "--image": "--input"}}
QUIET = ("-q", "--quiet")


class _UsageError(ValueError):
    """A command line argparse cannot read (the command's usage is shown with it)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the flag, as the other commands do
        raise _UsageError(message)


def _quiet_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # Below the top level the default is SUPPRESS, so `lsm-study -q report DIR` is not undone by report's default.
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="log warnings and errors only (no INFO lines); results are still printed")


def parser() -> argparse.ArgumentParser:
    """`lsm-study` and its commands (each `lsm-study COMMAND`, with its own --help)."""
    top = _Parser(prog=PROG, usage=USAGE,
                  description="Studies of LSM: sweeps of training runs with seeds, their report (mean, CI, paired Δ), "
                              "and pictures of a trained model's LRU.",
                  epilog=f"{PROG} COMMAND --help gives a command's options. Without a command, run is meant: "
                         f"{PROG} --config ... is {PROG} run --config ...")
    _quiet_option(top, top=True)
    commands = top.add_subparsers(dest="command", title="commands", metavar="{" + ",".join(COMMANDS) + "}",
                                  prog=PROG, parser_class=_Parser)

    run = commands.add_parser(
        "run", help="run (or resume) a study: a sweep of training runs, each with several seeds",
        description="Run a study: a sweep of training runs with seeds, in DIR; rerunning the same command resumes it. "
                    "When every run is done, the report is written (as lsm-study report DIR).",
        usage=f"{PROG} [run] --config NAME[:ARG] --workdir DIR [--sweep KEY=V1,V2 ...] [--zip KEY=V1,V2 ...]\n"
              f"{' ' * len(PROG)}        [--config.KEY=VALUE ...] [--seeds N] [--steps N] [-i DIR ...] "
              "[--run-index I --num-runs N] [-q]",
        epilog="Fixed fields: --config.KEY=VALUE (or --config.KEY VALUE), as lsm-train takes them (typed; an unknown "
               "field or a wrong type is an error), applied to every run. --sweep and --zip are the axes.")
    run.add_argument("--config", required=True, metavar="NAME[:ARG]",
                     help="a packaged config or study document and its argument (e.g. lsm_light:tiny, "
                          "studies/ring_settings), or a config file's path, FILE.py[:ARG]")
    run.add_argument("--workdir", required=True, metavar="DIR",
                     help="the study's folder, read and written: rerunning the same command resumes the study")
    run.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...", help="grid axis (repeatable)")
    run.add_argument("--zip", action="append", default=[], metavar="KEY=V1,V2,...",
                     help="zipped axis: the zipped fields step together (repeatable)")
    run.add_argument("--seeds", type=int, default=None, metavar="N", help="runs per setting (seed offsets 0..N-1)")
    run.add_argument("--steps", type=int, default=None, metavar="N",
                     help="training steps per run (rescales the schedule)")
    run.add_argument("-i", "--input", action="append", default=[], metavar="DIR",
                     help="benchmark folder every run is scored on (repeatable; default: the config's eval.dirs)")
    run.add_argument("--run-index", type=int, default=None, metavar="I",
                     help="this process's index (default: $LSM_STUDY_RUN_INDEX, the SLURM array task, else 0)")
    run.add_argument("--num-runs", type=int, default=None, metavar="N", help="number of processes sharing the study")
    _quiet_option(run)

    report = commands.add_parser(
        "report", help="the table of a study: mean and 95 %% CI over seeds, Δ paired by seed vs its baseline",
        description="Table of a study: mean and 95 % CI over seeds, Δ paired by seed vs the declared baseline; "
                    "writes report.md, report.csv, runs.csv (and the eigenvalue figures).")
    report.add_argument("workdir", metavar="DIR",
                        help="a study folder (its study.json: lsm-study run makes it), or a folder holding a "
                             "study's runs.csv")
    report.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (default: DIR)")
    report.add_argument("--no-plots", action="store_true", help="the table only")
    report.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                        help="print A − B paired by seed (rows by label or 1-based number); writes nothing")
    _quiet_option(report)

    eigen = commands.add_parser(
        "eigen", help="pictures of the LRU eigenvalues λ of every CML block of a model",
        description="Pictures of the LRU eigenvalues λ of every CML block (initial and trained).")
    eigen.add_argument("checkpoint", metavar="CHECKPOINT",
                       help="a model checkpoint (config.json + params/) or a training workdir")
    eigen.add_argument("-i", "--input", default=None, metavar="IMAGE",
                       help="an LR image for the effective |λ·Mk_A| (default: Set5 baby)")
    eigen.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (default: CHECKPOINT/eigen)")
    eigen.add_argument("--init", action="store_true", help="the initialisation only (no trained panel)")
    eigen.add_argument("--seed", type=int, default=None, metavar="N",
                       help="the training seed (default: from run.json, else 10)")
    _quiet_option(eigen)

    states = commands.add_parser(
        "states", help="|h| along the sorted token sequence of one CML block, for an image",
        description="|h| along the sorted sequence of one CML block, and the image's token categories.")
    states.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a model checkpoint (config.json + params/) or a training workdir")
    states.add_argument("-i", "--input", required=True, metavar="IMAGE", help="an LR image")
    states.add_argument("--block", type=int, default=0, metavar="K", help="which CML block (0 = the first)")
    states.add_argument("-o", "--output", default=None, metavar="DIR",
                        help="output folder (default: CHECKPOINT/states)")
    _quiet_option(states)
    top.commands = dict(run=run, report=report, eigen=eigen, states=states)
    return top


def study_document(config_arg: str) -> dict:
    """The `STUDY` dict of a config document (empty if it has none)."""
    study = getattr(config_loader.load_module(config_arg), "STUDY", {}) or {}
    unknown = sorted(set(study) - {"sweep", "zip", "set", "seeds", "steps", "data", "baseline"})
    if unknown:
        raise ValueError(f"--config {config_arg}: STUDY has unknown keys {unknown}")
    return study



def run_command(args: argparse.Namespace) -> int:
    from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
    from lsm_jax.studies import report, runner
    from lsm_jax.studies import sweep as sweep_mod

    doc = study_document(args.config)
    sweep = sweep_mod.Sweep.parse([*doc.get("sweep", []), *args.sweep], [*doc.get("zip", []), *args.zip],
                                  args.seeds if args.seeds is not None else int(doc.get("seeds", 1)))
    fixed = []
    for text in doc.get("set", []):   # the document's fixed fields, KEY=VALUE
        axis = sweep_mod.parse_axis(f"--config {args.config}: STUDY set", text)
        if len(axis.values) != 1:
            raise sweep_mod.SweepError(f"--config {args.config}: STUDY set {text}: one value (use sweep for several)")
        fixed.append((axis.key, axis.values[0]))
    sweep_mod.validate(args.config, sweep_mod.Sweep([sweep_mod.Axis(f"--config {args.config}: STUDY set", k, (v,))
                                                     for k, v in fixed]))
    config_loader.load_config(args.config, args.overrides)   # the command line's fields: errors name the flag
    fixed += [tuple(o.removeprefix("--config.").split("=", 1)) for o in args.overrides]
    sweep_mod.validate(args.config, sweep)
    data = [*doc.get("data", []), *args.input]
    for data_dir in data:
        resolve_benchmark_dir(data_dir, option="-i")
    steps = args.steps if args.steps is not None else doc.get("steps")
    spec = runner.study_spec(args.config, sweep, fixed, steps, data, baseline=doc.get("baseline"))
    total = len(sweep.settings()) * sweep.seeds
    if not args.quiet:
        print(f"[study] {len(sweep.settings())} setting(s) × {sweep.seeds} seed(s) = {total} run(s) in {args.workdir}")
    counts = runner.run_study(spec, sweep, args.workdir, run_index=args.run_index, num_runs=args.num_runs)
    print(f"[study] {counts['done']} run(s) trained, {counts['skipped']} already finished, "
          f"{counts['failed']} non-finite" + ("; stopped (run the same command to resume)" if counts["stopped"] else ""))
    if counts["stopped"]:
        return 1
    if report.all_finished(args.workdir):
        for path in report.write_report(args.workdir):
            print(f"[study] wrote {path}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from lsm_jax.studies import report
    if args.compare:
        print(report.comparison_text(report.collect(args.workdir), *args.compare), end="")
        return 0
    for path in report.write_report(args.workdir, out=args.output, plots=not args.no_plots):
        print(f"[study] wrote {path}")
    return 0


def eigen_command(args: argparse.Namespace) -> int:
    from lsm_jax.studies import eigen
    for line in eigen.make_figures(args.checkpoint, out=args.output, image=args.input, init_only=args.init,
                                   seed=args.seed):
        print(f"[study] {line}")
    return 0


def states_command(args: argparse.Namespace) -> int:
    from lsm_jax.studies import states
    for line in states.make_figures(args.checkpoint, args.input, block=args.block, out=args.output):
        print(f"[study] {line}")
    return 0


def _command_line(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the command, argv with it named and the old spellings replaced); None for the top level's --help."""
    argv = config_loader.normalise(list(argv))
    at = next((i for i, a in enumerate(argv) if a not in QUIET), len(argv))
    head = argv[at] if at < len(argv) else None
    if head in ("-h", "--help"):
        return None, argv
    if head not in COMMANDS:
        argv = [*argv[:at], "run", *argv[at:]]
    command = argv[at]
    renamed = RENAMED[command]
    out = argv[:at + 1]
    for a in argv[at + 1:]:
        name, eq, value = a.partition("=")
        out.append(renamed[name] + eq + value if name in renamed else a)
    return command, out


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lsm-study` (`python -m lsm_jax.study`): the arguments without the program name;
    returns the exit status."""
    command, argv = _command_line(sys.argv[1:] if argv is None else argv)
    cli = parser()
    try:
        refuse_set(argv)
        args, rest = cli.parse_known_args(argv)
        args.overrides = [a for a in rest if a.startswith("--config.")] if command == "run" else []
        stray = [a for a in rest if a not in args.overrides]
        if stray:
            raise _UsageError(f"unrecognized arguments: {' '.join(stray)}")
    except ValueError as err:
        usage = "" if command is None else "\n" + cli.commands[command].format_usage()
        print(f"{PROG} {command or ''}".rstrip() + f": error: {err}{usage}".rstrip(), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handler = dict(run=run_command, report=report_command, eigen=eigen_command, states=states_command)[command]
    try:
        return handler(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"{PROG} {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
