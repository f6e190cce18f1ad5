"""Pod planning: compile a training step or an inference forward for a TPU topology on this machine and read
its memory and cost (`plan`); the config a plan compiles (`plan_config`); the largest-batch search
(`fit`); the rows as Markdown and CSV (`tables`); where the step's time goes, per op and per category
(`profile`: roofline estimates from the optimized HLO, `hlo_cost`, `hlo_frames`, `ceilings`; a measured
CPU trace, `cpu_trace`; its tables, `profile_tables`). A client of `lsm_jax.training`; the chip table is
`lsm_jax.runtime.chips`. The command is `lsm_jax.pod_plan` (`lsm-pod-plan`)."""
