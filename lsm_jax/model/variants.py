"""Network configurations of the LSM family (spec §8). The semantics presets (spec §10) they name by
`semantics` are in `lsm_jax.model.semantics`.

A network config is an `ml_collections.ConfigDict` whose field names follow the authors' constructor
keyword arguments, so a BasicSR `network_g` section maps onto it one to one.
"""

from __future__ import annotations

import ml_collections

from lsm_jax.scan.spec import scan_config

VARIANTS = ("lsm", "lsm_s", "lsm_light", "tiny")


def _base(arch: str, scale: int) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            arch=arch,
            upscale=scale,
            in_chans=3,
            img_range=1.0,
            embed_dim=180,
            depth=[5] * 8,
            num_heads=[5] * 8,
            mlp_ratio=2.0,
            split_size=[8, 32],
            d_state=32,
            num_tokens=128,
            rmin=0.9,
            rmax=0.99,
            max_phase=6.283,
            lru_gamma="learned",   # γ of B·u: 'learned' (reference) | 'from_lambda' | 'off' (lsm_jax.model.lru)
            mk_a_scale=1.0,        # decay a = λ·min(s·Mk_A, 1); 1 = the authors' λ·Mk_A (lsm_jax.model.lru)
            drop_path_rate=0.1,
            # Semantics: a preset name, plus optional per-switch overrides (None = from the preset).
            semantics="paper",
            scan_axis=ml_collections.FieldReference(None, field_type=str),
            mk_a_batch_mean=ml_collections.FieldReference(None, field_type=bool),
            modulation_order=ml_collections.FieldReference(None, field_type=str),
            scan=scan_config(),   # the LRU's scan strategy and its options (lsm_jax.scan)
            remat=False,
            dtype="float32",
        )
    )


def network_config(variant: str, scale: int = 2) -> ml_collections.ConfigDict:
    """The architecture of an official variant ('lsm', 'lsm_s', 'lsm_light') or the test-size 'tiny'.

    'tiny' is the golden fixture's architecture (spec §13) at the given scale.
    """
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    if variant == "lsm":
        return _base("LSM", scale)
    if variant == "lsm_s":
        cfg = _base("LSM", scale)
        cfg.depth, cfg.num_heads = [5] * 6, [5] * 6
        return cfg
    if variant == "lsm_light":
        cfg = _base("LSM_light", scale)
        cfg.update(embed_dim=60, depth=[6] * 4, num_heads=[4] * 4, mlp_ratio=1.0, num_tokens=64, d_state=16)
        return cfg
    if variant == "tiny":
        cfg = _base("LSM", scale)
        cfg.update(embed_dim=64, depth=[4, 4], num_heads=[5, 8], mlp_ratio=2.0, split_size=[4, 8],
                   num_tokens=16, d_state=4)
        return cfg
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
