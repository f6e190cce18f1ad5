"""Inference checkpoints: a directory with `config.json` (the network config) and `params/` (orbax).

This is what `convert` writes, what training exports (the EMA weights), and what `upscale` and
`evaluate` read. Both parts are written to temporary names and renamed into place, so a directory is
never left half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from lsm_jax.model.network import LSM

CONFIG_FILE = 'config.json'
PARAMS_DIR = 'params'


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete or does not match its config."""


def config_to_json(cfg: ml_collections.ConfigDict) -> str:
    """The network config as JSON (lists, not tuples; unset semantics overrides as null)."""
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)


def set_field(cfg: ml_collections.ConfigDict, key: str, value) -> None:
    """cfg[key] = value, where the flat `scan_impl` of older configs means `scan.impl` and a `scan`
    dict updates the scan options it names (the others keep their defaults)."""
    if key == 'scan_impl':
        cfg.scan.impl = value
    elif key == 'scan' and isinstance(value, dict):
        unknown = sorted(set(value) - set(cfg.scan.keys()))
        if unknown:
            raise CheckpointError(f"{CONFIG_FILE}: unknown scan options {unknown}")
        for name, option in value.items():
            if option is not None or cfg.scan[name] is None:
                cfg.scan[name] = option
    elif value is not None or cfg[key] is None:
        cfg[key] = value


def config_from_json(text: str) -> ml_collections.ConfigDict:
    """Inverse of `config_to_json`, starting from the defaults so that older files stay loadable."""
    from lsm_jax.model.variants import network_config
    data = json.loads(text)
    cfg = network_config('lsm', int(data.get('upscale', 2)))
    unknown = sorted(set(data) - set(cfg.keys()) - {'scan_impl'})
    if unknown:
        raise CheckpointError(f"{CONFIG_FILE}: unknown network fields {unknown}")
    for key, value in data.items():
        set_field(cfg, key, value)
    return cfg


def save_model(directory: str | os.PathLike, cfg: ml_collections.ConfigDict, params: nnx.State | dict,
               *, overwrite: bool = False) -> Path:
    """Write `params` (an nnx Param state or its pure dict) and `cfg` to `directory` atomically."""
    directory = Path(directory)
    if (directory / PARAMS_DIR).exists() and not overwrite:
        raise CheckpointError(f"{directory}: already holds a checkpoint (pass overwrite=True / --overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    pure = jax.tree.map(np.asarray, pure)
    staging = Path(tempfile.mkdtemp(prefix='.params-', dir=directory))
    try:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(staging / PARAMS_DIR, pure)
        checkpointer.wait_until_finished()
        tmp_cfg = staging / CONFIG_FILE
        tmp_cfg.write_text(config_to_json(cfg))
        target = directory / PARAMS_DIR
        if target.exists():
            # Move the old weights aside first: a kill at any point leaves either them or the new ones.
            os.replace(target, staging / 'replaced')
        os.replace(staging / PARAMS_DIR, target)
        os.replace(tmp_cfg, directory / CONFIG_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def read_config(directory: str | os.PathLike) -> ml_collections.ConfigDict:
    """The network config stored in a checkpoint directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a model checkpoint (no {CONFIG_FILE})")
    return config_from_json(path.read_text())


def load_model(directory: str | os.PathLike, **overrides) -> tuple[LSM, ml_collections.ConfigDict]:
    """Build the network of a checkpoint directory and load its parameters.

    `overrides` replace config fields before the network is built (e.g. `semantics='paper'`,
    `scan=dict(impl='two_pass', chunk=128)`, or the older `scan_impl='chunked'`); parameter shapes do
    not depend on them.
    """
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    cfg = read_config(directory)
    for key, value in overrides.items():
        set_field(cfg, key, value)
    model = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    params_dir = (directory / PARAMS_DIR).absolute()
    if not params_dir.exists():
        raise CheckpointError(f"{directory}: no {PARAMS_DIR}/ (incomplete checkpoint)")
    try:
        restored = ocp.StandardCheckpointer().restore(params_dir, target)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{directory}: parameters do not match {CONFIG_FILE}: {err}") from err
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)
    return model, cfg
