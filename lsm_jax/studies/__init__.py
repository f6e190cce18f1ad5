"""The study lab: sweeps of training runs with seeds (`runner`, `sweep`), their table (`report`),
and pictures of what the LRU learned (`eigen`, `states`). The command is `lsm_jax.studies.cli`."""
