"""The `train` command: parse `--config file.py:recipe --workdir DIR [--config.x=...]` and run the loop.

    python -m lsm_jax.train --config configs/lsm_light.py:x2_scratch --workdir runs/light_x2
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import ml_collections

log = logging.getLogger("lsm_jax.train")


USAGE = ("usage: python -m lsm_jax.train --config configs/<variant>.py:<recipe> --workdir DIR "
         "[--config.key=value ...]")


def parse_args(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
    """(config, workdir) from the command line; a typo or a wrong type in an override raises
    ValueError naming the offending flag."""
    from absl import flags
    from ml_collections import config_flags

    def parse(args):
        fv = flags.FlagValues()
        # sys_argv: config_flags finds the override flags there (default: the process's sys.argv).
        config_flags.DEFINE_config_file("config", None, "config file and recipe", flag_values=fv,
                                        lock_config=True, sys_argv=list(args))
        flags.DEFINE_string("workdir", None, "directory for checkpoints, logs and the exported model",
                            flag_values=fv)
        fv(args)
        _ = fv.config  # config_flags defers some load errors to first use
        return fv

    argv = list(argv)
    while "--config" in argv[1:-1]:  # "--config X" -> "--config=X", so the checks below see one form
        i = argv.index("--config", 1)
        argv[i:i + 2] = [f"--config={argv[i + 1]}"]
    for arg in argv[1:]:
        if arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1].split(":", 1)[0])
            if not path.is_file():
                raise ValueError(f"--config: no config file {str(path)!r} (expected e.g. configs/lsm_light.py:tiny)")
    try:
        fv = parse(argv)
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
    if fv.config is None or not fv.workdir:
        raise ValueError("--config and --workdir are required")
    return fv.config, fv.workdir


def _fails(parse, args) -> bool:
    try:
        parse(args)
    except Exception:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.train`; returns the exit status."""
    argv = sys.argv if argv is None else argv
    try:
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
