"""`python -m lsm_jax.pod_plan` and `lsm-pod-plan`: plan TPU runs by compiling for TPU topologies here
(`lsm_jax.training.plan_cli`)."""

import sys

from lsm_jax.training.plan_cli import main


def run() -> int:
    """Console-script entry point; returns the exit status."""
    return main()


if __name__ == "__main__":
    sys.exit(run())
