"""The `train` command: parse `--config file.py:recipe --workdir DIR [--config.x=...]` and run the loop.

    python -m lsm_jax.train --config configs/lsm_light.py:x2_scratch --workdir runs/light_x2
    python -m lsm_jax.train --config configs/lsm_light.py --help            # its recipes
    python -m lsm_jax.train --config configs/lsm_light.py:tiny --print-config [--config.x=...]

The override parser (`load_config`: typed, locked, one-line errors naming the flag) is shared with
`pod_plan`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import ml_collections

log = logging.getLogger("lsm_jax.train")


USAGE = ("usage: python -m lsm_jax.train --config configs/<variant>.py:<recipe> --workdir DIR "
         "[--config.key=value ...] [--print-config] [-h | --help]")

HELP = USAGE + """

Train (or resume) LSM in DIR: checkpoints/, export/{best,latest}, tb/, metrics.jsonl, and train_config.json
(the resolved config of the latest start).

  --config FILE[:RECIPE]  a config file and one of its recipes, e.g. configs/lsm_light.py:tiny
  --workdir DIR           the run's directory; rerunning the same command resumes from it
  --config.KEY=VALUE      override one field (typed: a wrong type or an unknown field is an error);
                          tuples as --config.model.depth='(6, 6)'
  --print-config          print every field of the resolved config (recipe and overrides) and exit
  -h, --help              this help; with --config FILE also the file's recipes

Config files: configs/lsm.py, configs/lsm_s.py, configs/lsm_light.py."""

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")
PRINT_FLAGS = ("--print-config", "--print_config")


def _normalise(argv: list[str]) -> list[str]:
    """"--config X" -> "--config=X", so that every check sees one form."""
    argv = list(argv)
    while "--config" in argv[1:-1]:
        i = argv.index("--config", 1)
        argv[i:i + 2] = [f"--config={argv[i + 1]}"]
    return argv


def _config_path(argv: list[str]) -> Path | None:
    specs = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")]
    return Path(specs[-1].split(":", 1)[0]) if specs else None


def load_config(spec: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """The config of `file.py[:recipe]` with `--config.key=value` overrides applied as `train` applies
    them (ml_collections' config flags: typed, locked). Raises ValueError with a one-line message that
    names the file or the offending override."""
    bad = [o for o in overrides if not o.startswith("--config.") or "=" not in o]
    if bad:
        raise ValueError(f"{bad[0]}: expected --config.key=value")
    fv = _parse_flags(["lsm", f"--config={spec}", *overrides], workdir=False)
    return fv.config


def _parse_flags(argv: list[str], workdir: bool = True):
    """absl flag values with the config (and --workdir) parsed from argv; ValueError in one line."""
    from absl import flags
    from ml_collections import config_flags

    def parse(args):
        fv = flags.FlagValues()
        # sys_argv: config_flags finds the override flags there (default: the process's sys.argv).
        config_flags.DEFINE_config_file("config", None, "config file and recipe", flag_values=fv,
                                        lock_config=True, sys_argv=list(args))
        if workdir:
            flags.DEFINE_string("workdir", None, "directory for checkpoints, logs and the exported model",
                                flag_values=fv)
        fv(args)
        _ = fv.config  # config_flags defers some load errors to first use
        return fv

    argv = _normalise(argv)
    path = _config_path(argv)
    if path is not None and not path.is_file():
        raise ValueError(f"--config: no config file {str(path)!r} (expected e.g. configs/lsm_light.py:tiny)")
    try:
        return parse(argv)
    except Exception as err:  # config_flags raises several types: name the flag that fails alone
        base = [a for a in argv[1:] if a.startswith("--config=")]
        culprit = next((a for a in argv[1:] if a.startswith("--config.") and _fails(parse, argv[:1] + base + [a])),
                       None)
        if isinstance(err, (AttributeError, KeyError)) and culprit:
            hint = str(err).strip("'\"").split("\\n")[-1].split("\n")[-1]
            raise ValueError(f"{culprit}: no such config field ({hint})") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if any("Traceback" in line for line in lines) else " ".join(lines)
        raise ValueError(f"{culprit}: {detail}" if culprit else detail) from None


def parse_args(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
    """(config, workdir) from the command line; a typo or a wrong type in an override raises
    ValueError naming the offending flag."""
    fv = _parse_flags(argv)
    if fv.config is None or not fv.workdir:
        raise ValueError("--config and --workdir are required")
    return fv.config, fv.workdir


def recipes_of(path: Path) -> tuple[list[str], str]:
    """(recipe names, get_config's docstring) of a config file: its RECIPES table's names when it has
    one (what `get_config(arg)` accepts)."""
    spec = importlib.util.spec_from_file_location(f"_help_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (getattr(getattr(module, "get_config", None), "__doc__", "") or "").strip()
    return list(getattr(module, "RECIPES", {}) or {}), doc


def help_text(argv: list[str]) -> str:
    """The usage, and the recipes of the config file named on the command line, if any (ValueError
    when that file does not exist)."""
    text = HELP
    path = _config_path(_normalise(argv))
    if path is None:
        return text + "\nTheir recipes: python -m lsm_jax.train --config configs/lsm_light.py --help"
    if not path.is_file():
        raise ValueError(f"--config: no config file {str(path)!r} (expected e.g. configs/lsm_light.py)")
    try:
        names, doc = recipes_of(path)
    except Exception as err:  # a broken config file: say so, still show the usage
        return text + f"\n\n{path}: cannot be loaded ({type(err).__name__}: {err})"
    lines = [f"\n\nRecipes of {path} (--config {path}:<recipe>): " + (", ".join(names) if names else
                                                                       "(no RECIPES table)")]
    if doc:
        lines.append(f"  get_config: {doc.splitlines()[0]}")
    specs = [a.split("=", 1)[1] for a in _normalise(argv)[1:] if a.startswith("--config=")]
    recipe = specs[-1].partition(":")[2] or (names[0] if names else "<recipe>")
    lines.append(f"Every field of a recipe, with its value: python -m lsm_jax.train --config {path}:{recipe} "
                 "--print-config")
    return text + "\n".join(lines)


def _fails(parse, args) -> bool:
    try:
        parse(args)
    except Exception:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.train`; returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv[1:]):
        try:
            print(help_text(argv))
        except ValueError as err:
            print(f"{HELP}\n\nlsm_jax.train: error: {err}", file=sys.stderr)
            return 2
        return 0
    print_config = any(a in PRINT_FLAGS for a in argv[1:])
    argv = [a for a in argv if a not in PRINT_FLAGS]
    try:
        if print_config:
            fv = _parse_flags(argv)
            if fv.config is None:
                raise ValueError("--print-config needs --config FILE:RECIPE")
            try:
                print(fv.config, flush=True)
            except BrokenPipeError:  # `... --print-config | head`
                sys.stdout = open(os.devnull, "w")
            return 0
        config, workdir = parse_args(argv)
    except ValueError as err:
        print(f"lsm_jax.train: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    from lsm_jax.training import loop  # the training stack, only once the arguments are good

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):  # orbax logs every file it writes at INFO, jax every backend it probes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        summary = loop.train_and_evaluate(config, workdir)
    except loop.NonFiniteLossError as err:
        print(f"lsm_jax.train: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:  # configuration and input errors name their option/file
        log.debug("details", exc_info=True)
        print(f"lsm_jax.train: error: {err}", file=sys.stderr)
        return 2
    log.info("done at step %d%s", summary["final_step"], " (preempted)" if summary["preempted"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
