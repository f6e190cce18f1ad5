"""The `train` command: parse `--config NAME:RECIPE --workdir DIR [--config.KEY=VALUE ...]` and run the loop.

    lsm-train --config lsm_light:x2_scratch --workdir runs/light_x2     (or python -m lsm_jax.train ...)
    lsm-train --config lsm_light --help                                  # its recipes
    lsm-train --config lsm_light:tiny --print-config [--config.KEY=VALUE ...]

`--config` takes a packaged config by name (`lsm_light:tiny`) or a config file by its path
(`configs/lsm_light.py:tiny`, `my_recipe.py:x2`). Configs load through
`lsm_jax.training.config_loader` (typed, locked overrides; one-line errors naming the flag).
`main(argv)` takes the arguments without the program name, as every command's `main` does.
"""

from __future__ import annotations

import logging
import os
import sys

import ml_collections

from lsm_jax.runtime.command_line import refuse_set
from lsm_jax.training import config_loader

log = logging.getLogger("lsm_jax.train")

PROG = "lsm-train"
USAGE = (f"usage: {PROG} --config NAME[:RECIPE] --workdir DIR [--config.KEY=VALUE ...] [--print-config] [-q] "
         "[-h]\n       (or python -m lsm_jax.train ...)")

HELP = USAGE + """

Train (or resume) LSM in DIR: checkpoints/, export/{best,latest}, tb/, metrics.jsonl, and train_config.json
(the resolved config of the latest start).

options:
  --config NAME[:RECIPE]  a packaged config and one of its recipes, e.g. lsm_light:tiny; a config file's
                          path works too (configs/lsm_light.py:tiny, my_recipe.py:x2)
  --workdir DIR           the run's directory, read and written: rerunning the same command resumes from it
  --config.KEY=VALUE      override one field (typed: a wrong type or an unknown field is an error);
                          tuples as --config.model.depth='(6, 6)'
  --print-config          print every field of the resolved config (recipe and overrides) and exit
  -q, --quiet             log warnings and errors only (no progress bar, no INFO lines)
  -h, --help              this help; with --config NAME also the config's recipes

Packaged configs: lsm, lsm_s, lsm_light (the files are configs/<name>.py in the checkout)."""

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")
PRINT_FLAGS = ("--print-config", "--print_config")
QUIET_FLAGS = ("-q", "--quiet")



def _config_spec(argv: list[str]) -> str | None:
    """The last `--config=SPEC` of a (normalised) command line, without the program name."""
    specs = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    return specs[-1] if specs else None


def parse_args(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
    """(config, workdir) from the command line (`argv[0]` is the program name); a typo or a wrong type
    in an override raises ValueError naming the offending flag."""
    fv = config_loader.parse_flags(argv[1:], workdir=True)
    if fv.config is None or not fv.workdir:
        raise ValueError("--config and --workdir are required")
    return fv.config, fv.workdir


def help_text(argv: list[str]) -> str:
    """The usage, and the recipes of the config named on the command line, if any (ValueError when no
    such config exists)."""
    spec = _config_spec(config_loader.normalise(list(argv[1:])))
    if spec is None:
        return HELP + f"\nTheir recipes: {PROG} --config lsm_light --help"
    source, recipe = config_loader.split_spec(spec)
    path = config_loader.config_path(source)
    try:
        names, doc = config_loader.recipes_of(source)
    except Exception as err:  # a broken config file: say so, still show the usage
        return HELP + f"\n\n{path}: cannot be loaded ({type(err).__name__}: {err})"
    lines = [f"\n\nRecipes of {source} ({path}; --config {source}:<recipe>): "
             + (", ".join(names) if names else "(no RECIPES table)")]
    if doc:
        lines.append(f"  get_config: {doc.splitlines()[0]}")
    recipe = recipe or (names[0] if names else "<recipe>")
    lines.append(f"Every field of a recipe, with its value: {PROG} --config {source}:{recipe} --print-config")
    return HELP + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lsm-train` (`python -m lsm_jax.train`): the arguments without the program name;
    returns the exit status."""
    argv = [PROG, *(sys.argv[1:] if argv is None else argv)]
    if any(a in HELP_FLAGS for a in argv[1:]):
        try:
            print(help_text(argv))
        except ValueError as err:
            print(f"{HELP}\n\n{PROG}: error: {err}", file=sys.stderr)
            return 2
        return 0
    print_config = any(a in PRINT_FLAGS for a in argv[1:])
    quiet = any(a in QUIET_FLAGS for a in argv[1:])
    argv = [a for a in argv if a not in PRINT_FLAGS + QUIET_FLAGS]
    try:
        refuse_set(argv[1:])
        if print_config:
            fv = config_loader.parse_flags(argv[1:], workdir=True)
            if fv.config is None:
                raise ValueError("--print-config needs --config NAME:RECIPE")
            try:
                print(fv.config, flush=True)
            except BrokenPipeError:  # `... --print-config | head`
                sys.stdout = open(os.devnull, "w")
            return 0
        config, workdir = parse_args(argv)
    except ValueError as err:
        print(f"{PROG}: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    from lsm_jax.training import (
        loop,  # the training stack, only once the arguments are good
    )

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):  # orbax logs every file it writes at INFO, jax every backend it probes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        config.progress_bar = False
    try:
        summary = loop.train_and_evaluate(config, workdir)
    except loop.NonFiniteLossError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:  # configuration and input errors name their option/file
        log.debug("details", exc_info=True)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    log.info("done at step %d%s", summary["final_step"], " (preempted)" if summary["preempted"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
