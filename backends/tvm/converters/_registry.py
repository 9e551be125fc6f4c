"""The converter registry: one function per ONNX op that builds its Relax expression.

A converter is registered with :func:`converter` and called by :mod:`backends.tvm.lowering` as
``fn(cx, node)``, where ``cx`` is the :class:`~backends.tvm.lowering.Lowering` in progress. It
returns one Relax expression per node output (a single expression for one output; a tuple or
list otherwise, ``None`` for an optional output nobody reads), or a numpy array for an output
known at compile time (``Shape`` of a static tensor), which later converters read with
``cx.const``. ``check(node)`` says before anything is built whether the converter can take this
particular node (attributes, constant inputs it needs): ``True`` or a one-line reason.

    @converter("Relu")
    def relu(cx, node):
        return relax.op.nn.relu(cx.arg(node, 0))
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from irlib import Node

__all__ = ["CONVERTERS", "Converter", "converter", "get_converter"]


@dataclasses.dataclass(frozen=True)
class Converter:
    """How one ONNX op becomes Relax: ``fn(cx, node)``, an optional ``check(node)``, and a
    ``notes`` line for the table of supported ops (docs/backends/tvm.md)."""

    op_type: str
    fn: Callable
    family: str
    check: Callable[[Node], "bool | str"] | None = None
    notes: str = ""

    def accepts(self, node: Node) -> bool | str:
        if self.check is None:
            return True
        return self.check(node)


#: op_type -> Converter, for the ai.onnx domain.
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str, check: Callable | None = None, notes: str = ""):
    """Register the decorated function as the converter of ``op_types`` (ai.onnx domain).
    Registering an op twice is an error."""

    def register(fn):
        family = fn.__module__.rsplit(".", 1)[-1]
        for op in op_types:
            if op in CONVERTERS:
                raise ValueError(f"a TVM converter for {op} is registered twice"
                                 f" ({CONVERTERS[op].fn.__module__} and {fn.__module__})")
            CONVERTERS[op] = Converter(op, fn, family, check, notes)
        return fn

    return register


def get_converter(node: Node) -> Converter | None:
    """The converter of ``node``'s op, or ``None`` (other domains never have one)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    return CONVERTERS.get(node.op_type)
