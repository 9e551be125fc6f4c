"""Helpers shared by the converters: attributes, compile-time constants, typed scalars."""

from __future__ import annotations

import numpy as np

from backends.base import BackendError
from backends.tvm._env import relax
from irlib import Node, Value

__all__ = ["ints", "is_static", "needs_static", "scalar", "unsupported"]


def ints(node: Node, name: str, default=None) -> list[int] | None:
    v = node.attr(name, default)
    return None if v is None else [int(x) for x in v]


def scalar(cx, value, like) -> object:
    """A scalar Relax constant of ``like``'s dtype."""
    dtype = cx.dtype(like)
    return relax.const(np.array(value, dtype=dtype), dtype)


def is_static(v: Value | None) -> bool:
    """Whether ``v`` is known before the model runs: an initializer, a
    ``Constant``, or the ``Shape`` of a tensor whose shape is static."""
    if v is None:
        return True
    if v.const_value is not None:
        return True
    p = v.producer()
    if p is None or p.domain not in ("", "ai.onnx"):
        return False
    if p.op_type == "Constant":
        return True
    if p.op_type in ("Shape", "Size") and p.inputs and p.inputs[0] is not None:
        t = p.inputs[0].type
        return getattr(t, "shape", None) is not None and all(isinstance(d, int) for d in t.shape)
    return False


def needs_static(*indices: int, what: str = "input"):
    """A ``check`` that refuses a node whose inputs ``indices`` are not compile-time values."""

    def check(node: Node) -> bool | str:
        for i in indices:
            if i < len(node.inputs) and not is_static(node.inputs[i]):
                return (f"{node.op_type}: {what} {i} must be a compile-time constant"
                        " (fold it with -O1 or higher)")
        return True

    return check


def unsupported(node: Node, why: str) -> BackendError:
    return BackendError(f"tvm: {node.op_type}: {why}")
