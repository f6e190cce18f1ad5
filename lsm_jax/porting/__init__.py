"""The authors' PyTorch checkpoints: reading them and converting them (`checkpoint`, and `pth`, a torch-free
reader of `.pth` files that loads tensors and dicts only), the one two-way table between their state_dict keys
and our parameter paths (`keys`), inferring the architecture from a state_dict's keys and shapes
(`architecture`), and the released models by name: the nine names and the file matching (`releases`), hub and
URL downloads (`download`), and any model source resolved to a converted, cached checkpoint (`model_source`).
The command is `lsm_jax.convert`; `lsm-upscale`, `lsm-evaluate` and `lsm_jax.load_model` resolve sources here."""
