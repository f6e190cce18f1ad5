"""The LSM network in Flax NNX: layers, window attention (WMS), the SMU and LRU of the CML block,
the network and its official variants. The recurrence itself is `lsm_jax.scan`."""
