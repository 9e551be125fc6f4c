"""Common-subexpression elimination: compute a thing once, read it everywhere.

Two nodes compute the same values when they have the same op (type, domain, overload), the same
attributes and read the same input values: the later one is dropped and its readers read the
earlier one's outputs. Equal constants are shared too: initializers with the same element type,
shape and bytes become one (compared exactly, so ``0.0`` and ``-0.0`` stay apart).

Each node gets a hashable key and a dict finds its twin, so the pass is linear in the graph size
(no pairwise comparison). Nodes are visited in order, so once ``b = f(x)`` is merged into
``a = f(x)``, ``g(b)`` has become ``g(a)`` by the time it is visited: chains merge in one sweep.

Never merged: random ops (two ``RandomNormal`` nodes draw different numbers) and nodes holding
subgraphs (proving two bodies equal is not worth it here). When both twins produce graph outputs,
the second output name is kept by an ``Identity`` of the first (the model's interface keeps both
names; the computation is done once). Inputs of the two-input commutative
ops (Add, Mul, And, Or, Xor, Equal, Bitwise*) are compared as a set: ``a + b`` is bitwise
``b + a`` in IEEE arithmetic. (Sum/Mean of three or more are not: the rounding order differs.
Max/Min are not either: NaN handling may depend on the order.)

>>> run_passes(model, "cse,dce")   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from irlib import AttrType, Graph, Model, Node, Tensor, Value
from passes.base import Pass, PassResult
from passes.registry import register_pass
from passes.transforms.fold_constants import NON_DETERMINISTIC_OPS

__all__ = ["CommonSubexpressionElimination"]

log = logging.getLogger(__name__)

_COMMUTATIVE_PAIRS = frozenset({
    "Add", "Mul", "And", "Or", "Xor", "Equal", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
})


def _tensor_key(t: Tensor) -> tuple:
    """An exact, hashable identity of a tensor's contents."""
    if t.dtype.name == "STRING":
        data = tuple(x if isinstance(x, bytes) else str(x).encode() for x in np.asarray(t.numpy()).ravel())
        return ("str", t.shape, data)
    return (int(t.dtype), t.shape, t.raw_bytes())


def _attr_key(a) -> tuple | None:
    """A hashable form of an attribute, or None when it holds a subgraph (never merged)."""
    if a.ref_attr_name:
        return (a.name, "ref", a.ref_attr_name)
    t, v = a.type, a.value
    if t in (AttrType.GRAPH, AttrType.GRAPHS):
        return None
    if t is AttrType.TENSOR:
        return (a.name, int(t), _tensor_key(v))
    if t is AttrType.TENSORS:
        return (a.name, int(t), tuple(_tensor_key(x) for x in v))
    if t in (AttrType.SPARSE_TENSOR, AttrType.SPARSE_TENSORS, AttrType.TYPE_PROTO, AttrType.TYPE_PROTOS):
        # protos / irlib types: compare by their serialized or printed form
        items = v if t.is_list else (v,)
        return (a.name, int(t), tuple(x.SerializeToString() if hasattr(x, "SerializeToString")
                                      else repr(x) for x in items))
    if t is AttrType.FLOAT:
        return (a.name, int(t), np.float32(v).tobytes())  # bitwise: NaN equals itself, -0.0 != 0.0
    if t is AttrType.FLOATS:
        return (a.name, int(t), np.asarray(v, np.float32).tobytes())
    return (a.name, int(t), v)


def _node_key(node: Node) -> tuple | None:
    if node.op_type in NON_DETERMINISTIC_OPS and node.domain in ("", "ai.onnx"):
        return None
    attrs = []
    for a in node.attributes.values():
        k = _attr_key(a)
        if k is None:
            return None
        attrs.append(k)
    ins = tuple(None if v is None else id(v) for v in node.inputs)
    while ins and ins[-1] is None:
        ins = ins[:-1]  # trailing omitted optional inputs are the same as absent ones
    if node.op_type in _COMMUTATIVE_PAIRS and len(ins) == 2 and None not in ins:
        ins = tuple(sorted(ins))
    domain = "" if node.domain == "ai.onnx" else node.domain
    return (domain, node.op_type, node.overload, ins, tuple(sorted(attrs, key=lambda k: k[0])),
            len(node.outputs))


