"""`python -m lsm_jax.make_lr` and `lsm-make-lr`: MATLAB-bicubic LR folders (`lsm_jax.data.make_lr`)."""

import sys

from lsm_jax.data.make_lr import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    main()  # errors leave through SystemExit, with their message
    return 0


if __name__ == "__main__":
    sys.exit(run())
