"""The ops of a compiled program and what each costs, read from its optimized HLO text
(`compiled.as_text()`): no private JAX or XLA API.

    module = parse_module(compiled.as_text())
    for instr in module.computations[module.entry]:
        module.instr_flops(module.entry, instr), module.instr_bytes(module.entry, instr)

(`lsm_jax.pod.profile.collect_ops` walks the entry this way, opening while loops into their bodies.)

FLOPs are counted from shapes, as XLA's cost analysis counts them: a dot 2·(output elements)·(contracted
size); a convolution 2·(output batch·features)·(input features per group)·(valid window taps per spatial
dimension, padding and dilation holes excluded); an elementwise op one per output element; a reduce one
per input element; a sort n·⌈log2 n⌉ comparisons. A fusion counts the ops inside it.

Bytes are the op's memory traffic: the arrays it reads and writes at its boundary (a fusion's operands
and results), once each, at their padded size where the layout is tiled (TPU: `T(8,128)` pads the two
minor dimensions), wherever the compiler placed them: an operand it prefetched into on-chip memory
(`S(1)`, TPU VMEM) counts at the op that reads it, and the prefetch itself (a copy-start/-done between
memory spaces) counts nothing. So the roofline charges every op's operands at the HBM bandwidth. A
fusion operand read only through slices counts the slices, at most the whole operand (a 3×3 stencil's
nine shifted slices read it once); an operand updated in place (dynamic-update-slice) counts the
update. Async ops (`*-start`, `*-update`, `*-done`) count the operands where they are passed (start or
update) and the result at the done. These are estimates of the kind a roofline needs, not measurements.
"""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cached_property

from lsm_jax.pod.hlo_frames import Frames

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
               "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "s4": 0.5, "u4": 0.5, "s2": 0.25, "u2": 0.25}
_ARRAY = re.compile(r"\b([a-z]+\d*(?:e\d+m\d+\w*)?)\[([\d,]*)\](\{[^}]*\})?")
_CALLED = re.compile(r"\b(?:calls|to_apply|body|condition|true_computation|false_computation)=%([\w.\-]+)")
_CALLED_LIST = re.compile(r"\b(?:called_computations|branch_computations)=\{([^}]*)\}")

# Opcodes that cost one FLOP per output element.
ELEMENTWISE = frozenset(
    "add subtract multiply divide remainder maximum minimum power atan2 negate abs sign exponential "
    "exponential-minus-one log log-plus-one logistic tanh sqrt rsqrt cbrt sine cosine tan erf floor ceil "
    "round-nearest-afz round-nearest-even compare select clamp and or xor not shift-left "
    "shift-right-logical shift-right-arithmetic is-finite real imag complex popcnt count-leading-zeros "
    "stochastic-convert reduce-precision".split())
# Opcodes that only move or relabel data.
MOVEMENT = frozenset("copy transpose reshape bitcast broadcast slice concatenate pad reverse iota convert "
                     "dynamic-slice dynamic-update-slice copy-start copy-done".split())
# Opcodes with no traffic of their own.
FREE = frozenset("parameter constant get-tuple-element tuple bitcast after-all partition-id replica-id "
                 "add-dependency opt-barrier domain".split())
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
               "collective-broadcast", "ragged-all-to-all")


