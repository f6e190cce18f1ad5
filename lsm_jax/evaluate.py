"""`python -m lsm_jax.evaluate` and `lsm-evaluate`: PSNR/SSIM by the SR protocol (`lsm_jax.evaluation.evaluate`)."""

import sys

from lsm_jax.evaluation.evaluate import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    main()  # errors leave through SystemExit, with their message
    return 0


if __name__ == "__main__":
    sys.exit(run())
