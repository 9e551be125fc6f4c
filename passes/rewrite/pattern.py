"""Declarative patterns: a subgraph written with op builders, matched against the IR.

    def pattern(op, a, b, c):
        return op.Add(op.MatMul(a, b), c)

Each parameter after ``op`` is a variable that matches any value (the same variable twice must
match the same value). ``op.X(...)`` matches a node of op type ``X`` whose inputs match; keyword
arguments constrain attributes (a value compares equal, a callable is a predicate; a missing
attribute reads as its ONNX schema default), ``_domain`` the domain, ``_outputs`` the number of
outputs (then the call returns a tuple), ``_name`` binds the matched node under that name.
``Const()`` matches a constant value (``Const(1.0)``: every element equals 1.0).

Matching is anchored at the pattern's last node (the root). Commutative ops (Add, Mul, Max, Min,
Sum, And, Or, Xor, Equal, BitwiseAnd/Or/Xor) are tried in both input orders. Nodes of the match
other than the root must have no uses outside the match and must not produce graph outputs,
because a rewrite deletes them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from irlib import Node, Value
from passes.constants import get_const

__all__ = ["Var", "Const", "PatternNode", "PatternValue", "PatternBuilder", "Match", "match_pattern",
           "COMMUTATIVE_OPS", "attr_or_default", "iter_matches"]

COMMUTATIVE_OPS = frozenset({
    "Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor",
})


@dataclasses.dataclass(eq=False)
class Var:
    """Matches any value; binds it under ``name``."""

    name: str


@dataclasses.dataclass(eq=False)
class Const:
    """Matches a constant; with ``value``, only one whose every element equals it."""

    value: Any = None
    name: str | None = None
    rtol: float = 0.0

    def accepts(self, arr: np.ndarray) -> bool:
        if self.value is None:
            return True
        if arr.size == 0 or arr.dtype == object:
            return False
        if self.rtol:
            return bool(np.allclose(arr.astype(np.float64), self.value, rtol=self.rtol, atol=0))
        return bool(np.all(arr == self.value))


@dataclasses.dataclass(eq=False)
class PatternNode:
    op_type: str
    inputs: list
    attrs: dict[str, Any]
    domain: str = ""
    num_outputs: int = 1
    name: str | None = None
    allow_other_inputs: bool = False
    outputs: list["PatternValue"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class PatternValue:
    """Output ``index`` of a pattern node."""

    node: PatternNode
    index: int = 0


class PatternBuilder:
    """The ``op`` handed to ``pattern``: ``op.Relu(x)`` builds a pattern node."""

    def __getattr__(self, op_type: str) -> Callable:
        if op_type.startswith("__"):
            raise AttributeError(op_type)

        def build(*inputs, _domain: str = "", _outputs: int = 1, _name: str | None = None,
                  _allow_other_inputs: bool = False, **attrs):
            node = PatternNode(op_type, list(inputs), attrs, _domain, _outputs, _name,
                               _allow_other_inputs)
            node.outputs = [PatternValue(node, i) for i in range(_outputs)]
            return node.outputs[0] if _outputs == 1 else tuple(node.outputs)

        return build


@dataclasses.dataclass
class Match:
    """A successful match: bound values and nodes, and the matched nodes (root first)."""

    root: Node
    bindings: dict[str, Any]
    nodes: list[Node]
    #: The model's ai.onnx opset (None when matching a bare graph): for checks that depend on it.
    opset: int | None = None

    def const(self, value: Value) -> np.ndarray | None:
        return get_const(value)


def attr_or_default(node: Node, name: str, opset: int | None = None):
    """Attribute ``name`` of ``node``, or its default from the ONNX schema (None if none)."""
    a = node.attributes.get(name)
    if a is not None:
        return a.value
    return _schema_default(node.op_type, node.domain, name, opset)


@functools.lru_cache(maxsize=4096)
def _schema_default(op_type: str, domain: str, name: str, opset: int | None):
    try:
        schema = onnx.defs.get_schema(op_type, opset or onnx.defs.onnx_opset_version(),
                                      domain if domain != "ai.onnx" else "")
    except Exception:  # unknown op or domain: no defaults known
        return None
    attr = schema.attributes.get(name)
    if attr is None or not attr.default_value.name and attr.default_value.type == 0:
        return None
    v = onnx.helper.get_attribute_value(attr.default_value)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, list):
        v = tuple(v)
    return v


def match_pattern(root_pattern: PatternValue | tuple, node: Node, opset: int | None = None) -> Match | None:
    """Match the pattern whose root produces ``root_pattern`` at ``node``; ``None`` if no match."""
    return next(iter_matches(root_pattern, node, opset), None)


def iter_matches(root_pattern: PatternValue | tuple, node: Node,
                 opset: int | None = None) -> Iterator[Match]:
    """Every way the pattern matches at ``node`` (commutative ops give several), first the one
    :func:`match_pattern` returns. A caller that refuses one match can try the next."""
    pv = root_pattern[0] if isinstance(root_pattern, tuple) else root_pattern
    if not isinstance(pv, PatternValue):
        raise TypeError("a pattern must return the output of an op, e.g. op.Relu(x)")
    for bindings, pairs in _match_node(pv.node, node, {}, (), opset):
        yield Match(node, bindings, [n for _, n in pairs], opset)


# While matching, ``pairs`` holds the (pattern node, IR node) pairs bound so far, in match order
# (root first). A pattern node used twice (``r = op.Relu(x); op.Mul(r, r)``) must bind the same IR
# node both times; two different pattern nodes must never bind the same IR node.
def _match_node(pn: PatternNode, node: Node, bindings: dict, pairs: tuple, opset) -> Iterator:
    for p, n in pairs:
        if p is pn or n is node:  # bound before: only to this very pair
            if p is pn and n is node:
                yield bindings, pairs
            return
    if node.op_type != pn.op_type or (node.domain or "") not in _domains(pn.domain):
        return
    if len(node.outputs) < pn.num_outputs:
        return
    n_in = len(pn.inputs)
    if len(node.inputs) < n_in or (len(node.inputs) > n_in and not pn.allow_other_inputs
                                    and any(v is not None for v in node.inputs[n_in:])):
        return
    for key, want in pn.attrs.items():
        have = attr_or_default(node, key, opset)
        if callable(want):
            if not want(have):
                return
        elif not _attr_equal(have, want):
            return
    bindings = dict(bindings)
    if pn.name:
        if pn.name in bindings and bindings[pn.name] is not node:
            return
        bindings[pn.name] = node
    pairs = pairs + ((pn, node),)
    orders = [list(range(n_in))]
    if pn.op_type in COMMUTATIVE_OPS and n_in == 2:
        orders.append([1, 0])
    for order in orders:
        yield from _match_inputs(pn, node, order, 0, bindings, pairs, opset)


def _match_inputs(pn, node, order, k, bindings, nodes, opset) -> Iterator:
    if k == len(order):
        yield bindings, nodes
        return
    pat = pn.inputs[k]
    value = node.inputs[order[k]]
    for b, ns in _match_value(pat, value, bindings, nodes, opset):
        yield from _match_inputs(pn, node, order, k + 1, b, ns, opset)


def _match_value(pat, value: Value | None, bindings: dict, nodes: list, opset) -> Iterator:
    if pat is None:
        if value is None:
            yield bindings, nodes
        return
    if value is None:
        return
    if isinstance(pat, Var):
        bound = bindings.get(pat.name)
        if bound is None:
            yield {**bindings, pat.name: value}, nodes
        elif bound is value:
            yield bindings, nodes
        return
    if isinstance(pat, Const):
        arr = get_const(value)
        if arr is None or not pat.accepts(arr):
            return
        if pat.name:
            bound = bindings.get(pat.name)
            if bound is not None and bound is not value:
                return
            bindings = {**bindings, pat.name: value}
        yield bindings, nodes
        return
    if isinstance(pat, PatternValue):
        producer = value.producer()
        if producer is None or value.index != pat.index:
            return
        yield from _match_node(pat.node, producer, bindings, nodes, opset)
        return
    raise TypeError(f"cannot use {type(pat).__name__} in a pattern")


def _domains(domain: str) -> tuple[str, ...]:
    return ("", "ai.onnx") if domain in ("", "ai.onnx") else (domain,)


def _attr_equal(have, want) -> bool:
    if isinstance(want, (list, tuple)):
        return isinstance(have, (list, tuple)) and tuple(have) == tuple(want)
    if isinstance(want, float) and isinstance(have, float):
        return bool(np.float32(have) == np.float32(want))
    return have == want
