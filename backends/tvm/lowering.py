"""Lowering irc's IR to a Relax ``IRModule`` with ``relax.BlockBuilder``, one converter per op.

    mod, sig = lower(model)            # tvm.IRModule with one function "main", and its Signature

The Relax function ``main`` takes the model's inputs in order (an input with an initializer
becomes a constant: its default is compiled in) and returns a tuple of the outputs in order.
Symbolic dimensions (``N`` in ``f32[N,3,32,32]``) become shared ``tir.Var``s, so one compiled
module runs any batch size; unnamed unknown dimensions get a variable each.

Before anything is built, :func:`unsupported_nodes` asks every converter whether it can take
its node (``supports``); :func:`require_supported` turns the answer into one error line that
names each unsupported op with its count and first reason.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import numpy as np

from backends.base import BackendError
from backends.tvm._env import import_tvm, relax, tvm
from backends.tvm.converters import get_converter
from irlib import DType, Model, Node, TensorType, Value

__all__ = [
    "Lowering", "Signature", "TVM_DTYPES", "lower", "node_support", "require_supported",
    "runtime_inputs", "unsupported_nodes",
]

log = logging.getLogger(__name__)

#: irc element types the converters handle -> TVM dtype strings.
TVM_DTYPES: dict[DType, str] = {
    DType.FLOAT: "float32", DType.DOUBLE: "float64", DType.FLOAT16: "float16",
    DType.INT8: "int8", DType.INT16: "int16", DType.INT32: "int32", DType.INT64: "int64",
    DType.UINT8: "uint8", DType.UINT16: "uint16", DType.UINT32: "uint32", DType.UINT64: "uint64",
    DType.BOOL: "bool",
}


@dataclasses.dataclass
class Signature:
    """The compiled function's interface: names, dtypes (numpy names) and shapes (ints, or
    the symbolic dimension's name) of inputs and outputs, in order."""

    inputs: list[dict]
    outputs: list[dict]

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    def as_json(self) -> dict:
        return {"inputs": self.inputs, "outputs": self.outputs}

    @classmethod
    def from_json(cls, d: dict) -> "Signature":
        return cls(list(d["inputs"]), list(d["outputs"]))


def _describe(v: Value, dims: dict[str, int] | None = None) -> dict:
    t = v.type
    dtype = t.dtype.numpy.name if isinstance(t, TensorType) and t.dtype in TVM_DTYPES else None
    shape = None
    if isinstance(t, TensorType) and t.shape is not None:
        shape = [(dims or {}).get(d, d) if isinstance(d, str) else d if isinstance(d, int)
                 else None for d in t.shape]
    return {"name": v.name, "dtype": dtype, "shape": shape}


def runtime_inputs(model: Model) -> list[Value]:
    """The graph inputs the compiled function takes: those without an initializer (an input
    with one, as in IR version 3 models, is compiled in as its default)."""
    return [v for v in model.graph.inputs if v.const_value is None]


# -- support ----------------------------------------------------------------------------------
def node_support(node: Node) -> bool | str:
    """``True`` when a converter takes ``node``, else a one-line reason."""
    conv = get_converter(node)
    if conv is None:
        dom = "" if node.domain in ("", "ai.onnx") else f"{node.domain}::"
        return f"no TVM converter for {dom}{node.op_type}"
    for v in list(node.inputs) + list(node.outputs):
        if v is None or not v.name and v.producer() is node:
            continue
        t = v.type
        if isinstance(t, TensorType) and t.dtype not in TVM_DTYPES:
            return f"{node.op_type}: element type {t.dtype.name.lower()} is not supported"
        if t is not None and not isinstance(t, TensorType):
            return f"{node.op_type}: non-tensor value {v.name!r} ({t}) is not supported"
    return conv.accepts(node)


def unsupported_nodes(model: Model) -> dict[str, list[str]]:
    """``{op label: [reason per node]}`` for every node no converter takes (empty: all fine).
    Subgraphs (If/Loop bodies) are not looked into: their parent op has no converter."""
    bad: dict[str, list[str]] = collections.defaultdict(list)
    for node in model.graph:
        ok = node_support(node)
        if ok is not True:
            label = node.op_type if node.domain in ("", "ai.onnx") else \
                f"{node.domain}::{node.op_type}"
            bad[label].append(str(ok))
    for v in list(model.graph.inputs) + list(model.graph.outputs):
        t = v.type
        if isinstance(t, TensorType) and t.dtype not in TVM_DTYPES:
            bad[f"{'input' if v in model.graph.inputs else 'output'} {v.name}"].append(
                f"element type {t.dtype.name.lower()} is not supported")
    return dict(bad)