@dataclasses.dataclass(frozen=True)
class Array:
    """One array of an HLO shape: dtype, dimensions and where its layout puts it."""
    dtype: str
    dims: tuple[int, ...]
    minor_to_major: tuple[int, ...] | None = None
    tile: tuple[int, ...] | None = None     # the first tile of a tiled layout, e.g. (8, 128)
    memory_space: int = 0                    # S(n); 0: device memory (HBM)

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> float:
        """Bytes as laid out: the minor dimensions padded to the tile where the layout is tiled."""
        dims = list(self.dims)
        if self.tile and self.minor_to_major is not None and dims:
            order = list(self.minor_to_major)
            for t, d in zip(reversed(self.tile), order):   # the tile's last entry pads the most minor dim
                dims[d] = -(-dims[d] // t) * t
        return math.prod(dims) * DTYPE_BYTES.get(self.dtype, 4)


def parse_arrays(type_text: str) -> list[Array]:
    """The arrays of a (possibly tuple) HLO type, in order."""
    out = []
    for dtype, dims, layout in _ARRAY.findall(type_text):
        if dtype not in DTYPE_BYTES and not dtype.startswith("f8"):
            continue
        shape = tuple(int(d) for d in dims.split(",") if d)
        m2m, tile, space = None, None, 0
        if layout:
            body = layout[1:-1]
            order, _, rest = body.partition(":")
            m2m = tuple(int(d) for d in order.split(",") if d.strip().isdigit()) or None
            t = re.match(r"T\(([\d,]+)\)", rest)
            tile = tuple(int(x) for x in t.group(1).split(",")) if t else None
            s = re.search(r"S\((\d+)\)", rest)
            space = int(s.group(1)) if s else 0
        out.append(Array(dtype, shape, m2m, tile, space))
    return out


def _balanced(text: str, start: int) -> int:
    """Index just past the bracket group opening at text[start]."""
    pairs, depth, quote = {"(": ")", "{": "}", "[": "]"}, [], False
    for i in range(start, len(text)):
        c = text[i]
        if c == '"' and text[i - 1] != "\\":
            quote = not quote
        elif quote:
            continue
        elif c in pairs:
            depth.append(pairs[c])
        elif depth and c == depth[-1]:
            depth.pop()
            if not depth:
                return i + 1
    return len(text)


@dataclasses.dataclass
class Instr:
    """One HLO instruction: `%name = type opcode(operands), attributes`."""
    name: str
    type_text: str
    opcode: str
    operands: list[str]
    attrs: str
    root: bool = False
    operand_text: str = ""

    @cached_property
    def arrays(self) -> list[Array]:
        return parse_arrays(self.type_text)

    @cached_property
    def called(self) -> list[str]:
        names = _CALLED.findall(self.attrs)
        for group in _CALLED_LIST.findall(self.attrs):
            names += re.findall(r"%([\w.\-]+)", group)
        return names

    def attr(self, key: str) -> str | None:
        m = re.search(rf"\b{re.escape(key)}=(\{{[^}}]*\}}|\"[^\"]*\"|[^,\s]+)", self.attrs)
        return m.group(1) if m else None

    @cached_property
    def op_name(self) -> str:
        m = re.search(r'op_name="((?:[^"\\]|\\.)*)"', self.attrs)
        return m.group(1) if m else ""

    @cached_property
    def frame_id(self) -> int:
        m = re.search(r"stack_frame_id=(\d+)", self.attrs)
        return int(m.group(1)) if m else 0

    @cached_property
    def trip_count(self) -> int | None:
        m = re.search(r'"known_trip_count":\{"n":"(\d+)"', self.attrs)
        return int(m.group(1)) if m else None


_INSTR = re.compile(r"\s+(ROOT\s+)?%?([\w.\-]+)\s*=\s*")


def _parse_instr(line: str) -> Instr | None:
    m = _INSTR.match(line)
    if not m:
        return None
    i = m.end()
    if line[i] == "(":
        j = _balanced(line, i)
    else:
        j = line.index(" ", i)
    type_text = line[i:j]
    rest = line[j:].lstrip()
    k = rest.index("(")
    opcode = rest[:k].strip()
    end = _balanced(rest, k)
    operands = re.findall(r"%([\w.\-]+)", rest[k:end])
    return Instr(m.group(2), type_text, opcode, operands, rest[end:].lstrip(", "), bool(m.group(1)),
                 rest[k + 1:end - 1].strip())


class Module:
    """An optimized HLO module: its computations (name -> instructions), entry and frames."""

    def __init__(self, text: str):
        self.computations: dict[str, list[Instr]] = {}
        self.entry = ""
        current = None
        for line in text.splitlines():
            if not line:
                continue
            if line[0] in "%E" and line.rstrip().endswith("{"):
                head = line[6:] if line.startswith("ENTRY") else line
                current = re.match(r"\s*%?([\w.\-]+)", head).group(1)
                self.computations[current] = []
                if line.startswith("ENTRY"):
                    self.entry = current
            elif line.startswith("}"):
                current = None
            elif current is not None:
                instr = _parse_instr(line)
                if instr is not None:
                    self.computations[current].append(instr)
        self.by_name = {c: {i.name: i for i in instrs} for c, instrs in self.computations.items()}
        self.frames = Frames(text)
        self._flops: dict[str, float] = {}
        self._opcodes: dict[str, frozenset] = {}

    def async_start(self, comp: str, instr: Instr) -> Instr:
        """The `*-start` op an async `*-update`/`*-done` belongs to (through its first operand); else `instr`."""
        table, seen = self.by_name[comp], instr
        while seen.opcode.endswith(("-done", "-update")) and seen.operands and seen.operands[0] in table:
            seen = table[seen.operands[0]]
        return seen if seen.opcode.endswith("-start") else instr

    def trip_count(self, instr: Instr) -> int | None:
        """A while loop's trip count: the compiler's `known_trip_count`, else read from a condition
        `counter < N` with a constant N (a `lax.scan` or `fori_loop` from 0 by 1); None when neither."""
        if instr.trip_count is not None:
            return instr.trip_count
        cond = instr.attr("condition")
        body = self.computations.get(cond.lstrip("%"), []) if cond else []
        root = next((i for i in body if i.root), None)
        if root is None or root.opcode != "compare" or "direction=LT" not in root.attrs:
            return None
        table = self.by_name[cond.lstrip("%")]
        bound = table.get(root.operands[1]) if len(root.operands) == 2 else None
        if bound is not None and bound.opcode == "constant" and bound.operand_text.lstrip("-").isdigit():
            return int(bound.operand_text)
        return None

    def operand_arrays(self, comp: str, instr: Instr) -> list[list[Array]]:
        table = self.by_name[comp]
        return [table[o].arrays if o in table else [] for o in instr.operands]

    # ------------------------------------------------------------------------------------------ FLOPs
    def computation_flops(self, comp: str) -> float:
        if comp not in self._flops:
            self._flops[comp] = 0.0  # recursion guard
            self._flops[comp] = sum(self.instr_flops(comp, i) for i in self.computations.get(comp, []))
        return self._flops[comp]

    def instr_flops(self, comp: str, instr: Instr) -> float:
        op = instr.opcode
        out = sum(a.elements for a in instr.arrays)
        if op == "dot":
            lhs = self.operand_arrays(comp, instr)[0]
            dims = [int(d) for d in re.findall(r"\d+", instr.attr("lhs_contracting_dims") or "")]
            return 2.0 * out * math.prod(lhs[0].dims[d] for d in dims) if lhs else 0.0
        if op == "convolution":
            return conv_flops(instr, self.operand_arrays(comp, instr))
        if op == "while":
            trips = self.trip_count(instr) or 1
            return trips * sum(self.computation_flops(c) for c in instr.called)
        if op == "conditional":
            return max((self.computation_flops(c) for c in instr.called), default=0.0)
        if op in ELEMENTWISE:
            return float(out)
        if op in ("reduce", "reduce-window", "sort", "scatter", "select-and-scatter"):
            ins = self.operand_arrays(comp, instr)
            first = ins[0][0] if ins and ins[0] else None
            if first is None:
                return 0.0
            if op == "reduce":
                return float(first.elements * max(len(instr.operands) // 2, 1))
            if op == "reduce-window":
                size = re.search(r"size=([\dx]+)", instr.attr("window") or "")
                return float(out * math.prod(int(x) for x in size.group(1).split("x"))) if size else float(out)
            if op == "sort":
                dim = int(re.findall(r"\d+", instr.attr("dimensions") or "0")[0])
                n = first.dims[dim] if first.dims else 1
                return float(first.elements * max(math.ceil(math.log2(max(n, 2))), 1))
            if op == "scatter":
                upd = ins[-1][0] if ins[-1] else first
                return float(upd.elements)
            return float(first.elements)
        if op == "custom-call" and not instr.called:
            return 0.0
        return sum(self.computation_flops(c) for c in instr.called if op not in ("sort", "reduce", "map"))

    def opcodes(self, comp: str) -> frozenset:
        """Every opcode in a computation and the computations it calls."""
        if comp not in self._opcodes:
            self._opcodes[comp] = frozenset()
            ops = set()
            for i in self.computations.get(comp, []):
                ops.add(i.opcode)
                if i.opcode not in ("sort", "reduce", "reduce-window", "scatter", "map", "select-and-scatter",
                                    "all-reduce", "all-reduce-start", "reduce-scatter"):
                    for c in i.called:
                        ops |= self.opcodes(c)
            self._opcodes[comp] = frozenset(ops)
        return self._opcodes[comp]

    # ------------------------------------------------------------------------------------------ bytes
    def instr_bytes(self, comp: str, instr: Instr) -> float:
        """Device-memory traffic of one top-level op (see the module docstring)."""
        op = instr.opcode
        if op in FREE or op in ("while", "call", "conditional"):
            return 0.0
        hbm = lambda arrays: sum(a.nbytes for a in arrays)   # noqa: E731
        if op in ("copy-start", "copy-done"):
            moved = self.async_start(comp, instr).arrays     # (destination, source, context)
            if len(moved) >= 2 and moved[0].memory_space != moved[1].memory_space:
                return 0.0    # a prefetch into (or eviction from) on-chip memory: counted at the consumer
        if op.endswith("-done"):
            return hbm(instr.arrays)
        ins = self.operand_arrays(comp, instr)
        if op.endswith("-start"):
            return sum(hbm(a) for a in ins)
        if op.endswith("-update"):      # an async op's operands given after its start (SparseCore offloads)
            return sum(hbm(a) for a in ins[1:])
        if op == "fusion" and instr.called:
            return self._fusion_bytes(instr, ins, hbm)
        unique = {name: arrays for name, arrays in zip(instr.operands, ins)}   # x·x reads x once
        return sum(hbm(a) for a in unique.values()) + hbm(instr.arrays)

    def _fusion_bytes(self, instr: Instr, ins: list[list[Array]], hbm) -> float:
        body = self.computations.get(instr.called[0], [])
        index = {i.name: int(i.operand_text or 0) for i in body if i.opcode == "parameter"}
        users: dict[str, list[Instr]] = {}
        for i in body:
            for o in i.operands:
                users.setdefault(o, []).append(i)
        root = next((i for i in body if i.root), body[-1] if body else None)
        table = self.by_name[instr.called[0]]
        outs = [root] if root is not None and root.opcode != "tuple" else [
            table[o] for o in (root.operands if root else []) if o in table]
        in_place = {}
        for o in outs:
            if o.opcode == "dynamic-update-slice" and o.operands and o.operands[0] in index:
                upd = table.get(o.operands[1])
                in_place[o.operands[0]] = upd.arrays if upd is not None else []
        total = 0.0
        for name, n in index.items():
            if n >= len(ins):
                continue
            use = users.get(name, [])
            if name in in_place:
                continue  # updated in place: the update is counted with the output
            if use and all(u.opcode in ("slice", "dynamic-slice", "gather") and u.operands[0] == name for u in use):
                total += min(sum(hbm(u.arrays) for u in use), hbm(ins[n]))   # overlapping slices: read once
            else:
                total += hbm(ins[n])
        result = instr.arrays
        for k, o in enumerate(outs):
            arr = result[k] if k < len(result) else None
            if arr is None:
                continue
            if o.opcode == "dynamic-update-slice" and o.operands and o.operands[0] in in_place:
                total += 2 * hbm(in_place[o.operands[0]])     # read-modify-write of the update's extent
            else:
                total += arr.nbytes
        return total


def conv_flops(instr: Instr, operands: list[list[Array]]) -> float:
    """2 · output (batch × features) · input features per group · valid (output, tap) pairs per spatial dim."""
    if len(operands) < 2 or not operands[0] or not operands[1] or not instr.arrays:
        return 0.0
    lhs, rhs, out = operands[0][0], operands[1][0], instr.arrays[0]
    labels = instr.attr("dim_labels") or ""
    m = re.match(r"(\w+)_(\w+)->(\w+)", labels)
    if not m:
        return 2.0 * out.elements * rhs.elements / max(rhs.dims[-1], 1)
    lhs_l, rhs_l, out_l = m.groups()
    spatial = [c for c in out_l if c not in "bf"]
    window = instr.attr("window") or ""
    fields = dict(re.findall(r"(\w+)=([\w\-]+)", window.strip("{}")))

    def per_dim(key, default):
        vals = fields.get(key)
        return [default] * len(spatial) if vals is None else vals.split("x")
    size = [int(v) for v in per_dim("size", 1)]
    stride = [int(v) for v in per_dim("stride", 1)]
    pad = [tuple(int(p) for p in v.split("_")) if isinstance(v, str) else (0, 0) for v in per_dim("pad", "0_0")]
    lhs_dil = [int(v) for v in per_dim("lhs_dilate", 1)]
    rhs_dil = [int(v) for v in per_dim("rhs_dilate", 1)]
    taps = 1
    for d, c in enumerate(spatial):
        n_in, n_out = lhs.dims[lhs_l.index(c)], out.dims[out_l.index(c)]
        k_size = rhs.dims[rhs_l.index(c)] if c in rhs_l else size[d]
        span = (n_in - 1) * lhs_dil[d]
        valid = 0
        for k in range(k_size):
            pos = [o * stride[d] + k * rhs_dil[d] - pad[d][0] for o in range(n_out)]
            valid += sum(1 for p in pos if 0 <= p <= span and p % lhs_dil[d] == 0)
        taps *= valid
    batch_feat = out.dims[out_l.index("b")] * out.dims[out_l.index("f")]
    return 2.0 * batch_feat * rhs.dims[rhs_l.index("i")] * taps


def parse_module(text: str) -> Module:
    return Module(text)
