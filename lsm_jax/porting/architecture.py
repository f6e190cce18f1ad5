"""Read the architecture of an authors' checkpoint from its state_dict keys and shapes.

    cfg, notes = infer_network_config(state_dict)

Inferred: the class (LSM with the classic tail, LSM_light with the one-step tail), scale, embed dim,
depths, heads, MLP ratio, split sizes, d_state and num_tokens. Not in the weights, and taken as the
authors' defaults: img_range, rmin/rmax/max_phase (initialisation only). Two facts the weights only
pin down up to an equivalence are reported in `notes`: an odd head count floors (num_heads 4 and 5
build the same network; the official count is chosen when it fits), and the split sizes come from
the stored position buffers (`rpe_biases`), whose values order them.

`describe_mismatch(options_cfg, weights_cfg)` names the fields on which an options file and the
weights disagree. The key names between the two sides are `lsm_jax.porting.keys`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import ml_collections
import numpy as np

from lsm_jax.model.variants import network_config

__all__ = ["ArchitectureError", "infer_network_config", "describe_mismatch", "official_match", "SHAPE_FIELDS"]

# Fields that the weights determine (num_heads up to the odd-count floor).
SHAPE_FIELDS = ("arch", "upscale", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
                "split_size", "d_state", "num_tokens")
OFFICIAL = ("lsm", "lsm_s", "lsm_light")
_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.")


class ArchitectureError(ValueError):
    """A state_dict whose architecture cannot be read, or that fits more than one architecture."""


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else np.shape(value)))


def _values(value: Any) -> np.ndarray | None:
    """The array's values, or None for a shape-only stand-in (jax.ShapeDtypeStruct and the like)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return None


def _split_sizes(sd: Mapping[str, Any], notes: list[str]) -> list[int]:
    """(s0, s1) from the first window branch's `rpe_biases`; the official [8, 32] if none is stored."""
    key = next((k for k in sd if k.endswith("attns.0.rpe_biases")), None)
    if key is None:
        notes.append("split_size [8, 32]: no rpe_biases buffers in the weights; the official value")
        return [8, 32]
    values = _values(sd[key])
    if values is not None:
        hs, ws = int(round(float(values[:, 0].max()))) + 1, int(round(float(values[:, 1].max()))) + 1
        if (2 * hs - 1) * (2 * ws - 1) != _shape(sd[key])[0]:
            raise ArchitectureError(f"{key}: {_shape(sd[key])} does not match the offsets it holds")
        return [hs, ws]
    # Shapes only: (2a-1)(2b-1) = K and a·b = n (relative_position_index) give {a, b}, not its order.
    k = _shape(sd[key])[0]
    n_key = key.replace("rpe_biases", "relative_position_index")
    n = _shape(sd[n_key])[0] if n_key in sd else None
    pairs = [(a, b) for a in range(2, 129) for b in range(2, 129)
             if (2 * a - 1) * (2 * b - 1) == k and (n is None or a * b == n) and max(a, b) % min(a, b) == 0]
    if len(pairs) != 1:
        raise ArchitectureError(f"two or more architectures fit {key} {(k, 2)}: split_size "
                                + " or ".join(str(list(p)) for p in pairs)
                                + " (the buffer's values decide; pass the real tensors, or an options file)")
    return list(pairs[0])


