"""Liveness of the intermediate tensors of a graph over its execution order.

The execution order is the graph's node list. Every value produced by a node of the main graph is
an *intermediate* and gets a lifetime ``[first, last]`` in step numbers (positions in that order):
``first`` is its producer, ``last`` its last reader. A graph output lives to the last step; a value
read inside a subgraph (the body of an If or Loop) lives until the node holding that subgraph.
Graph inputs, initializers and the outputs of ``Constant`` nodes are not planned: a runtime keeps
them in their own (read-only) storage. An output nobody reads is still planned (the op writes it)
for one step, unless its size is unknown, in which case it is treated as not requested.

Tensors are then grouped into *buffers*, the unit the offset strategies place:

- a view (Reshape, Flatten, Squeeze, Unsqueeze, Identity) shares its input's buffer (an alias);
- an elementwise op (Relu, Add, Mul, Sigmoid ...) whose output has the shape and type of an input
  that dies at this node writes its output over that input (in place), counted in
  ``inplace_count``.

A buffer lives from its first tensor's ``first`` to its last tensor's ``last``.

>>> live = compute_liveness(model)                                 # doctest: +SKIP
>>> [(t.name, t.first, t.last) for t in live.tensors]              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping

from irlib import Graph, IRError, Model, Node, TensorType, Value
from irlib.dtypes import DType

__all__ = [
    "Buffer", "INPLACE_OPS", "Liveness", "MemoryPlanError", "TensorLife", "VIEW_OPS",
    "align", "compute_liveness", "lower_bound", "node_names", "tensor_nbytes",
]

log = logging.getLogger(__name__)

#: Ops whose output is the input's data, unchanged: the output may alias the input's buffer.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})

#: Elementwise ops: ``out[i]`` depends only on ``in[i]`` of same-shaped inputs, so the output
#: may be written over an input that is not read after this node.
INPLACE_OPS = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu",
    "Clip", "Cos", "Cosh", "Div", "Dropout", "Elu", "Equal", "Erf", "Exp", "Floor", "Gelu",
    "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "LeakyRelu", "Less", "LessOrEqual",
    "Log", "Max", "Mean", "Min", "Mish", "Mod", "Mul", "Neg", "Not", "Or", "Pow", "PRelu",
    "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
    "Softsign", "Sqrt", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Where", "Xor",
})


class MemoryPlanError(IRError, ValueError):
    """A model that cannot be planned (a tensor of unknown size, a bad option); one line."""


def align(n: int, alignment: int) -> int:
    """``n`` rounded up to a multiple of ``alignment``."""
    return -(-n // alignment) * alignment


@dataclasses.dataclass
class TensorLife:
    """One planned tensor: the value, its size in bytes (unaligned), its lifetime in steps, the
    buffer holding it, and how it got there (``alias_of``: the tensor whose buffer a view shares;
    ``inplace_of``: the input an elementwise op overwrote)."""

    value: Value
    name: str
    size: int
    first: int
    last: int
    buffer: int = -1
    alias_of: str | None = None
    inplace_of: str | None = None


@dataclasses.dataclass
class Buffer:
    """A block of the arena shared by one or more tensors; ``size`` is aligned."""

    id: int
    size: int
    first: int
    last: int
    tensors: list[TensorLife] = dataclasses.field(default_factory=list)

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclasses.dataclass
class Liveness:
    """The lifetimes of a graph's intermediates and the buffers they are grouped into."""

    order: list[Node]
    names: list[str]
    tensors: list[TensorLife]
    buffers: list[Buffer]
    alignment: int
    inplace_count: int
    alias_count: int

    @property
    def naive_bytes(self) -> int:
        """Every intermediate in its own (aligned) buffer."""
        return sum(align(t.size, self.alignment) for t in self.tensors)

    @property
    def lower_bound_bytes(self) -> int:
        return lower_bound(self.buffers)

    def tensor_of(self) -> dict[Value, TensorLife]:
        return {t.value: t for t in self.tensors}


