"""The scan settings of a network config (`config.model.scan`): the strategy and its options.

    --config.model.scan.impl=two_pass --config.model.scan.chunk=128
"""

from __future__ import annotations

from typing import NamedTuple

import ml_collections

from lsm_jax.scan import SCAN_OPTIONS, check_options


class ScanSpec(NamedTuple):
    """A validated strategy and its options, hashable (a static attribute of a module)."""
    impl: str
    options: tuple   # ((name, value), ...)

    def kwargs(self) -> dict:
        """Keyword arguments for `linear_recurrence`."""
        return dict(impl=self.impl, **dict(self.options))


def scan_config(impl: str = 'auto') -> ml_collections.ConfigDict:
    """The default `config.model.scan`: every option of `SCAN_OPTIONS` except `mesh` (taken from
    `jax.set_mesh` when the sharded strategy runs)."""
    fields = {k: v for k, v in SCAN_OPTIONS.items() if k not in ('mesh', 'interpret')}
    cfg = ml_collections.ConfigDict(dict(impl=impl, **fields))
    cfg.interpret = ml_collections.FieldReference(None, field_type=bool)   # Pallas: None = off TPU only
    return cfg


def scan_spec(cfg: ml_collections.ConfigDict, where: str = 'model.scan') -> ScanSpec:
    """Validate `config.model.scan` (one-line errors naming the field) and freeze it."""
    options = {k: v for k, v in cfg.items() if k != 'impl'}
    check_options(cfg.impl, options, where)
    return ScanSpec(cfg.impl, tuple(sorted(options.items())))
