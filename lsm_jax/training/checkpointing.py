"""Training checkpoints (orbax `CheckpointManager`) and the EMA export that inference reads.

A workdir holds:

    checkpoints/<step>/state   the TrainState (params, EMA, optimizer state, step, RNG), sharded
    checkpoints/<step>/data    each process's data iterator state (process_<i>-of-<n>.json)
    export/latest, export/best the EMA weights in `lsm_jax.model.saved` format (config.json + params/)

Orbax writes every checkpoint into a temporary directory and renames it into place once all of it
is on disk, so a kill during a save leaves the previous checkpoint untouched, and the partial
directory is removed at the next start. The preservation policy keeps the last `keep` checkpoints
plus the one with the best validation PSNR.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

from lsm_jax.model import saved

log = logging.getLogger(__name__)

BEST_METRIC = "psnr"


# ---------------------------------------------------------------------------------------------
# Data iterator state: one small JSON file per process, inside each checkpoint.


class DataStateHandler(ocp.CheckpointHandler):
    """Saves each process's iterator state (`it.get_state()`: a dict or bytes) as JSON."""

    def _file(self, directory: epath.Path) -> epath.Path:
        return directory / f"process_{jax.process_index()}-of-{jax.process_count()}.json"

    def save(self, directory: epath.Path, args: "DataStateSave"):
        state = args.state
        if isinstance(state, (bytes, bytearray)):
            state = {"__bytes__": base64.b64encode(bytes(state)).decode("ascii")}
        self._file(directory).write_text(json.dumps(state))

    def restore(self, directory: epath.Path, args: "DataStateRestore | None" = None) -> Any:
        path = self._file(directory)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no data iterator state for this process "
                                    f"(was the checkpoint written with a different process count?)")
        state = json.loads(path.read_text())
        if isinstance(state, dict) and set(state) == {"__bytes__"}:
            return base64.b64decode(state["__bytes__"])
        return state

    def metadata(self, directory: epath.Path) -> None:
        return None

    def finalize(self, directory: epath.Path) -> None:
        pass

    def close(self) -> None:
        pass


@ocp.args.register_with_handler(DataStateHandler, for_save=True)
@dataclasses.dataclass
class DataStateSave(ocp.args.CheckpointArgs):
    """The iterator state captured at save time (not the iterator: saves may be asynchronous)."""
    state: Any


@ocp.args.register_with_handler(DataStateHandler, for_restore=True)
@dataclasses.dataclass
class DataStateRestore(ocp.args.CheckpointArgs):
    """Restore this process's iterator state."""


# ---------------------------------------------------------------------------------------------
# The resume checkpoints.


class Checkpointer:
    """Keeps the last `keep` checkpoints plus the best by validation PSNR, saving asynchronously."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
        if keep < 1:
            raise ValueError(f"checkpoint.keep must be ≥ 1, got {keep}")
        self.directory = Path(directory).absolute()
        preservation = policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], reverse=False, n=1,
                           keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preservation, enable_async_checkpointing=async_save, create=True,
            cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Steps of every complete checkpoint, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, data_state: Any, metrics: dict[str, float] | None = None) -> None:
        """Starts saving (returns once the arrays are copied off the devices; the write continues)."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=DataStateSave(data_state))
        metrics = {k: float(v) for k, v in metrics.items()} if metrics else None
        self.manager.save(int(step), args=args, metrics=metrics, force=True)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, Any]:
        """(state, data iterator state) of `step`; `abstract_state` gives shapes and shardings."""
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), data=DataStateRestore())
        out = self.manager.restore(int(step), args=args)
        return out.state, out.data

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step once any received a preemption notice (multi-host)."""
        return self.manager.reached_preemption(int(step))

    def wait(self) -> None:
        """Blocks until any save in flight is on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


# ---------------------------------------------------------------------------------------------
# The inference export: EMA weights in the saved-model format (lsm_jax.model.saved), replaced atomically.


def _replace_dir(staged: Path, final: Path) -> None:
    """Moves `staged` to `final`; the old `final` survives as `final.old` until the new one is in."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_export(final: Path) -> None:
    """After a kill between the two renames of `_replace_dir`, puts `final.old` back."""
    old = final.with_name(final.name + ".old")
    if old.exists() and not final.exists():
        os.replace(old, final)


def export_model(directory: str | os.PathLike, net_cfg: ml_collections.ConfigDict, params: Any,
                 info: dict[str, Any] | None = None) -> Path:
    """Writes `params` (host-addressable, e.g. replicated EMA weights) as an inference checkpoint.

    Written beside `directory` first and renamed into place, so readers never see half of it.
    `info` (step, PSNR, ...) goes to `train_info.json` next to `config.json`.
    """
    final = Path(directory).absolute()
    staged = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    pure = jax.tree.map(np.asarray, nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params)
    if jax.process_count() == 1:
        saved.save_model(staged, net_cfg, pure)
    else:
        # saved's checkpointer synchronises every process; here only process 0 writes.
        staged.mkdir(parents=True)
        mp = ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0},
                                                barrier_sync_key_prefix="export")
        ckptr = ocp.StandardCheckpointer(multiprocessing_options=mp)
        ckptr.save(staged / saved.PARAMS_DIR, pure)
        ckptr.wait_until_finished()
        (staged / saved.CONFIG_FILE).write_text(saved.config_to_json(net_cfg))
    if info is not None:
        (staged / "train_info.json").write_text(json.dumps(info, indent=2))
    _replace_dir(staged, final)
    return final


def read_export_info(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The `train_info.json` of an export, or None if there is none."""
    path = Path(directory) / "train_info.json"
    return json.loads(path.read_text()) if path.is_file() else None


def resolve_init_dir(path: str | os.PathLike) -> Path:
    """An inference checkpoint directory from a path that is one, or a training workdir
    (its `export/best`, else `export/latest`)."""
    path = Path(path)
    for candidate in (path, path / "export" / "best", path / "export" / "latest"):
        if (candidate / saved.CONFIG_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"init_from={str(path)!r}: neither a model checkpoint (config.json + params/) "
                            f"nor a training workdir with export/best or export/latest")
