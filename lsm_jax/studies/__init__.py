"""The study lab: sweeps of training runs with seeds (`runner`, `sweep`), their table and statistics
(`report`, `statistics`), and pictures of what the LRU learned (`eigen`, `states`). The command is
`lsm_jax.study`."""
