"""Constant folding: nodes whose inputs are all constants are computed now, at compile time.

    irc compile model.onnx --passes "infer-shapes,fold-constants{max-bytes=65536},dce"

What folds:

- a node of the default ONNX domain whose inputs are all constants (initializers that are not
  graph inputs, or ``Constant`` outputs): it is evaluated by a small registry of numpy evaluators
  for the ops PyTorch's shape arithmetic uses (exact, and cheap) or else by
  ``onnx.reference.ReferenceEvaluator`` on a one-node model;
- ``Shape`` of a value whose shape is static (or, with ``start``/``end``, whose selected dims
  are), ``Size`` of a value with a static shape, and ``Gather(Shape(x), i)`` when dim ``i`` of
  ``x`` is static even if others are not. With generic folding this turns the
  ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains of PyTorch exports into a
  ``Reshape`` by a constant shape;
- ``Constant`` nodes become initializers (``constants-to-initializers``, on by default), so that
  ``cse`` can share equal ones.

What never folds: random ops (``RandomNormal``, ``RandomUniform``, ``Multinomial``, ``Bernoulli``
and their ``*Like`` forms), ``Dropout`` (``eliminate-identity`` handles the inference form),
nodes holding subgraphs, ops of other domains, sequence/optional results, exotic element types
(bfloat16, float8, int4 ...), and any output larger than ``max-bytes`` (1 MiB by default). Ops
whose output is large by construction (``Tile``, ``Expand``, ``ConstantOfShape``, ``Range``) have
their output size computed from their constant inputs *before* evaluation, so an over-budget fold
never allocates the array.

A folded value becomes an initializer carrying the value's name. A folded value that is a graph
output cannot become an initializer (the IR keeps the model interface apart from its constants):
it becomes a ``Constant`` node that keeps the output's name.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Callable

import numpy as np

import irlib
from irlib import DType, Graph, Model, Node, Tensor, TensorType, Value
from passes.base import Pass, PassResult
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite.rewriter import PROVENANCE_REPLACED, PROVENANCE_RULE, describe_node

__all__ = ["FoldConstants", "NON_DETERMINISTIC_OPS", "EVALUATORS", "evaluate_node"]

log = logging.getLogger(__name__)

#: Ops whose result is not a function of their inputs (Dropout: in training mode): never folded,
#: never merged by ``cse``.
NON_DETERMINISTIC_OPS = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "Dropout",
})

#: Element types the evaluators handle exactly as ONNX Runtime stores them.
_FOLDABLE_DTYPES = frozenset({
    DType.FLOAT, DType.DOUBLE, DType.FLOAT16, DType.INT8, DType.INT16, DType.INT32, DType.INT64,
    DType.UINT8, DType.UINT16, DType.UINT32, DType.UINT64, DType.BOOL,
})



# -- numpy evaluators -------------------------------------------------------------------------
# Each takes (node, inputs, opset) and returns the output arrays, or None to hand the node to the
# reference evaluator (an attribute form it does not cover, an unusual dtype mix).

Evaluator = Callable[[Node, list, int], "list[np.ndarray] | None"]
EVALUATORS: dict[str, Evaluator] = {}


def _evaluator(*ops: str):
    def wrap(fn: Evaluator) -> Evaluator:
        for op in ops:
            EVALUATORS[op] = fn
        return fn
    return wrap


def _axes_of(node: Node, inputs: list, opset: int, since: int):
    """Axes from input 1 (opset >= ``since``) or from the ``axes`` attribute (older)."""
    if opset >= since:
        return None if len(inputs) < 2 or inputs[1] is None else [int(a) for a in inputs[1].ravel()]
    axes = node.attr("axes")
    return None if axes is None else list(axes)


@_evaluator("Identity")
def _identity(node, inputs, opset):
    return [inputs[0]]


@_evaluator("Unsqueeze")
def _unsqueeze(node, inputs, opset):
    axes = _axes_of(node, inputs, opset, 13)
    if axes is None:
        return None
    x = inputs[0]
    rank = x.ndim + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if len(set(axes)) != len(axes) or any(not 0 <= a < rank for a in axes):
        return None
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [x.reshape(shape)]


@_evaluator("Squeeze")
def _squeeze(node, inputs, opset):
    x = inputs[0]
    axes = _axes_of(node, inputs, opset, 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = [a + x.ndim if a < 0 else a for a in axes]
    if any(not 0 <= a < x.ndim or x.shape[a] != 1 for a in axes):
        return None
    return [x.reshape([d for i, d in enumerate(x.shape) if i not in axes])]


@_evaluator("Concat")
def _concat(node, inputs, opset):
    arrays = [a for a in inputs if a is not None]
    if not arrays or len({a.dtype for a in arrays}) != 1 or len({a.ndim for a in arrays}) != 1:
        return None
    axis = node.attr("axis")
    if axis is None or not -arrays[0].ndim <= axis < arrays[0].ndim:
        return None
    return [np.concatenate(arrays, axis=axis)]


@_evaluator("Gather")
def _gather(node, inputs, opset):
    data, idx = inputs[0], inputs[1]
    axis = node.attr("axis", 0)
    if data.ndim == 0 or not -data.ndim <= axis < data.ndim or idx.dtype.kind not in "iu":
        return None
    dim = data.shape[axis]
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        return None  # out of range: let the reference evaluator report it
    return [np.take(data, np.where(idx < 0, idx + dim, idx), axis=axis)]


@_evaluator("Reshape")
def _reshape(node, inputs, opset):
    x, shape = inputs[0], inputs[1]
    if shape.dtype != np.int64 or shape.ndim != 1:
        return None
    dims = [int(d) for d in shape]
    if not node.attr("allowzero", 0):
        dims = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        return None
    try:
        return [x.reshape(dims)]
    except ValueError:
        return None


def _same_dtype_binary(fn):
    def run(node, inputs, opset):
        a, b = inputs[0], inputs[1]
        # float16 is left to the reference evaluator (numpy may round twice).
        if a.dtype != b.dtype or a.dtype.kind not in "iu" and a.dtype not in (np.float32, np.float64):
            return None
        with np.errstate(all="ignore"):
            out = fn(a, b)
        return [np.asarray(out, dtype=a.dtype)]
    return run


# Integer Div and Mod differ between numpy (floor) and ONNX (truncation): not registered here.
EVALUATORS["Add"] = _same_dtype_binary(np.add)
EVALUATORS["Sub"] = _same_dtype_binary(np.subtract)
EVALUATORS["Mul"] = _same_dtype_binary(np.multiply)


def _reference_evaluate(node: Node, inputs: list, opset_imports: dict[str, int],
                        ir_version: int) -> list[np.ndarray]:
    """Run ``node`` alone through ``onnx.reference.ReferenceEvaluator``."""
    from onnx.reference import ReferenceEvaluator

    g = Graph("fold")
    args: list[Value | None] = []
    feeds = {}
    for i, arr in enumerate(inputs):
        if arr is None:
            args.append(None)
            continue
        v = g.add_input(Value(f"in{i}", TensorType(DType.from_numpy(arr.dtype), arr.shape)))
        args.append(v)
        feeds[v.name] = arr
    outs = [Value(f"out{i}") for i in range(len(node.outputs))]
    g.append(Node(node.op_type, args, list(node.attributes.values()), domain=node.domain,
                  outputs=outs))
    g.outputs.extend(outs)
    proto = irlib.to_onnx(Model(g, ir_version=ir_version, opset_imports=opset_imports))
    with np.errstate(all="ignore"):  # 1/0 is inf in ORT too: IEEE results, no warnings
        return list(ReferenceEvaluator(proto).run(None, feeds))


def evaluate_node(node: Node, inputs: list, opset_imports: dict[str, int],
                  ir_version: int = irlib.DEFAULT_IR_VERSION) -> list[np.ndarray]:
    """The outputs of ``node`` on constant ``inputs`` (numpy registry first, then the reference
    evaluator). Raises whatever the evaluator raises on bad input."""
    opset = opset_imports.get("", opset_imports.get("ai.onnx", 1))
    fn = EVALUATORS.get(node.op_type)
    out = fn(node, inputs, opset) if fn is not None else None
    if out is None:
        out = _reference_evaluate(node, inputs, opset_imports, ir_version)
    # numpy scalars (np.take with a 0-d index) become 0-d arrays; sequences stay lists
    return [np.asarray(o) if isinstance(o, np.generic) else o for o in out]


# -- size predictions -------------------------------------------------------------------------

def _predicted_elements(node: Node, inputs: list) -> int | None:
    """The element count of the output of ops that are large by construction, from their
    constant inputs (``None``: no prediction, evaluate and measure)."""
    op = node.op_type
    try:
        if op == "ConstantOfShape":
            return math.prod(int(d) for d in inputs[0].ravel())
        if op == "Expand":
            shape = np.broadcast_shapes(inputs[0].shape, tuple(int(d) for d in inputs[1].ravel()))
            return math.prod(shape)
        if op == "Tile":
            return inputs[0].size * math.prod(int(r) for r in inputs[1].ravel())
        if op == "Range":
            start, limit, delta = (np.asarray(a).reshape(()).item() for a in inputs[:3])
            if delta == 0:
                return None
            return max(int(math.ceil((limit - start) / delta)), 0)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _itemsize(node: Node, inputs: list) -> int:
    if node.op_type == "ConstantOfShape":
        value = node.attr("value")
        return value.numpy().itemsize if isinstance(value, Tensor) else 4
    arrays = [a for a in inputs if a is not None]
    return max((a.itemsize for a in arrays), default=8)


# -- the pass ---------------------------------------------------------------------------------

def _static_dims(v: Value) -> tuple | None:
    t = v.type
    return t.shape if isinstance(t, TensorType) and t.shape is not None else None


def _shape_slice(rank: int, start: int, end: int | None) -> range:
    """The dims ``Shape(start, end)`` selects (negative values count from the end, clamped)."""
    def clamp(i):
        if i < 0:
            i += rank
        return min(max(i, 0), rank)
    return range(clamp(start), clamp(rank if end is None else end))


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldConstants(Pass):
    """Evaluate nodes whose inputs are constants (and Shape/Size of static shapes) at compile time.

    >>> run_passes(model, "infer-shapes,fold-constants{max-bytes=4096},dce")  # doctest: +SKIP

    ``max_bytes`` bounds each folded output; ``constants_to_initializers`` turns ``Constant`` nodes
    into initializers (except those producing graph outputs).
    """

    name = "fold-constants"
    max_bytes: int = 1 << 20
    constants_to_initializers: bool = True

    def run(self, model: Model, ctx) -> PassResult:
        counts = {"folded": 0, "shapes": 0, "constants": 0, "over_budget": 0, "failed": 0}
        for graph in list(model.graph.all_graphs()):
            for node in graph:  # safe while removing: a removed node keeps its successor link
                self._visit(model, graph, node, counts)
        return PassResult(changed=bool(counts["folded"] + counts["shapes"] + counts["constants"]),
                          stats=counts)

    def _visit(self, model: Model, graph: Graph, node: Node, counts: dict) -> None:
        if node.domain not in ("", "ai.onnx") or node.op_type in NON_DETERMINISTIC_OPS:
            return
        if not any(v.name for v in node.outputs):
            return
        if node.op_type == "Constant":
            self._constant_to_initializer(graph, node, counts)
            return
        if any(True for _ in node.subgraphs()):
            return
        results = self._shape_fold(node)
        if results is not None:
            self._commit(graph, node, results)
            counts["shapes"] += 1
            return
        inputs = []
        for v in node.inputs:
            if v is None:
                inputs.append(None)
                continue
            arr = get_const(v)
            if arr is None or DType.from_numpy(arr.dtype) not in _FOLDABLE_DTYPES:
                return
            inputs.append(arr)
        if all(a is None for a in inputs):
            return  # no data to fold (input-less ops are Constant or random)
        if any(v.name and not isinstance(v.type, (TensorType, type(None))) for v in node.outputs):
            return  # sequences, optionals: not initializers
        predicted = _predicted_elements(node, inputs)
        if predicted is not None and predicted * _itemsize(node, inputs) > self.max_bytes:
            counts["over_budget"] += 1
            log.debug("not folding %s: output of %d elements is over the budget",
                      describe_node(node), predicted)
            return
        for v in node.outputs:
            t = v.type
            if v.name and isinstance(t, TensorType) and t.nbytes is not None \
                    and t.nbytes > self.max_bytes:
                counts["over_budget"] += 1
                return
        try:
            results = evaluate_node(node, inputs, model.opset_imports, model.ir_version)
        except Exception as e:  # an op the evaluator lacks, or inputs it rejects: keep the node
            counts["failed"] += 1
            log.debug("cannot fold %s: %s", describe_node(node), str(e).splitlines()[0] if str(e) else e)
            return
        if not self._acceptable(node, results, counts):
            return
        self._commit(graph, node, results)
        counts["folded"] += 1

    def _acceptable(self, node: Node, results: list, counts: dict) -> bool:
        if len(results) != len(node.outputs):
            return False
        for v, arr in zip(node.outputs, results):
            if not v.name:
                continue
            if not isinstance(arr, np.ndarray) or arr.dtype.kind in "OUSV":
                return False
            try:
                dtype = DType.from_numpy(arr.dtype)
            except TypeError:
                return False
            if dtype not in _FOLDABLE_DTYPES:
                return False
            if arr.nbytes > self.max_bytes:
                counts["over_budget"] += 1
                return False
            t = v.type
            if isinstance(t, TensorType):
                if t.dtype != dtype:
                    log.debug("not folding %s: evaluator gave %s, the graph says %s",
                              describe_node(node), dtype.short, t.dtype.short)
                    return False
                if t.shape is not None and (len(t.shape) != arr.ndim or any(
                        isinstance(d, int) and d != n for d, n in zip(t.shape, arr.shape))):
                    log.debug("not folding %s: evaluator gave shape %s, the graph says %s",
                              describe_node(node), arr.shape, t)
                    return False
        return True

    @staticmethod
    def _shape_fold(node: Node) -> list[np.ndarray] | None:
        """Shape/Size of static shapes, Gather(Shape(x), const) of static dims."""
        op = node.op_type
        if op in ("Shape", "Size") and node.inputs and node.inputs[0] is not None:
            dims = _static_dims(node.inputs[0])
            if dims is None:
                return None
            if op == "Size":
                if not all(isinstance(d, int) for d in dims):
                    return None
                return [np.array(math.prod(dims), np.int64)]
            picked = [dims[i] for i in _shape_slice(len(dims), node.attr("start", 0), node.attr("end"))]
            if not all(isinstance(d, int) for d in picked):
                return None
            return [np.array(picked, np.int64)]
        if op == "Gather" and len(node.inputs) == 2 and node.attr("axis", 0) == 0:
            src = node.inputs[0]
            shape_node = src.producer() if src is not None else None
            if shape_node is None or shape_node.op_type != "Shape" or shape_node.domain not in ("", "ai.onnx"):
                return None
            idx = get_const(node.inputs[1])
            dims = _static_dims(shape_node.inputs[0])
            if idx is None or dims is None or idx.dtype.kind not in "iu":
                return None
            picked_dims = [dims[i] for i in _shape_slice(
                len(dims), shape_node.attr("start", 0), shape_node.attr("end"))]
            n = len(picked_dims)
            flat = [int(i) for i in idx.ravel()]
            if any(not -n <= i < n for i in flat):
                return None
            vals = [picked_dims[i] for i in flat]
            if not all(isinstance(d, int) for d in vals):
                return None
            return [np.array(vals, np.int64).reshape(idx.shape)]
        return None

    def _commit(self, graph: Graph, node: Node, results: list[np.ndarray]) -> None:
        """Replace ``node``'s outputs by constants and remove it."""
        outputs = {id(v) for v in graph.outputs}
        replaced = [describe_node(node)]
        for v, arr in zip(node.outputs, results):
            if not v.name:
                continue
            arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # keeps 0-d arrays 0-d
            if id(v) in outputs:
                const = Node("Constant", [], {"value": Tensor(arr)})
                const.meta[PROVENANCE_RULE] = self.name
                const.meta[PROVENANCE_REPLACED] = replaced
                graph.insert_before(node, const)
                v.replace_all_uses_with(const.output, replace_graph_outputs=True)
                const.output.type = TensorType(DType.from_numpy(arr.dtype), arr.shape)
                continue
            name = v.name
            v.name = graph.fresh_name(f"{name}_folded")
            c = graph.constant(arr, name=name)
            c.meta[PROVENANCE_RULE] = self.name
            c.meta[PROVENANCE_REPLACED] = replaced
            v.replace_all_uses_with(c)
        graph.remove(node)

    def _constant_to_initializer(self, graph: Graph, node: Node, counts: dict) -> None:
        if not self.constants_to_initializers or len(node.outputs) != 1:
            return
        v = node.output
        if v.is_graph_output():
            return
        value = node.attr("value")
        if isinstance(value, Tensor):
            tensor = value
        else:
            arr = get_const(v)  # value_float(s), value_int(s), value_string(s)
            if arr is None:
                return  # sparse_value, or a reference attribute inside a function
            tensor = Tensor(arr)
        name = v.name
        v.name = graph.fresh_name(f"{name}_folded")
        c = graph.constant(tensor, name=name)
        v.replace_all_uses_with(c)
        graph.remove(node)
        counts["constants"] += 1
