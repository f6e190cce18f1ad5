"""Pod planning: compile a training step or an inference forward for a TPU topology on this machine and read
its memory and cost (`plan`). A client of `lsm_jax.training`; the chip table is `lsm_jax.runtime.chips`.
The command is `lsm_jax.pod_plan`."""