def _can_stand_in(kept: Node, dup: Node) -> bool:
    """True when every used output of ``dup`` can be replaced by ``kept``'s."""
    for a, b in zip(kept.outputs, dup.outputs):
        needed = b.name and (b.has_uses() or b.is_graph_output())
        if needed and not a.name:
            return False  # kept does not produce this optional output
        if b.is_graph_output() and a.is_graph_output() and dup.op_type == "Identity":
            return False  # already the cheapest stand-in for a second output name
    return True


def _merge_nodes(graph: Graph) -> int:
    seen: dict[tuple, Node] = {}
    merged = 0
    for node in graph:
        if any(True for _ in node.subgraphs()):
            continue
        key = _node_key(node)
        if key is None:
            continue
        kept = seen.get(key)
        if kept is None:
            seen[key] = node
            continue
        if not _can_stand_in(kept, node):
            continue
        for a, b in zip(kept.outputs, node.outputs):
            if not b.name or not (b.has_uses() or b.is_graph_output()):
                continue
            if b.is_graph_output() and a.is_graph_output():
                # Two output names for one value: the second becomes Identity(first).
                ident = Node("Identity", [a])
                graph.insert_before(node, ident)
                b.replace_all_uses_with(ident.output, replace_graph_outputs=True)
            else:
                b.replace_all_uses_with(a, replace_graph_outputs=b.is_graph_output())
        graph.remove(node)
        merged += 1
    return merged


def _digest(t: Tensor) -> tuple:
    """A short fingerprint of a tensor's contents (the bytes are compared exactly on a hit)."""
    key = _tensor_key(t)
    data = key[2] if isinstance(key[2], bytes) else repr(key[2]).encode()
    return key[0], key[1], hashlib.blake2b(data, digest_size=16).digest()


def _merge_initializers(graph: Graph) -> int:
    """Initializers with equal contents become one (the first in the graph's order)."""
    inputs = {id(v) for v in graph.inputs}
    outputs = {id(v) for v in graph.outputs}
    # Bucket by dtype and shape first; only tensors that share a bucket are read and hashed, and
    # only fingerprints are kept (not copies of the bytes).
    buckets: dict[tuple, list[Value]] = {}
    for v in graph.initializers:
        if id(v) in inputs:
            continue  # an overridable default, not a constant
        t = v.const_value
        buckets.setdefault((int(t.dtype), t.shape), []).append(v)
    merged = 0
    for group in buckets.values():
        if len(group) < 2:
            continue
        by_digest: dict[tuple, list[Value]] = {}
        for v in group:
            candidates = by_digest.setdefault(_digest(v.const_value), [])
            mine = _tensor_key(v.const_value) if candidates else None
            kept = next((k for k in candidates if _tensor_key(k.const_value) == mine), None)
            if kept is None:
                candidates.append(v)  # first of its contents (or a fingerprint collision)
            elif id(v) not in outputs:  # an initializer that is a graph output keeps its name
                v.replace_all_uses_with(kept)
                graph.remove_initializer(v)
                merged += 1
    return merged


@register_pass
@dataclasses.dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge nodes with equal op, attributes and inputs, and initializers with equal contents.

    >>> run_passes(model, "cse")   # doctest: +SKIP
    """

    name = "cse"
    #: Also share equal initializers.
    constants: bool = True

    def run(self, model: Model, ctx) -> PassResult:
        nodes = inits = 0
        for graph in list(model.graph.all_graphs()):
            if self.constants:
                inits += _merge_initializers(graph)
            nodes += _merge_nodes(graph)
        if nodes or inits:
            log.debug("cse: %d nodes, %d initializers merged", nodes, inits)
        return PassResult.from_counts(nodes_merged=nodes, initializers_merged=inits)
