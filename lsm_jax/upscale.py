"""`python -m lsm_jax.upscale` and `lsm-upscale`: super-resolve your own images (`lsm_jax.inference.upscale`)."""

import sys

from lsm_jax.inference.upscale import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    return main()


if __name__ == "__main__":
    sys.exit(run())
