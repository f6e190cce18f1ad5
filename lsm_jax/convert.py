"""`python -m lsm_jax.convert` and `lsm-convert`: the authors' checkpoints to lsm-jax (`lsm_jax.inference.convert`)."""

import sys

from lsm_jax.inference.convert import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    return main()


if __name__ == "__main__":
    sys.exit(run())
