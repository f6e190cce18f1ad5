"""The scan settings of a network config (`config.model.scan`): the strategy and its options.

    --config.model.scan.impl=two_pass --config.model.scan.chunk=128
"""

from __future__ import annotations

from typing import NamedTuple

import ml_collections

from lsm_jax.scan import OPTIONS, check_options


class ScanSpec(NamedTuple):
    """A validated strategy and its options, hashable (a static attribute of a module)."""
    impl: str
    options: tuple   # ((name, value), ...)

    def kwargs(self) -> dict:
        """Keyword arguments for `linear_recurrence`."""
        return dict(impl=self.impl, **dict(self.options))


def scan_config(impl: str = 'auto') -> ml_collections.ConfigDict:
    """The default `config.model.scan`: `impl` and every option of the registry (`OPTIONS`) that is
    `in_config` (not `mesh`: `jax.set_mesh` gives it when the sharded strategy runs). An option whose
    default is None is a typed field (`interpret`: None, True or False)."""
    cfg = ml_collections.ConfigDict(dict(impl=impl))
    for name, option in OPTIONS.items():
        if option.in_config:
            field_type = next(t for t in option.types if t is not type(None))
            cfg[name] = (option.default if option.default is not None
                         else ml_collections.FieldReference(None, field_type=field_type))
    return cfg


def scan_spec(cfg: ml_collections.ConfigDict, where: str = 'model.scan') -> ScanSpec:
    """Validate `config.model.scan` (one-line errors naming the field) and freeze it."""
    options = {k: v for k, v in cfg.items() if k != 'impl'}
    check_options(cfg.impl, options, where)
    return ScanSpec(cfg.impl, tuple(sorted(options.items())))
