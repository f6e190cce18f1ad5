"""The config documents (one `get_config(arg)` per file, big_vision style). Installed as the package
`lsm_jax.configs`, so `--config lsm_light:tiny` works from an installed package; read the files here."""
