r"""The `study` command: run a sweep, report it, and picture the LRU of a trained model.

    lsm-study --config lsm_light:tiny --sweep model.rmin=0.4,0.9 \
        [--zip a.b=v1,v2 ...] [--set a.b=v] --seeds 3 --workdir studies/ring [--steps N] [--data DIR] \
        [--run-index i --num-runs n]
    lsm-study --config studies/ring_settings --workdir studies/ring
    lsm-study report studies/ring [--compare A B]
    lsm-study eigen CKPT_OR_WORKDIR [--out DIR] [--image PATH] [--init]
    lsm-study states CKPT_OR_WORKDIR --image PATH [--block K] [--out DIR]

(`python -m lsm_jax.study ...` is the same.) `--config` takes a packaged config or study document by
name (`lsm_light:tiny`, `studies/ring_settings`) or a config file by its path
(`configs/studies/ring_settings.py`). A config document may define `STUDY = dict(sweep=[...], zip=[...],
set=[...], seeds=3, steps=400, baseline='<row label>')` (the declared baseline row of the report's
paired Δ): its axes come before the command line's, and the command line's seeds/steps win.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lsm_jax.training import config_loader

USAGE = "usage: lsm-study [run] --config NAME[:ARG] --workdir DIR [--sweep K=V1,V2 ...] | report DIR | " \
        "eigen CKPT | states CKPT --image PATH"
COMMANDS = ("run", "report", "eigen", "states")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the flag, as the other commands do
        raise ValueError(message)


def study_document(config_arg: str) -> dict:
    """The `STUDY` dict of a config document (empty if it has none)."""
    study = getattr(config_loader.load_module(config_arg), "STUDY", {}) or {}
    unknown = sorted(set(study) - {"sweep", "zip", "set", "seeds", "steps", "data", "baseline"})
    if unknown:
        raise ValueError(f"--config {config_arg}: STUDY has unknown keys {unknown}")
    return study


def run_command(argv: list[str]) -> int:
    from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
    from lsm_jax.studies import report, runner, sweep as sweep_mod

    p = _Parser(prog="lsm_jax.study", description="Run a study: a sweep of training runs with seeds.")
    p.add_argument("--config", required=True,
                   help="a packaged config or study document and its argument, NAME[:ARG] (e.g. lsm_light:tiny, "
                        "studies/ring_settings), or a config file's path, FILE.py[:ARG]")
    p.add_argument("--workdir", required=True, help="the study's folder")
    p.add_argument("--sweep", action="append", default=[], help="grid axis KEY=V1,V2,... (repeatable)")
    p.add_argument("--zip", action="append", default=[], help="zipped axis KEY=V1,V2,... (repeatable)")
    p.add_argument("--set", action="append", default=[], help="fixed override KEY=V for every run")
    p.add_argument("--seeds", type=int, default=None, help="runs per setting (seed offsets 0..N-1)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (rescales the schedule)")
    p.add_argument("--data", action="append", default=[], help="benchmark folder to score on (repeatable)")
    p.add_argument("--run-index", type=int, default=None, help="this process's index (default: env or 0)")
    p.add_argument("--num-runs", type=int, default=None, help="number of processes sharing the study")
    args = p.parse_args(argv)
    doc = study_document(args.config)
    sweep = sweep_mod.Sweep.parse([*doc.get("sweep", []), *args.sweep], [*doc.get("zip", []), *args.zip],
                                  args.seeds if args.seeds is not None else int(doc.get("seeds", 1)))
    fixed = []
    for text in [*doc.get("set", []), *args.set]:
        axis = sweep_mod.parse_axis("--set", text)
        if len(axis.values) != 1:
            raise sweep_mod.SweepError(f"--set {text}: one value (use --sweep for several)")
        fixed.append((axis.key, axis.values[0]))
    sweep_mod.validate(args.config, sweep_mod.Sweep([sweep_mod.Axis("--set", k, (v,)) for k, v in fixed]))
    sweep_mod.validate(args.config, sweep)
    for data_dir in [*doc.get("data", []), *args.data]:
        resolve_benchmark_dir(data_dir, option="--data")
    steps = args.steps if args.steps is not None else doc.get("steps")
    spec = runner.study_spec(args.config, sweep, fixed, steps, [*doc.get("data", []), *args.data],
                             baseline=doc.get("baseline"))
    total = len(sweep.settings()) * sweep.seeds
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


def report_command(argv: list[str]) -> int:
    from lsm_jax.studies import report
    p = _Parser(prog="lsm_jax.study report",
                description="Table of a study: mean and 95 % CI over seeds, Δ paired by seed vs the "
                            "declared baseline.")
    p.add_argument("workdir", help="a study folder, or a folder holding a study's runs.csv")
    p.add_argument("--out", default=None, help="output folder (default: the study's folder)")
    p.add_argument("--no-plots", action="store_true", help="the table only")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                   help="print A − B paired by seed (rows by label or 1-based number); writes nothing")
    args = p.parse_args(argv)
    if args.compare:
        print(report.comparison_text(report.collect(args.workdir), *args.compare), end="")
        return 0
    for path in report.write_report(args.workdir, out=args.out, plots=not args.no_plots):
        print(f"[study] wrote {path}")
    return 0


def eigen_command(argv: list[str]) -> int:
    from lsm_jax.studies import eigen
    p = _Parser(prog="lsm_jax.study eigen", description="Pictures of the LRU eigenvalues λ of every CML block.")
    p.add_argument("checkpoint", help="a model checkpoint (config.json + params/) or a training workdir")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint>/eigen)")
    p.add_argument("--image", default=None, help="an LR image for the effective |λ·Mk_A| (default: Set5 baby)")
    p.add_argument("--init", action="store_true", help="the initialisation only (no trained panel)")
    p.add_argument("--seed", type=int, default=None, help="the training seed (default: from run.json, else 10)")
    args = p.parse_args(argv)
    for line in eigen.make_figures(args.checkpoint, out=args.out, image=args.image, init_only=args.init,
                                   seed=args.seed):
        print(f"[study] {line}")
    return 0


def states_command(argv: list[str]) -> int:
    from lsm_jax.studies import states
    p = _Parser(prog="lsm_jax.study states", description="|h| along the sorted sequence of one CML block.")
    p.add_argument("checkpoint", help="a model checkpoint (config.json + params/) or a training workdir")
    p.add_argument("--image", required=True, help="an LR image")
    p.add_argument("--block", type=int, default=0, help="which CML block (0 = the first)")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint>/states)")
    args = p.parse_args(argv)
    for line in states.make_figures(args.checkpoint, args.image, block=args.block, out=args.out):
        print(f"[study] {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.study`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handler = dict(run=run_command, report=report_command, eigen=eigen_command, states=states_command)[command]
    try:
        return handler(argv)
    except (ValueError, FileNotFoundError) as err:
        print(f"lsm_jax.study {command}: error: {err}" + (f"\n{USAGE}" if command == "run" else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
