"""A small ONNX graph builder for the jaxpr lowering (`lsm_jax.inference.onnx_lowering`).

Values are either ONNX tensor names (str) or NumPy arrays (constants known at export time: the baked
parameters and whatever folds from them). A constant becomes an initializer only when an emitted
node reads it, once per distinct content. The helpers (`reshape`, `transpose`, `cast`, ...) compute
on constants with NumPy and emit a node only for a runtime tensor.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18   # ReduceMax/ReduceMin axes as an input need 18; onnxruntime ≥ 1.14 runs it

ONNX_DTYPES = {
    np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16, np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int16): TensorProto.INT16, np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64, np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.uint16): TensorProto.UINT16, np.dtype(np.uint32): TensorProto.UINT32,
    np.dtype(np.uint64): TensorProto.UINT64, np.dtype(np.bool_): TensorProto.BOOL,
}

class ExportError(ValueError):
    """A jaxpr that cannot be lowered to ONNX; the message is one line."""


def onnx_dtype(dtype) -> int:
    dtype = np.dtype(dtype)
    if dtype not in ONNX_DTYPES:
        raise ExportError(f"no ONNX tensor type for dtype {dtype}")
    return ONNX_DTYPES[dtype]


def is_const(v) -> bool:
    return isinstance(v, np.ndarray)


class Graph:
    """Nodes and initializers of one ONNX graph under construction."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._consts: dict[tuple, str] = {}
        self._count = 0

    def fresh(self, hint: str = 't') -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value) -> str:
        """The name of an initializer holding `value` (one per distinct dtype, shape and content)."""
        a = np.ascontiguousarray(value)
        onnx_dtype(a.dtype)
        key = (a.dtype.str, a.shape, hashlib.sha1(a.tobytes()).hexdigest())
        if key not in self._consts:
            name = self.fresh('c')
            self.initializers.append(numpy_helper.from_array(a, name))
            self._consts[key] = name
        return self._consts[key]

    def name(self, v) -> str:
        return self.const(v) if is_const(v) else v

    def op(self, op_type: str, inputs, n_out: int = 1, **attrs):
        """Emit one node; its output name (or list of names when n_out != 1)."""
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        ins = ['' if v is None else self.name(v) for v in inputs]
        self.nodes.append(helper.make_node(op_type, ins, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    # Shape helpers: NumPy on constants, a node otherwise.

    def i64(self, values) -> str:
        return self.const(np.asarray(values, np.int64).reshape(-1))

    def reshape(self, v, shape):
        shape = tuple(int(s) for s in shape)
        if is_const(v):
            return np.reshape(v, shape)
        return self.op('Reshape', [v, self.i64(shape)])

    def transpose(self, v, perm):
        perm = [int(p) for p in perm]
        if perm == sorted(perm):
            return v
        if is_const(v):
            return np.ascontiguousarray(np.transpose(v, perm))
        return self.op('Transpose', [v], perm=perm)

    def cast(self, v, dtype):
        dtype = np.dtype(dtype)
        if is_const(v):
            return np.asarray(v).astype(dtype)
        return self.op('Cast', [v], to=onnx_dtype(dtype))

    def expand(self, v, shape):
        if is_const(v) and np.shape(v) == tuple(shape):
            return v
        return self.op('Expand', [v, self.i64(shape)])

    def zeros(self, shape, dtype=np.float32):
        n = int(np.prod(shape, dtype=np.int64))
        if n <= 4096:
            return np.zeros(shape, dtype)
        return self.op('Expand', [np.zeros((), dtype), self.i64(shape)])

    def slice(self, v, starts, ends, axes, steps=None):
        if not axes:
            return v
        ins = [v, self.i64(starts), self.i64(ends), self.i64(axes)]
        if steps is not None:
            ins.append(self.i64(steps))
        return self.op('Slice', ins)

    def model(self, inputs, outputs, *, name: str, doc: str = '', metadata: dict | None = None,
              opset: int = OPSET) -> onnx.ModelProto:
        """The model: `inputs`/`outputs` are (name, dtype, shape) triples."""
        vi = lambda n, d, s: helper.make_tensor_value_info(n, onnx_dtype(d), list(s))  # noqa: E731
        graph = helper.make_graph(self.nodes, name, [vi(*i) for i in inputs], [vi(*o) for o in outputs],
                                  initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)],
                                  producer_name='lsm-jax', doc_string=doc)
        model.ir_version = min(model.ir_version, 9)   # readable by onnxruntime releases since 1.16
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        return model
