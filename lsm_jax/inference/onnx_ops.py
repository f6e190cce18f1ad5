"""ONNX lowerings of JAX primitives on real (float, integer, bool) tensors.

Each rule is `rule(g, ins, in_avals, out_avals, **params) -> [outputs]`: `g` an
`lsm_jax.inference.onnx_graph.Graph`, `ins` its values (tensor names or NumPy constants), the avals
JAX's abstract values (shape, dtype). Shapes are static, so reshapes and broadcasts use constant
shapes. Patterns that a rule supports only in part are checked and refused with an `ExportError`.
"""

from __future__ import annotations

import numpy as np

from lsm_jax.inference.onnx_graph import ExportError, Graph

INT64_MIN = np.iinfo(np.int64).min

# name -> ONNX op of the same arity and broadcasting (jaxpr operands already have equal shapes)
ELEMENTWISE = {
    'add': 'Add', 'sub': 'Sub', 'mul': 'Mul', 'div': 'Div', 'max': 'Max', 'min': 'Min', 'pow': 'Pow',
    'neg': 'Neg', 'exp': 'Exp', 'log': 'Log', 'sqrt': 'Sqrt', 'tanh': 'Tanh', 'logistic': 'Sigmoid',
    'erf': 'Erf', 'abs': 'Abs', 'sign': 'Sign', 'floor': 'Floor', 'ceil': 'Ceil', 'sin': 'Sin',
    'cos': 'Cos', 'eq': 'Equal', 'lt': 'Less', 'le': 'LessOrEqual', 'gt': 'Greater',
    'ge': 'GreaterOrEqual',
}
LOGICAL = {'and': ('And', 'BitwiseAnd'), 'or': ('Or', 'BitwiseOr'), 'xor': ('Xor', 'BitwiseXor'),
           'not': ('Not', 'BitwiseNot')}
ALIASES = ('stop_gradient', 'copy', 'copy_p', 'optimization_barrier', 'reduce_precision')


def _elementwise(op_type):
    def rule(g: Graph, ins, ia, oa, **_):
        return [g.op(op_type, ins)]
    return rule


def _logical(ops):
    def rule(g, ins, ia, oa, **_):
        return [g.op(ops[0] if ia[0].dtype == np.bool_ else ops[1], ins)]
    return rule


def _ne(g, ins, ia, oa, **_):
    return [g.op('Not', [g.op('Equal', ins)])]


def _is_finite(g, ins, ia, oa, **_):
    return [g.op('Not', [g.op('Or', [g.op('IsNaN', ins), g.op('IsInf', ins)])])]


def _square(g, ins, ia, oa, **_):
    return [g.op('Mul', [ins[0], ins[0]])]


def _rsqrt(g, ins, ia, oa, **_):
    return [g.op('Reciprocal', [g.op('Sqrt', ins)])]


def _integer_pow(g, ins, ia, oa, *, y, **_):
    base, n, result = ins[0], abs(int(y)), None
    while n:
        if n & 1:
            result = base if result is None else g.op('Mul', [result, base])
        n >>= 1
        if n:
            base = g.op('Mul', [base, base])
    if result is None:
        return [g.expand(np.ones((), oa[0].dtype), oa[0].shape)]
    return [g.op('Reciprocal', [result]) if y < 0 else result]


def _rem(g, ins, ia, oa, **_):
    return [g.op('Mod', ins, fmod=1)]   # C-style remainder: the sign of the dividend, as lax.rem


def _clamp(g, ins, ia, oa, **_):
    lo, x, hi = ins
    return [g.op('Min', [g.op('Max', [x, lo]), hi])]


def _select_n(g, ins, ia, oa, **_):
    pred, *cases = ins
    if ia[0].dtype == np.bool_:
        if len(cases) != 2:
            raise ExportError("select_n with a boolean predicate and more than two cases")
        return [g.op('Where', [pred, cases[1], cases[0]])]
    out = cases[0]
    for i, case in enumerate(cases[1:], 1):
        out = g.op('Where', [g.op('Equal', [pred, np.asarray(i, ia[0].dtype)]), case, out])
    return [out]


def _convert(g, ins, ia, oa, *, new_dtype, **_):
    if np.dtype(new_dtype) == ia[0].dtype:
        return [ins[0]]
    return [g.cast(ins[0], new_dtype)]


