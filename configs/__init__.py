"""The config documents (one `get_config(arg)` per file, big_vision style). Installed as the package
`lsm_jax.configs`, so `--config lsm_light:tiny` works from an installed package; a file's path
(`--config configs/lsm_light.py:tiny`) works too. `lsm_jax.training.config_loader` reads them."""
