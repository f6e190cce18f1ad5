"""`python -m lsm_jax.study` and `lsm-study`: sweeps, reports and LRU pictures (`lsm_jax.studies.cli`)."""

import sys

from lsm_jax.studies.cli import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    return main()


if __name__ == "__main__":
    sys.exit(run())
