"""The one table between the authors' state_dict keys and our parameter paths, read both ways.

    torch_to_ours('layers.0.blocks.1.lru.in_proj.0.weight')  # 'layers.0.blocks.1.lru.in_proj.kernel'
    ours_to_torch('upsample.1.kernel')                        # 'upsample.2.weight'
    pair = from_torch(key); pair.to_ours(tensor)              # the key's tensor in our layout

The authors' key layout (every key, with its shape) is described in docs/spec.md §11
("Checkpoint / state_dict layout"); the golden fixture tests/fixtures/lsm_tiny_x2.json lists the keys
of a real small model. Each row of `KEYS` relates one torch module (or raw parameter) to ours:

    (torch pattern, our pattern, layout)

A pattern is a dotted path with numbered fields: `{g}` residual group, `{j}` block, `{k}` window
branch, `{n}` a numbered sibling (norm1..4, pos1..3), `{i}` upsampling conv. `{2i}` is twice `i`:
the authors' classic tail is Sequential(conv, shuffle, conv, shuffle), so its convs sit at even
indices (the one-step tail's single conv is index 0 either way). The layout names the module's
tensors on each side (a torch Linear's `weight` is our `kernel`, a LayerNorm's `weight` our `scale`)
and the axis order of the weight: Linear (out, in) -> (in, out); Conv (O, I, kh, kw) -> HWIO, a
depthwise (C, 1, 3, 3) -> (3, 3, 1, C). Both directions are derived from the table, so they are
inverses by construction; tests/test_convert.py checks that every row is used by the official variants.

`BUFFERS` are the authors' keys with no counterpart here: position and mask buffers, recomputed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["KEYS", "BUFFERS", "Layout", "Pair", "from_torch", "from_ours", "torch_to_ours", "ours_to_torch"]


@dataclass(frozen=True)
class Layout:
    """The tensors of one module: (torch leaf, our leaf) pairs ('' for a raw parameter, the key
    itself), and the permutation taking the torch weight's axes to ours (None: kept as it is)."""
    leaves: tuple[tuple[str, str], ...]
    weight_axes: tuple[int, ...] | None = None


LINEAR = Layout((("weight", "kernel"), ("bias", "bias")), (1, 0))        # (out, in) -> (in, out)
CONV = Layout((("weight", "kernel"), ("bias", "bias")), (2, 3, 1, 0))    # (O, I, kh, kw) -> HWIO
NORM = Layout((("weight", "scale"), ("bias", "bias")))                   # LayerNorm
PARAM = Layout((("", ""),))                                              # a raw parameter, as it is
LRU_CORE = Layout(tuple((p, p) for p in ("nu_log", "theta_log", "gamma_log", "B_re", "B_im",
                                         "C_re", "C_im", "D")))         # raw parameters, as they are

BLOCK = "layers.{g}.blocks.{j}."                  # block j of residual group g (even j WMS, odd j CML)
POS = BLOCK + "attn.attns.{k}.pos."               # the position-bias MLP of window branch k

KEYS: tuple[tuple[str, str, Layout], ...] = (
    # torch (the authors' state_dict)      ours (the Flax NNX parameter tree)  layout
    ("conv_first",                         "conv_first",                       CONV),
    ("before_RG.1",                        "before_norm",                      NORM),
    (BLOCK + "gamma",                      BLOCK + "gamma",                    PARAM),
    (BLOCK + "norm{n}",                    BLOCK + "norm{n}",                  NORM),
    # WMS block
    (BLOCK + "attn.qkv",                   BLOCK + "attn.qkv",                 LINEAR),
    (BLOCK + "attn.proj",                  BLOCK + "attn.proj",                LINEAR),
    (BLOCK + "attn.get_v",                 BLOCK + "attn.get_v",               CONV),
    (POS + "pos_proj",                     POS + "pos_proj",                   LINEAR),
    (POS + "pos{n}.0",                     POS + "pos{n}_norm",                NORM),
    (POS + "pos{n}.2",                     POS + "pos{n}",                     LINEAR),
    # CML block
    (BLOCK + "embedding.weight",           BLOCK + "embedding",                PARAM),
    (BLOCK + "lru.scale",                  BLOCK + "lru.scale",                PARAM),
    (BLOCK + "lru.wq",                     BLOCK + "lru.wq",                   LINEAR),
    (BLOCK + "lru.wk",                     BLOCK + "lru.wk",                   LINEAR),
    (BLOCK + "lru.wv",                     BLOCK + "lru.wv",                   LINEAR),
    (BLOCK + "lru.in_proj.0",              BLOCK + "lru.in_proj",              CONV),
    (BLOCK + "lru.CPE.0",                  BLOCK + "lru.CPE",                  CONV),
    (BLOCK + "lru.out_proj",               BLOCK + "lru.out_proj",             LINEAR),
    (BLOCK + "lru.lru_core",               BLOCK + "lru.lru_core",             LRU_CORE),
    # gated MLP, both block types
    (BLOCK + "mlp.fc1",                    BLOCK + "mlp.fc1",                  LINEAR),
    (BLOCK + "mlp.sg.norm",                BLOCK + "mlp.sg_norm",              NORM),
    (BLOCK + "mlp.sg.conv",                BLOCK + "mlp.sg_conv",              CONV),
    (BLOCK + "mlp.fc2",                    BLOCK + "mlp.fc2",                  LINEAR),
    # end of each group, body, tail
    ("layers.{g}.conv",                    "layers.{g}.conv",                  CONV),
    ("norm",                               "norm",                             NORM),
    ("conv_after_body",                    "conv_after_body",                  CONV),
    ("conv_before_upsample.0",             "conv_before_upsample",             CONV),
    ("upsample.{2i}",                      "upsample.{i}",                     CONV),
    ("conv_last",                          "conv_last",                        CONV),
)

