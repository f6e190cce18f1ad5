"""Pod planning: compile a training step or an inference forward for a TPU topology on this machine and read
its memory and cost (`plan`); the config a plan compiles (`plan_config`); the largest-batch search
(`fit`); the rows as Markdown and CSV (`tables`). A client of `lsm_jax.training`; the chip table is
`lsm_jax.runtime.chips`. The command is `lsm_jax.pod_plan` (`lsm-pod-plan`)."""