def _reshape(g, ins, ia, oa, dimensions=None, **_):
    if dimensions is not None:
        raise ExportError("reshape with `dimensions` (a transposing reshape)")
    return [g.reshape(ins[0], oa[0].shape)]


def _same_as_reshape(g, ins, ia, oa, **_):
    return [g.reshape(ins[0], oa[0].shape)]


def _broadcast_in_dim(g, ins, ia, oa, *, shape, broadcast_dimensions, **_):
    inter = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        inter[dst] = ia[0].shape[src]
    x = g.reshape(ins[0], inter) if tuple(inter) != tuple(ia[0].shape) else ins[0]
    return [x if tuple(inter) == tuple(shape) else g.expand(x, shape)]


def _transpose(g, ins, ia, oa, *, permutation, **_):
    return [g.transpose(ins[0], permutation)]


def _iota(g, ins, ia, oa, *, dtype, shape, dimension, **_):
    n = shape[dimension]
    r = g.op('Range', [np.asarray(0, np.int64), np.asarray(n, np.int64), np.asarray(1, np.int64)])
    inter = [1] * len(shape)
    inter[dimension] = n
    return [g.cast(g.expand(g.reshape(r, inter), shape), dtype)]


def _concatenate(g, ins, ia, oa, *, dimension, **_):
    return [g.op('Concat', ins, axis=int(dimension))]


def _split(g, ins, ia, oa, *, sizes, axis, **_):
    outs = g.op('Split', [ins[0], g.i64(sizes)], n_out=len(sizes), axis=int(axis))
    return outs if len(sizes) > 1 else [outs]


def _slice(g, ins, ia, oa, *, start_indices, limit_indices, strides=None, **_):
    axes = [a for a, (s, e, n) in enumerate(zip(start_indices, limit_indices, ia[0].shape)) if (s, e) != (0, n)
            or (strides and strides[a] != 1)]
    steps = [strides[a] for a in axes] if strides else None
    return [g.slice(ins[0], [start_indices[a] for a in axes], [limit_indices[a] for a in axes], axes, steps)]


def _rev(g, ins, ia, oa, *, dimensions, **_):
    dims = list(dimensions)
    return [g.slice(ins[0], [-1] * len(dims), [INT64_MIN] * len(dims), dims, [-1] * len(dims))]


def _pad(g, ins, ia, oa, *, padding_config, **_):
    x, value = ins
    shape = list(ia[0].shape)
    for d, (_, _, interior) in enumerate(padding_config):
        if interior and shape[d] > 1:   # n entries, `interior` values between each pair
            n, inner = shape[d], shape[:d] + [shape[d], 1] + shape[d + 1:]
            after = [0] * len(inner)
            after[d + 1] = int(interior)
            x = g.op('Pad', [g.reshape(x, inner), g.i64([0] * len(inner) + after), value])
            x = g.reshape(x, shape[:d] + [n * (1 + interior)] + shape[d + 1:])
            shape[d] = n + (n - 1) * interior
            x = g.slice(x, [0], [shape[d]], [d])
    lo = [max(int(a), 0) for a, _, _ in padding_config]
    hi = [max(int(b), 0) for _, b, _ in padding_config]
    if any(lo + hi):
        x = g.op('Pad', [x, g.i64(lo + hi), value], mode='constant')
    cut = [(d, -min(int(a), 0), -min(int(b), 0)) for d, (a, b, _) in enumerate(padding_config)]
    cut = [(d, a, b) for d, a, b in cut if a or b]
    if cut:   # negative padding removes entries
        shape = [n + lo[d] + hi[d] for d, n in enumerate(shape)]
        x = g.slice(x, [a for _, a, _ in cut], [shape[d] - b for d, _, b in cut], [d for d, _, _ in cut])
    return [x]


def _reduce(op_type):
    def rule(g, ins, ia, oa, *, axes, **_):
        x = ins[0]
        if ia[0].dtype == np.bool_:   # reduce_or / reduce_and
            x = g.cast(x, np.int32)
        out = g.op(op_type, [x, g.i64(axes)], keepdims=0)
        return [g.cast(out, np.bool_) if ia[0].dtype == np.bool_ else out]
    return rule


