"""The authors' PyTorch checkpoints: reading them and converting their keys (`checkpoint`), and inferring
the architecture from a state_dict's keys and shapes (`architecture`). The command is `lsm_jax.convert`."""
