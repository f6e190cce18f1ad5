"""Lower a closed jaxpr to an ONNX model, primitive by primitive.

    closed = jax.make_jaxpr(lambda x: forward(params, x))(x)     # parameters become its constants
    model, info = jaxpr_to_onnx(closed, input_names=['lr'], output_names=['sr'], name='lsm')

- Calls (`jit`, `custom_jvp_call`, `custom_vjp_call`, `closed_call`, `checkpoint`) are inlined: their
  primal jaxpr is lowered in place (a custom derivative is irrelevant to a forward graph).
- Constant folding: an equation whose operands are all known at export time (the baked parameters,
  literals and what follows from them) is evaluated by JAX, on the CPU at full float32 matmul
  precision, when its result has at most `fold_limit` elements; the graph then holds the result.
  Larger ones (a shift mask of a big image) are emitted as nodes, which onnxruntime folds on load.
- Complex values (ONNX has no complex tensors) are carried as (real, imaginary) pairs of float
  tensors: `complex`/`real`/`imag` build and take them apart, `mul`, `div`, `dot_general` and
  `convert_element_type` have pair rules, and the structural and additive rules
  (`onnx_ops.PER_PART`) run once per part.
- Every other primitive goes through `lsm_jax.inference.onnx_ops.RULES`. A primitive without a rule
  is reported, with all the others missing, in one `ExportError` line.
"""

from __future__ import annotations

from collections import Counter

import jax
import numpy as np
from jax.extend.core import Literal
from onnx import helper

from lsm_jax.inference.onnx_graph import OPSET, ExportError, Graph, is_const
from lsm_jax.inference.onnx_ops import ALIASES, PER_PART, RULES

FOLD_LIMIT = 1 << 16   # elements: larger constant results are computed by the graph
INLINE = ('jit', 'pjit', 'closed_call', 'core_call', 'custom_jvp_call', 'custom_vjp_call',
          'custom_vjp_call_jaxpr', 'checkpoint', 'remat', 'remat2')
COMPLEX_ONLY = ('complex', 'real', 'imag', 'conj')


def _sub_jaxpr(eqn):
    for key in ('jaxpr', 'call_jaxpr', 'fun_jaxpr'):
        sub = eqn.params.get(key)
        if sub is not None:
            return (sub.jaxpr, sub.consts) if hasattr(sub, 'consts') else (sub, ())
    raise ExportError(f"{eqn.primitive.name}: no inner jaxpr to inline")


def _is_complex(aval) -> bool:
    return np.issubdtype(getattr(aval, 'dtype', np.float32), np.complexfloating)


def _part_aval(aval):
    return aval.update(dtype=np.finfo(aval.dtype).dtype) if _is_complex(aval) else aval


def primitive_set(closed) -> list[str]:
    """The primitive names a closed jaxpr binds, inner jaxprs included; complex uses as `name[c]`."""
    found = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            complex_ = any(_is_complex(v.aval) for v in (*eqn.invars, *eqn.outvars))
            found.add(eqn.primitive.name + ('[c]' if complex_ else ''))
            for value in eqn.params.values():
                for sub in value if isinstance(value, (list, tuple)) else (value,):
                    if hasattr(sub, 'eqns'):
                        walk(sub)
                    elif hasattr(sub, 'jaxpr') and hasattr(sub.jaxpr, 'eqns'):
                        walk(sub.jaxpr)

    walk(closed.jaxpr)
    return sorted(found)