def node_names(nodes: list[Node]) -> list[str]:
    """Stable, unique names for ``nodes``: a node's own name, else ``<op>_<position>``; a name
    already taken gets ``_<k>`` appended. The model's nodes are not renamed."""
    taken = {n.name for n in nodes if n.name}
    seen: set[str] = set()
    out = []
    for i, n in enumerate(nodes):
        name = n.name if n.name and n.name not in seen else ""
        if not name:
            base = n.name or f"{n.op_type.lower()}_{i}"
            name, k = base, 1
            while name in taken or name in seen:
                name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def tensor_nbytes(value: Value, shapes: Mapping[str, int] | None = None) -> int:
    """Bytes of ``value`` from its static type; symbolic dims are looked up in ``shapes``.
    Raises :class:`MemoryPlanError` naming the value and the dim it cannot size."""
    t = value.type
    if not isinstance(t, TensorType):
        what = "no type" if t is None else f"type {t}, not a tensor"
        raise MemoryPlanError(f"cannot size value {value.name!r}: it has {what} (run infer-shapes first)")
    if t.shape is None:
        raise MemoryPlanError(f"cannot size value {value.name!r}: its rank is unknown (run infer-shapes first)")
    if t.dtype in (DType.STRING, DType.UNDEFINED):
        raise MemoryPlanError(f"cannot size value {value.name!r}: dtype {t.dtype.name} has no fixed size")
    n = 1
    for i, d in enumerate(t.shape):
        if isinstance(d, str):
            if not shapes or d not in shapes:
                raise MemoryPlanError(
                    f"cannot size value {value.name!r}: dim {i} is the symbol {d!r}; bind it"
                    f" (e.g. --shape {d}=1)")
            d = shapes[d]
        elif d is None:
            raise MemoryPlanError(
                f"cannot size value {value.name!r}: dim {i} is unknown (run infer-shapes first)")
        n *= int(d)
    return (n * t.dtype.itemsize_bits + 7) // 8


def _top_node(node: Node, graph: Graph) -> Node | None:
    """The node of ``graph`` that is ``node`` or holds it in a (nested) subgraph."""
    while node.graph is not graph:
        g = node.graph
        if g is None or g.parent_node is None:
            return None
        node = g.parent_node
    return node


def _resolved_shape(value: Value, shapes) -> tuple | None:
    t = value.type
    if not isinstance(t, TensorType) or t.shape is None:
        return None
    out = []
    for d in t.shape:
        if isinstance(d, str):
            d = (shapes or {}).get(d)
        if d is None:
            return None
        out.append(int(d))
    return tuple(out)