def _arg(op_type):
    def rule(g, ins, ia, oa, *, axes, index_dtype, **_):
        if len(axes) != 1:
            raise ExportError(f"{op_type} over several axes")
        return [g.cast(g.op(op_type, ins, axis=int(axes[0]), keepdims=0, select_last_index=0), index_dtype)]
    return rule


def _cumsum(g, ins, ia, oa, *, axis, reverse, **_):
    return [g.op('CumSum', [ins[0], np.asarray(axis, np.int64)], reverse=int(bool(reverse)))]


def _dot_general(g, ins, ia, oa, *, dimension_numbers, **_):
    """As a MatMul: lhs to (batch..., M, K), rhs to (batch..., K, N), then the output's shape."""
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = ins
    ls, rs = ia[0].shape, ia[1].shape
    lf = [d for d in range(len(ls)) if d not in lc and d not in lb]
    rf = [d for d in range(len(rs)) if d not in rc and d not in rb]
    k = int(np.prod([ls[d] for d in lc], dtype=np.int64))
    n = int(np.prod([rs[d] for d in rf], dtype=np.int64))
    batch = [ls[d] for d in lb]
    if not lb:   # lhs keeps its free axes: (free..., K) @ (K, N)
        lhs = g.reshape(g.transpose(lhs, lf + list(lc)), [ls[d] for d in lf] + [k])
    else:
        m = int(np.prod([ls[d] for d in lf], dtype=np.int64))
        lhs = g.reshape(g.transpose(lhs, list(lb) + lf + list(lc)), batch + [m, k])
    rhs = g.reshape(g.transpose(rhs, list(rb) + list(rc) + rf), batch + [k, n])
    return [g.reshape(g.op('MatMul', [lhs, rhs]), oa[0].shape)]


def _conv(g, ins, ia, oa, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
          feature_group_count, batch_group_count, **_):
    if any(d != 1 for d in lhs_dilation) or batch_group_count != 1:
        raise ExportError("conv_general_dilated with lhs_dilation or batch_group_count (a transposed conv)")
    if any(int(p) < 0 for pair in padding for p in pair):
        raise ExportError("conv_general_dilated with negative padding")
    dn = dimension_numbers
    x = g.transpose(ins[0], dn.lhs_spec)          # NC(spatial)
    w = g.transpose(ins[1], dn.rhs_spec)          # OI(spatial)
    kernel = [ia[1].shape[d] for d in dn.rhs_spec[2:]]
    pads = [int(lo) for lo, _ in padding] + [int(hi) for _, hi in padding]
    y = g.op('Conv', [x, w], kernel_shape=kernel, strides=[int(s) for s in window_strides], pads=pads,
             dilations=[int(d) for d in rhs_dilation], group=int(feature_group_count))
    return [g.transpose(y, np.argsort(dn.out_spec))]


def _sort(g, ins, ia, oa, *, dimension, is_stable, num_keys, **_):
    """A sort by one integer key (argsort: the key and an iota): TopK (ascending) of the unique int64
    key·n + position, which orders like a stable sort; every operand is gathered by its indices."""
    if num_keys != 1 or not (np.issubdtype(ia[0].dtype, np.integer) or ia[0].dtype == np.bool_):
        raise ExportError(f"sort by {num_keys} keys of {ia[0].dtype} (only one integer or bool key)")
    shape, n = ia[0].shape, ia[0].shape[dimension]
    pos = [1] * len(shape)
    pos[dimension] = n
    position = np.arange(n, dtype=np.int64).reshape(pos)
    key = g.op('Add', [g.op('Mul', [g.cast(ins[0], np.int64), np.asarray(n, np.int64)]), position])
    _, index = g.op('TopK', [key, g.i64([n])], n_out=2, axis=int(dimension), largest=0, sorted=1)
    return [g.op('GatherElements', [x, index], axis=int(dimension)) for x in ins]


