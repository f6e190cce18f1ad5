"""Processes and preemption: multi-host start-up, the stop signal, and gathering sharded trees."""

from __future__ import annotations

import signal
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils


def initialize_distributed(cfg: ml_collections.ConfigDict) -> None:
    """`jax.distributed.initialize` when configured (empty fields are auto-detected)."""
    if not cfg.initialize:
        return
    kwargs = {}
    if cfg.coordinator_address:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes > 0:
        kwargs["num_processes"] = int(cfg.num_processes)
    if cfg.process_id >= 0:
        kwargs["process_id"] = int(cfg.process_id)
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(**kwargs)


class StopSignal:
    """SIGTERM/SIGINT set a flag the loop checks after each step (single process). With several
    processes JAX's preemption service owns SIGTERM and `Checkpointer.reached_preemption` agrees on
    a common step."""

    def __init__(self):
        self.requested = None
        self._previous = {}
        if jax.process_count() == 1:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def replicated_host(tree: Any) -> Any:
    """A fully replicated numpy copy of a (possibly sharded, multi-process) pytree."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    return multihost_utils.process_allgather(tree, tiled=True)