def compute_liveness(model: Model | Graph, *, shapes: Mapping[str, int] | None = None,
                     alignment: int = 64, alias: bool = True, inplace: bool = True,
                     order: list[Node] | None = None) -> Liveness:
    """Lifetimes and buffers of the intermediates of ``model``'s main graph, in its node order
    (or in ``order``, a permutation of its nodes, to evaluate another schedule).

    ``shapes`` binds symbolic dims (``{"N": 1}``). ``alias``/``inplace`` turn view sharing and
    in-place reuse on or off. Raises :class:`MemoryPlanError` for a tensor it cannot size.
    """
    if alignment < 1 or alignment & (alignment - 1):
        raise MemoryPlanError(f"alignment must be a power of two, not {alignment}")
    graph = model.graph if isinstance(model, Model) else model
    order = list(graph) if order is None else list(order)
    pos = {n: i for i, n in enumerate(order)}
    end = len(order) - 1
    outputs = {id(v) for v in graph.outputs}
    tensors: list[TensorLife] = []
    life: dict[Value, TensorLife] = {}
    for i, node in enumerate(order):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        for v in node.outputs:
            if not v.name:  # an optional output that is not produced
                continue
            last = i
            for user in v.users():
                top = user if user.graph is graph else _top_node(user, graph)
                p = pos.get(top) if top is not None else None
                if p is not None and p > last:
                    last = p
            if id(v) in outputs:
                last = max(end, i)
            dead = last == i and not v.has_uses() and id(v) not in outputs
            try:
                size = tensor_nbytes(v, shapes)
            except MemoryPlanError:
                if dead:
                    log.debug("output %r is never read and has no size: not materialized", v.name)
                    continue
                raise
            t = TensorLife(v, v.name, size, i, last)
            tensors.append(t)
            life[v] = t

    # Group tensors into buffers with a union-find keyed by tensor index.
    index = {id(t): k for k, t in enumerate(tensors)}
    parent = list(range(len(tensors)))
    bfirst = [t.first for t in tensors]
    blast = [t.last for t in tensors]
    bsize = [t.size for t in tensors]
    graph_out_buffer = [id(t.value) in outputs for t in tensors]

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra == rb:
            return
        parent[rb] = ra
        bfirst[ra] = min(bfirst[ra], bfirst[rb])
        blast[ra] = max(blast[ra], blast[rb])
        bsize[ra] = max(bsize[ra], bsize[rb])
        graph_out_buffer[ra] = graph_out_buffer[ra] or graph_out_buffer[rb]

    inplace_count = alias_count = 0
    for i, node in enumerate(order):
        if node.domain not in ("", "ai.onnx") or len(node.outputs) < 1:
            continue
        out = life.get(node.outputs[0])
        if out is None:
            continue
        op = node.op_type
        if alias and op in VIEW_OPS and node.inputs and node.inputs[0] in life:
            src = life[node.inputs[0]]
            if src.size == out.size:
                union(index[id(src)], index[id(out)])
                out.alias_of = src.name
                alias_count += 1
                continue
        if inplace and op in INPLACE_OPS:
            cand = _inplace_input(node, out, life, index, find, blast, graph_out_buffer, i, shapes)
            if cand is not None:
                union(index[id(cand)], index[id(out)])
                out.inplace_of = cand.name
                inplace_count += 1

    roots: dict[int, Buffer] = {}
    buffers: list[Buffer] = []
    for k, t in enumerate(tensors):
        r = find(k)
        b = roots.get(r)
        if b is None:
            b = roots[r] = Buffer(len(buffers), align(bsize[r], alignment), bfirst[r], blast[r])
            buffers.append(b)
        t.buffer = b.id
        b.tensors.append(t)
    return Liveness(order, node_names(order), tensors, buffers, alignment, inplace_count, alias_count)


def _inplace_input(node, out, life, index, find, blast, graph_out_buffer, step, shapes):
    """The input of elementwise ``node`` whose buffer ``out`` may overwrite, or ``None``: same
    dtype and shape as the output, its buffer not read after this step and not a graph output,
    and no other input of the node reading that buffer with another shape."""
    out_shape = _resolved_shape(out.value, shapes)
    if out_shape is None:
        return None
    for v in node.inputs:
        t = life.get(v) if v is not None else None
        if t is None or t.size != out.size or v.dtype != out.value.dtype:
            continue
        if _resolved_shape(v, shapes) != out_shape:
            continue
        r = find(index[id(t)])
        if blast[r] != step or graph_out_buffer[r]:
            continue
        clash = False
        for w in node.inputs:
            tw = life.get(w) if w is not None else None
            if tw is not None and tw is not t and find(index[id(tw)]) == r and \
                    _resolved_shape(w, shapes) != out_shape:
                clash = True
        if not clash:
            return t
    return None


def lower_bound(buffers: list[Buffer]) -> int:
    """The largest total size of the buffers live at one step: no placement of these buffers
    (in this order) can use less memory. O(n log n) with a sweep over lifetime events."""
    events: list[tuple[int, int]] = []
    for b in buffers:
        events.append((b.first, b.size))
        events.append((b.last + 1, -b.size))
    events.sort(key=lambda e: (e[0], e[1]))  # frees before allocations at the same step
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best
