"""The authors' PyTorch checkpoints: reading them and converting them (`checkpoint`), the one two-way
table between their state_dict keys and our parameter paths (`keys`), and inferring the architecture
from a state_dict's keys and shapes (`architecture`). The command is `lsm_jax.convert`."""