# The authors' buffers: recomputed from the padded size here (spec §10 Q9, §11), so dropped.
BUFFERS = re.compile(r"\.(rpe_biases|relative_position_index|attn_mask_\d+)$")

_FIELD = re.compile(r"\{(\d*)([a-z]+)\}")


@dataclass(frozen=True)
class Pair:
    """One key on both sides, the table row (`row`, index into KEYS) and leaf that relate them."""
    torch: str
    ours: str
    row: int
    leaf: str                                  # the torch leaf ('weight', 'bias', ...; '' for PARAM)
    axes: tuple[int, ...] | None               # torch axes -> our axes (None: the same)

    def to_ours(self, value: Any) -> Any:
        """A torch tensor of this key in our layout."""
        return value if self.axes is None else np.transpose(value, self.axes)

    def to_torch(self, value: Any) -> Any:
        """One of our tensors of this path in the torch layout."""
        return value if self.axes is None else np.transpose(value, np.argsort(self.axes))

    def torch_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The torch shape of a tensor of ours with `shape`."""
        return tuple(shape) if self.axes is None else tuple(shape[a] for a in np.argsort(self.axes))


@dataclass(frozen=True)
class _Side:
    regex: re.Pattern
    scales: dict[str, int]                     # field -> the multiple this side writes ({2i}: 2)
    template: str

    def read(self, key: str) -> dict[str, int] | None:
        m = self.regex.fullmatch(key)
        if m is None:
            return None
        values = {}
        for field, text in m.groupdict().items():
            value, rest = divmod(int(text), self.scales[field])
            if rest:
                return None
            values[field] = value
        return values

    def write(self, values: dict[str, int]) -> str:
        return _FIELD.sub(lambda m: str(int(m.group(1) or 1) * values[m.group(2)]), self.template)


def _side(template: str) -> _Side:
    scales, regex, end = {}, "", 0
    for m in _FIELD.finditer(template):
        scales[m.group(2)] = int(m.group(1) or 1)
        regex += re.escape(template[end:m.start()]) + rf"(?P<{m.group(2)}>0|[1-9]\d*)"
        end = m.end()
    return _Side(re.compile(regex + re.escape(template[end:])), scales, template)


def _join(module: str, leaf: str) -> str:
    return f"{module}.{leaf}" if leaf else module


def _rules() -> tuple:
    """(row, torch leaf, torch side, our side, axes) for every tensor that a row of KEYS relates."""
    rules = []
    for row, (torch, ours, layout) in enumerate(KEYS):
        if set(_side(torch).scales) != set(_side(ours).scales):
            raise ValueError(f"KEYS[{row}]: {torch!r} and {ours!r} have different fields")
        for torch_leaf, our_leaf in layout.leaves:
            rules.append((row, torch_leaf, _side(_join(torch, torch_leaf)), _side(_join(ours, our_leaf)),
                          layout.weight_axes if torch_leaf == "weight" else None))
    return tuple(rules)


_RULES = _rules()


def _find(key: str, torch_side: bool) -> Pair | None:
    found = []
    for row, leaf, t_side, o_side, axes in _RULES:
        values = (t_side if torch_side else o_side).read(key)
        if values is not None:
            other = (o_side if torch_side else t_side).write(values)
            t, o = (key, other) if torch_side else (other, key)
            found.append(Pair(t, o, row, leaf, axes))
    if len(found) > 1:
        raise ValueError(f"{key!r} fits rows {[p.row for p in found]} of the key table")
    return found[0] if found else None


def from_torch(torch_key: str) -> Pair | None:
    """The pair of a torch state_dict key, or None when no row of the table holds it."""
    return _find(torch_key, True)


def from_ours(path: str) -> Pair | None:
    """The pair of one of our parameter paths ('layers.0.blocks.0.attn.qkv.kernel'), or None."""
    return _find(path, False)


def torch_to_ours(torch_key: str) -> str | None:
    """Our parameter path of a torch state_dict key, or None when no row holds it."""
    pair = from_torch(torch_key)
    return None if pair is None else pair.ours


def ours_to_torch(path: str) -> str | None:
    """The torch state_dict key of one of our parameter paths, or None when no row holds it."""
    pair = from_ours(path)
    return None if pair is None else pair.torch