def infer_network_config(sd: Mapping[str, Any], source: str = "weights"
                         ) -> tuple[ml_collections.ConfigDict, list[str]]:
    """The network config a reference state_dict was built with, and notes on what was assumed."""
    notes: list[str] = []
    if "conv_first.weight" not in sd:
        raise ArchitectureError(f"{source}: no conv_first.weight: not an LSM state_dict")
    embed, in_chans = _shape(sd["conv_first.weight"])[:2]
    classic = "conv_before_upsample.0.weight" in sd
    up0 = _shape(sd["upsample.0.weight"]) if "upsample.0.weight" in sd else None
    # The one-step tail: upsample.0 maps the body straight to in_chans·s² channels.
    light = up0 is not None and up0[1] == embed and up0[0] in {in_chans * s * s for s in (2, 3, 4)}
    if classic and light:
        raise ArchitectureError(f"{source}: two architectures fit: LSM (conv_before_upsample) and "
                                f"LSM_light (upsample.0 {up0} from the {embed}-wide body)")
    if not (classic or light):
        raise ArchitectureError(f"{source}: neither the LSM nor the LSM_light tail is present")
    arch = "LSM" if classic else "LSM_light"
    if arch == "LSM":
        convs = sorted(int(m.group(1)) for k in sd if (m := re.match(r"^upsample\.(\d+)\.weight$", k)))
        outs = [_shape(sd[f"upsample.{i}.weight"])[0] for i in convs]
        feat = _shape(sd["conv_before_upsample.0.weight"])[0]
        scale = {(4,): 2, (9,): 3, (4, 4): 4}.get(tuple(o // feat for o in outs))
        if scale is None:
            raise ArchitectureError(f"{source}: upsample convs with {outs} outputs match no scale (2, 3, 4)")
    else:
        out = _shape(sd["upsample.0.weight"])[0]
        scale = {in_chans * s * s: s for s in (2, 3, 4)}.get(out)
        if scale is None:
            raise ArchitectureError(f"{source}: upsample.0 has {out} outputs: not {in_chans}·s² for s in 2, 3, 4")

    blocks: dict[int, set[int]] = {}
    for key in sd:
        if m := _BLOCK.match(key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise ArchitectureError(f"{source}: residual groups {sorted(blocks)} are not 0..n-1")
    depth = [max(blocks[g]) + 1 for g in range(len(blocks))]
    heads = [2 * _shape(sd[f"layers.{g}.blocks.0.attn.attns.0.pos.pos3.2.weight"])[0] for g in range(len(blocks))]
    cml = "layers.0.blocks.1."
    if f"{cml}lru.lru_core.B_re" not in sd:
        raise ArchitectureError(f"{source}: no {cml}lru.lru_core.B_re (every group has WMS and CML blocks)")
    d_state = _shape(sd[f"{cml}lru.lru_core.B_re"])[0]
    num_tokens = _shape(sd[f"{cml}embedding.weight"])[0]
    hidden = _shape(sd["layers.0.blocks.0.mlp.fc1.weight"])[0]

    cfg = network_config("lsm_light" if arch == "LSM_light" else "lsm", scale)
    cfg.update(arch=arch, in_chans=in_chans, embed_dim=embed, depth=depth, num_heads=heads,
               mlp_ratio=hidden / embed, split_size=_split_sizes(sd, notes), d_state=d_state,
               num_tokens=num_tokens)
    cfg.semantics = "reference"
    name = official_match(cfg)
    if name is not None:
        official = network_config(name, scale).num_heads
        if list(official) != heads:
            notes.append(f"num_heads {list(official)} (the official count; the weights hold "
                         f"{[h // 2 for h in heads]} per window branch, which {heads} builds too)")
            cfg.num_heads = list(official)
    else:
        notes.append(f"num_heads {heads}: the weights fix num_heads // 2 only; an odd count builds the same network")
    return cfg, notes


def _same(field: str, a, b) -> bool:
    if field == "num_heads":
        return [int(x) // 2 for x in a] == [int(x) // 2 for x in b]
    if field == "mlp_ratio":
        return abs(float(a) - float(b)) < 1e-9
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def describe_mismatch(options_cfg, weights_cfg, fields=SHAPE_FIELDS) -> list[str]:
    """'field: options X, weights Y' for every field where the two configs build different networks."""
    return [f"{f}: options {_plain(options_cfg[f])}, weights {_plain(weights_cfg[f])}"
            for f in fields if not _same(f, options_cfg[f], weights_cfg[f])]


def _plain(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def official_match(cfg) -> str | None:
    """The official variant ('lsm', 'lsm_s', 'lsm_light') with this architecture, or None."""
    for name in OFFICIAL:
        ref = network_config(name, int(cfg.upscale))
        if not describe_mismatch(ref, cfg):
            return name
    return None
