"""The study documents (a `STUDY` table and a `get_config`), installed as `lsm_jax.configs.studies`."""
