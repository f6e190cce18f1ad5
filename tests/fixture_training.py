"""The micro training network the training tests share, and how their subprocesses are started.

`micro_config()` is the tiny LSM-light recipe (`lsm_light:tiny`, read through the one config loader)
shrunk to the smallest network that has both block types: one WMS + one CML block on 8×8 LR patches,
batch 8 over the 8 fake CPU devices. `MICRO_OVERRIDES` are the same settings as command-line flags, for
the tests that run `python -m lsm_jax.train`: both build the same programs, so each compiles once per
session through the persistent compilation cache at `CACHE_DIR` (the `compilation_cache` fixture of
conftest.py turns it on in-process; `subprocess_env()` passes it on to subprocesses).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lsm_jax.training.config_loader import load_config   # ml_collections and absl only: no JAX

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(tempfile.gettempdir()) / "lsm_jax_test_xla_cache"
RECIPE = "lsm_light:tiny"

MICRO_MODEL = dict(embed_dim=32, depth=[2], num_heads=[2], num_tokens=8, d_state=2, split_size=[4, 4])
MICRO_OVERRIDES = [f"--config.model.{k}={v if isinstance(v, str) else tuple(v) if isinstance(v, list) else v}"
                   for k, v in MICRO_MODEL.items()] + [
    "--config.model.scan.impl=sequential",
    "--config.patch_size=8", "--config.batch_size=8", "--config.eval.every=0", "--config.progress_bar=False",
    "--config.data.read_threads=1"]


def micro_config(total_steps: int = 4, **fields):
    """`lsm_light:tiny` with `MICRO_OVERRIDES`, `total_steps` and a checkpoint every 2 steps; `fields`
    (dotted names, e.g. `**{"model.upscale": 4}`) are set on top. The config is locked: an unknown field
    is an error."""
    config = load_config(RECIPE, [*MICRO_OVERRIDES, f"--config.total_steps={total_steps}",
                                  "--config.checkpoint.every=2"])
    for key, value in fields.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config


def subprocess_env() -> dict[str, str]:
    """The test process's environment (8 CPU devices) plus the shared compilation cache."""
    return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(CACHE_DIR), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def params_of(directory) -> list:
    """The parameter arrays (numpy) of an exported model folder, in tree order."""
    import jax
    import numpy as np
    from flax import nnx

    from lsm_jax.model.saved import load_model
    model, _ = load_model(directory)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
