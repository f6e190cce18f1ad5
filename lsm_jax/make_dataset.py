"""`python -m lsm_jax.make_dataset` and `lsm-make-dataset`: sub-images in ArrayRecord shards (`lsm_jax.data.make_dataset`)."""

import sys

from lsm_jax.data.make_dataset import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    main()  # errors leave through SystemExit, with their message
    return 0


if __name__ == "__main__":
    sys.exit(run())
