"""Training on a device mesh: `recipes` (configs), `step` (the jitted step), `loop` (the phases), `state`,
`optimizer`, `sharding` + `axis_rules`, `checkpointing`, `validation`, `reporting`, `distributed`,
`finetune`, `throughput`. The command is `lsm_jax.train`.

This package imports nothing heavy at import time, so a config (`recipes`) loads without grain or optax."""
