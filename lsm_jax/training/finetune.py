"""Starting a finetune from the previous stage's exported weights."""

from __future__ import annotations

import logging

import jax
import numpy as np
from flax import nnx

from lsm_jax.model.saved import load_model
from lsm_jax.training import checkpointing, sharding
from lsm_jax.training.distributed import replicated_host
from lsm_jax.training.state import TrainState, merge_pretrained

log = logging.getLogger("lsm_jax.train")


def load_pretrained(state: TrainState, state_sh: TrainState, config, is_main: bool) -> TrainState:
    """Finetune start: the previous stage's EMA weights into params and EMA; the optimizer is fresh."""
    src = checkpointing.resolve_init_dir(config.init_from)
    old_model, _ = load_model(src)
    params, report = merge_pretrained(replicated_host(state.params), nnx.state(old_model, nnx.Param),
                                      strict=config.init_strict, source=str(src))
    if is_main:
        log.info("initialised from %s (%s)%s", src, "strict" if config.init_strict else "non-strict",
                 "".join(f"\n  {line}" for line in report))
    params = jax.tree.map(np.asarray, params)
    return state.replace(params=sharding.place(params, state_sh.params),
                         ema_params=sharding.place(params, state_sh.ema_params))
