"""`python -m lsm_jax.train` and `lsm-train`: training on a device mesh (`lsm_jax.training.cli`)."""

import sys

from lsm_jax.training.cli import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    return main()


if __name__ == "__main__":
    sys.exit(run())