def require_supported(model: Model) -> None:
    """Raise :class:`BackendError` naming each unsupported op, its count and first reason."""
    bad = unsupported_nodes(model)
    if not bad:
        return
    total = sum(len(r) for r in bad.values())
    parts = [f"{op} x{len(reasons)} ({reasons[0]})" for op, reasons in
             sorted(bad.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    raise BackendError(
        f"tvm: {total} node(s) the converters cannot take: {'; '.join(parts)}; pass"
        f" fallback=onnx-frontend to hand the whole model to TVM's ONNX importer instead")


# -- lowering ---------------------------------------------------------------------------------
class Lowering:
    """The state of one lowering, handed to every converter as ``cx``.

    ``cx.arg(node, i)`` is input ``i`` as a Relax expression (``None`` when omitted),
    ``cx.const(node, i)`` its value as a numpy array when known at compile time (initializers,
    ``Constant``, ``Shape`` of static tensors), ``cx.emit(expr)`` binds an intermediate,
    ``cx.shape(expr)`` / ``cx.dims(expr)`` / ``cx.dtype(expr)`` read Relax's inferred types.
    ``cx.opset`` is the model's ai.onnx opset.
    """

    def __init__(self, model: Model, dims: dict[str, int] | None = None):
        import_tvm()
        self.bound = dict(dims or {})
        self.model = model
        self.opset = model.opset("") or 1
        self.bb = relax.BlockBuilder()
        self.exprs: dict[Value, object] = {}
        self.known: dict[Value, np.ndarray] = {}
        self._sym: dict[str, object] = {}

    # -- reading inputs ------------------------------------------------------------------
    def value(self, v: Value | None):
        """The Relax expression of ``v`` (a constant is materialized on first use)."""
        if v is None:
            return None
        e = self.exprs.get(v)
        if e is not None:
            return e
        arr = self.known_value(v)
        if arr is None:
            raise BackendError(f"tvm: value {v.name!r} is used before it is defined")
        e = relax.const(np.array(arr, order="C"), str(arr.dtype))  # 0-d stays 0-d
        self.exprs[v] = e
        return e

    def known_value(self, v: Value | None) -> np.ndarray | None:
        if v is None:
            return None
        if v in self.known:
            return self.known[v]
        if v.const_value is not None:  # an initializer (also one listed as an input)
            arr = v.const_value.numpy()
            self.known[v] = arr
            return arr
        return None

    def arg(self, node: Node, i: int):
        """Input ``i`` of ``node`` as a Relax expression, ``None`` when absent or omitted."""
        if i >= len(node.inputs) or node.inputs[i] is None:
            return None
        return self.value(node.inputs[i])

    def args(self, node: Node) -> list:
        return [self.value(v) for v in node.inputs]

    def const(self, node: Node, i: int) -> np.ndarray | None:
        """Input ``i`` of ``node`` as a numpy array when known at compile time, else ``None``."""
        if i >= len(node.inputs) or node.inputs[i] is None:
            return None
        return self.known_value(node.inputs[i])

    def require_const(self, node: Node, i: int, what: str) -> np.ndarray:
        arr = self.const(node, i)
        if arr is None:
            raise BackendError(f"tvm: {node.op_type} {node.name or ''}: {what} (input {i}) must"
                               " be known at compile time (run irc's -O1 or higher to fold it)")
        return arr

    # -- building --------------------------------------------------------------------------
    def emit(self, expr):
        """Bind ``expr`` in the current dataflow block and return the variable."""
        if isinstance(expr, relax.Var):
            return expr
        return self.bb.emit(expr)

    def ty(self, expr):
        if not isinstance(expr, (relax.Var, tvm.ir.expr.Constant)):
            expr = self.emit(expr)
        return expr.ty

    def dtype(self, expr) -> str:
        return str(self.ty(expr).dtype)

    def rank(self, expr) -> int:
        return int(self.ty(expr).ndim)

    def dims(self, expr) -> list:
        """The dimensions as TIR expressions (``IntImm`` or symbolic)."""
        t = self.ty(expr)
        if t.shape is None:
            raise BackendError("tvm: a tensor of unknown rank cannot be lowered")
        return list(t.shape.values)

    def shape(self, expr) -> list[int | None]:
        """Dimensions as ints, ``None`` where symbolic."""
        out = []
        for d in self.dims(expr):
            out.append(int(d.value) if hasattr(d, "value") and isinstance(d.value, int) else None)
        return out

    def static_shape(self, expr, node: Node | None = None) -> list[int]:
        s = self.shape(expr)
        if any(d is None for d in s):
            what = f"{node.op_type}: " if node is not None else ""
            raise BackendError(f"tvm: {what}needs a static input shape, got {s}")
        return s

    # -- the function ----------------------------------------------------------------------
    def _dim(self, d):
        from tvm import tirx as tir

        if isinstance(d, int):
            return d
        if isinstance(d, str) and d in self.bound:
            return int(self.bound[d])
        if isinstance(d, str) and d:
            if d not in self._sym:
                self._sym[d] = tir.Var(d, "int64")
            return self._sym[d]
        name = f"d{len(self._sym)}"
        self._sym[name] = tir.Var(name, "int64")
        return self._sym[name]

    def _param(self, v: Value):
        t = v.type
        if not isinstance(t, TensorType) or t.dtype not in TVM_DTYPES:
            raise BackendError(f"tvm: input {v.name!r} has type {t}, not a supported tensor")
        dtype = TVM_DTYPES[t.dtype]
        if t.shape is None:
            raise BackendError(f"tvm: input {v.name!r} has unknown rank; give it a shape")
        shape = [self._dim(d) for d in t.shape]
        return relax.Var(v.name or "input", relax.TensorType(shape, dtype))

    def lower(self):
        g = self.model.graph
        inputs = runtime_inputs(self.model)
        params = [self._param(v) for v in inputs]
        bb = self.bb
        with bb.function("main", params):
            with bb.dataflow():
                for v, p in zip(inputs, params):
                    self.exprs[v] = p
                for node in g:
                    self._convert(node)
                outs = [bb.emit_output(self.value(v)) for v in g.outputs]
            bb.emit_func_output(relax.Tuple(outs))
        return bb.get()

    def _convert(self, node: Node) -> None:
        conv = get_converter(node)
        if conv is None:
            raise BackendError(f"tvm: no converter for {node.op_type}")
        try:
            result = conv.fn(self, node)
        except BackendError:
            raise
        except Exception as e:  # TVM's type checker refusing what a converter built
            text = " ".join(str(e).split())
            if len(text) > 300:
                text = text[:300] + "..."
            label = f"{node.op_type} {node.name!r}" if node.name else node.op_type
            raise BackendError(f"tvm: cannot lower {label}: {type(e).__name__}: {text}") from e
        outs = node.outputs
        if len(outs) == 1 and not isinstance(result, (tuple, list)):
            result = [result]
        result = list(result)
        if len(result) < len(outs):
            result += [None] * (len(outs) - len(result))
        for v, r in zip(outs, result):
            if not v.name and not v.has_uses():
                continue  # an omitted optional output
            if r is None:
                if v.has_uses() or v.is_graph_output():
                    raise BackendError(
                        f"tvm: {node.op_type}: output {v.index} ({v.name}) is not supported")
                continue
            if isinstance(r, np.ndarray):
                self.known[v] = r
                continue
            self.exprs[v] = self.emit(r)


def lower(model: Model, dims: dict[str, int] | None = None):
    """``(IRModule, Signature)`` for ``model``; ``dims`` binds symbolic dimensions to sizes
    (a static module: what MetaSchedule tunes best). Raises :class:`BackendError` (one line) when a
    node is unsupported or a converter fails."""
    require_supported(model)
    cx = Lowering(model, dims)
    mod = cx.lower()
    g = model.graph
    sig = Signature([_describe(v, dims) for v in runtime_inputs(model)],
                    [_describe(v, dims) for v in g.outputs])
    log.info("tvm: lowered %d nodes to Relax", len(g))
    return mod, sig