def _gather(g, ins, ia, oa, *, dimension_numbers, slice_sizes, mode, fill_value=None, **_):
    """The one gather pattern jnp.take / take_along_axis give at batch 1: whole slices along one
    operand axis (`x[..., idx, ...]`), indices with a trailing index vector of length 1. Indices must
    be in range (ONNX Gather has no fill mode; the model's are permutations), or clipped in CLIP mode."""
    dn = dimension_numbers
    operand, idx = ins
    shape = ia[0].shape
    axis = dn.start_index_map[0] if len(dn.start_index_map) == 1 else None
    if (axis is None or tuple(dn.collapsed_slice_dims) != (axis,) or dn.operand_batching_dims
            or ia[1].shape[-1:] != (1,) or slice_sizes[axis] != 1
            or any(slice_sizes[d] != shape[d] for d in range(len(shape)) if d != axis)):
        raise ExportError(f"gather pattern {dn} with slice sizes {slice_sizes} (only whole slices along one axis)")
    idx_shape = ia[1].shape[:-1]
    idx = g.reshape(idx, idx_shape)
    if 'CLIP' in str(mode):
        idx = g.op('Clip', [idx, np.asarray(0, ia[1].dtype), np.asarray(shape[axis] - 1, ia[1].dtype)])
    out = g.op('Gather', [operand, idx], axis=int(axis))
    # ONNX order: operand axes before `axis`, the index axes, operand axes after; JAX puts the operand
    # axes at offset_dims and the index axes, in order, in the other positions.
    onnx_axes = [('o', d) for d in range(axis)] + [('i', j) for j in range(len(idx_shape))] + \
                [('o', d) for d in range(axis + 1, len(shape))]
    offset, rest = list(dn.offset_dims), iter(('i', j) for j in range(len(idx_shape)))
    operand_axes = iter(('o', d) for d in range(len(shape)) if d != axis)
    jax_axes = [next(operand_axes) if p in offset else next(rest) for p in range(len(oa[0].shape))]
    return [g.transpose(out, [onnx_axes.index(a) for a in jax_axes])]


def _dynamic_slice(g, ins, ia, oa, *, slice_sizes, **_):
    """Starts clamped into [0, n - size], as lax.dynamic_slice does."""
    x, *starts = ins
    shape = ia[0].shape
    start = g.op('Concat', [g.reshape(g.cast(s, np.int64), [1]) for s in starts], axis=0)
    start = g.op('Min', [g.op('Max', [start, g.i64([0] * len(shape))]),
                         g.i64([n - s for n, s in zip(shape, slice_sizes)])])
    end = g.op('Add', [start, g.i64(slice_sizes)])
    return [g.op('Slice', [x, start, end, g.i64(range(len(shape)))])]


RULES = {name: _elementwise(op) for name, op in ELEMENTWISE.items()}
RULES.update({name: _logical(ops) for name, ops in LOGICAL.items()})
RULES.update({
    'ne': _ne, 'is_finite': _is_finite, 'square': _square, 'rsqrt': _rsqrt, 'integer_pow': _integer_pow,
    'rem': _rem, 'clamp': _clamp, 'select_n': _select_n, 'convert_element_type': _convert,
    'reshape': _reshape, 'squeeze': _same_as_reshape, 'expand_dims': _same_as_reshape,
    'broadcast_in_dim': _broadcast_in_dim, 'transpose': _transpose, 'iota': _iota,
    'concatenate': _concatenate, 'split': _split, 'slice': _slice, 'rev': _rev, 'pad': _pad,
    'reduce_sum': _reduce('ReduceSum'), 'reduce_max': _reduce('ReduceMax'), 'reduce_min': _reduce('ReduceMin'),
    'reduce_prod': _reduce('ReduceProd'), 'reduce_or': _reduce('ReduceMax'), 'reduce_and': _reduce('ReduceMin'),
    'argmax': _arg('ArgMax'), 'argmin': _arg('ArgMin'), 'cumsum': _cumsum, 'dot_general': _dot_general,
    'conv_general_dilated': _conv, 'sort': _sort, 'gather': _gather, 'dynamic_slice': _dynamic_slice,
})

# Rules that apply unchanged to the real and imaginary parts of a complex operand (the lowering
# runs them once per part; indices and predicates are shared).
PER_PART = ('add', 'sub', 'neg', 'reshape', 'squeeze', 'expand_dims', 'broadcast_in_dim', 'transpose',
            'concatenate', 'split', 'slice', 'rev', 'pad', 'select_n', 'gather', 'dynamic_slice', 'reduce_sum',
            'cumsum')
