"""The training config a plan compiles: a config loaded by the one loader
(`lsm_jax.training.config_loader`, specs such as `lsm:x2_scratch` or `configs/lsm.py:x2_scratch`, overrides
`--config.KEY=VALUE`), resolved as a TPU run resolves it, and one combination of batch, dtype, remat and
gradient accumulation of it."""

from __future__ import annotations

from typing import Sequence

import ml_collections

from lsm_jax.scan import pick_impl
from lsm_jax.training.config_loader import load_config


def tpu_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config as a TPU run resolves it ('auto' scan -> what auto picks on a TPU backend); changed in
    place and returned."""
    if config.model.scan.impl == "auto":
        config.model.scan.impl = pick_impl(config.patch_size ** 2, platform="tpu")
    return config


def load_tpu_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """`load_config(spec, overrides)` (ValueError in one line naming the spec or the override), resolved
    for a TPU."""
    return tpu_config(load_config(spec, overrides))


def combination_config(spec: str, batch: int, dtype: str, remat: bool, accum: int,
                       overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The TPU config of `spec` with the global batch, compute dtype, remat and gradient-accumulation
    steps of one planned combination."""
    config = load_config(spec, overrides)
    config.batch_size, config.model.dtype, config.model.remat, config.grad_accum_steps = batch, dtype, remat, accum
    return tpu_config(config)