class _Lowering:
    def __init__(self, graph: Graph, fold_limit: int):
        self.g = graph
        self.fold_limit = fold_limit
        self.missing: dict[str, str] = {}
        self.folded = 0
        self.cpu = jax.devices('cpu')[0]

    def run(self, jaxpr, consts, args):
        env = {}

        def read(v):
            if isinstance(v, Literal):
                return np.asarray(v.val, dtype=v.aval.dtype)
            return env[v]

        for var, value in zip(jaxpr.constvars, consts):
            env[var] = np.asarray(value)
        for var, value in zip(jaxpr.invars, args):
            env[var] = value
        for eqn in jaxpr.eqns:
            outs = self.equation(eqn, [read(v) for v in eqn.invars])
            for var, value in zip(eqn.outvars, outs):
                env[var] = value
        return [read(v) for v in jaxpr.outvars]

    def equation(self, eqn, ins):
        name = eqn.primitive.name
        if name in INLINE:
            sub, consts = _sub_jaxpr(eqn)
            return self.run(sub, consts, ins)
        if name in ALIASES:
            return ins
        if name == 'cond' and is_const(ins[0]):
            # A branch fixed at export: `lax.platform_dependent` (DepthwiseConv3x3) folds its platform
            # index on this CPU, so the graph gets the CPU form (nine multiply-adds, as before it existed).
            branch = eqn.params['branches'][int(np.asarray(ins[0]))]
            return self.run(branch.jaxpr, branch.consts, ins[1:])
        size = sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.outvars)
        if all(is_const(x) for x in ins) and size <= self.fold_limit and name not in ('scan', 'while'):
            try:
                return self.fold(eqn, ins)
            except Exception:   # noqa: BLE001  a primitive JAX cannot evaluate eagerly: lower it instead
                pass
        ia, oa = [v.aval for v in eqn.invars], [v.aval for v in eqn.outvars]
        if any(_is_complex(a) for a in (*ia, *oa)):
            return self.complex_equation(name, ins, ia, oa, eqn.params)
        if name not in RULES:
            return self.missing_rule(name, oa)
        return RULES[name](self.g, ins, ia, oa, **eqn.params)

    def fold(self, eqn, ins):
        with jax.default_device(self.cpu), jax.default_matmul_precision('highest'):
            out = eqn.primitive.bind(*ins, **eqn.params)
        self.folded += 1
        return [np.asarray(o) for o in out] if eqn.primitive.multiple_results else [np.asarray(out)]

    def missing_rule(self, name, oa, what=''):
        shapes = ', '.join(f"{a.dtype}{list(a.shape)}" for a in oa)
        self.missing.setdefault(name + what, shapes)
        return [f"unsupported_{name}" for _ in oa]

    def complex_equation(self, name, ins, ia, oa, params):
        g = self.g
        ins = [(np.real(x), np.imag(x)) if is_const(x) and np.iscomplexobj(x) else x for x in ins]
        pia, poa = [_part_aval(a) for a in ia], [_part_aval(a) for a in oa]
        if name == 'complex':
            return [(ins[0], ins[1])]
        if name in ('real', 'imag'):
            return [ins[0][0 if name == 'real' else 1]]
        if name == 'conj':
            return [(ins[0][0], RULES['neg'](g, [ins[0][1]], pia, poa)[0])]
        if name == 'convert_element_type':
            x = ins[0]
            if not isinstance(x, tuple):   # real -> complex
                return [(g.cast(x, poa[0].dtype), g.zeros(oa[0].shape, poa[0].dtype))]
            if not _is_complex(oa[0]):
                raise ExportError("convert_element_type from complex to real (use real())")
            return [tuple(g.cast(p, poa[0].dtype) for p in x)]
        if name in ('mul', 'dot_general'):
            rule = RULES[name]
            (ar, ai), (br, bi) = [x if isinstance(x, tuple) else (x, g.zeros(a.shape, pa.dtype))
                                  for x, a, pa in zip(ins, ia, pia)]
            prod = lambda a, b: rule(g, [a, b], pia, poa, **params)[0]  # noqa: E731
            return [(g.op('Sub', [prod(ar, br), prod(ai, bi)]), g.op('Add', [prod(ar, bi), prod(ai, br)]))]
        if name == 'div':
            (ar, ai), (br, bi) = ins
            den = g.op('Add', [g.op('Mul', [br, br]), g.op('Mul', [bi, bi])])
            re = g.op('Add', [g.op('Mul', [ar, br]), g.op('Mul', [ai, bi])])
            im = g.op('Sub', [g.op('Mul', [ai, br]), g.op('Mul', [ar, bi])])
            return [(g.op('Div', [re, den]), g.op('Div', [im, den]))]
        if name not in PER_PART:
            return self.missing_rule(name, oa, ' on complex values')
        parts = [RULES[name](g, [x[k] if isinstance(x, tuple) else x for x in ins], pia, poa, **params)
                 for k in (0, 1)]
        return [(re, im) if _is_complex(a) else re for re, im, a in zip(*parts, oa)]


def jaxpr_to_onnx(closed, *, input_names, output_names, name: str = 'graph', doc: str = '',
                  metadata: dict | None = None, opset: int = OPSET, fold_limit: int = FOLD_LIMIT):
    """An ONNX model computing the closed jaxpr `closed`: its invars are the graph inputs (named
    `input_names`), its constants are baked in. Returns (model, info) with info = dict(nodes,
    op_types (Counter), folded (equations evaluated at export), primitives)."""
    jaxpr = closed.jaxpr
    for v in (*jaxpr.invars, *jaxpr.outvars):
        if _is_complex(v.aval):
            raise ExportError("complex graph inputs or outputs")
    g = Graph()
    low = _Lowering(g, fold_limit)
    outs = low.run(jaxpr, closed.consts, list(input_names))
    if low.missing:
        listed = '; '.join(f"'{k}' ({v})" for k, v in sorted(low.missing.items()))
        raise ExportError(f"no ONNX lowering for JAX primitive(s) {listed}")
    for value, out_name in zip(outs, output_names):
        g.nodes.append(helper.make_node('Identity', [g.name(value)], [out_name]))
    model = g.model([(n, v.aval.dtype, v.aval.shape) for n, v in zip(input_names, jaxpr.invars)],
                    [(n, v.aval.dtype, v.aval.shape) for n, v in zip(output_names, jaxpr.outvars)],
                    name=name, doc=doc, metadata=metadata, opset=opset)
    info = dict(nodes=len(g.nodes), op_types=Counter(n.op_type for n in g.nodes), folded=low.folded,
                primitives=primitive_set(closed))
    return model, info
