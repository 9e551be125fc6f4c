"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, ArgMax/ArgMin.

Axes are an attribute up to opset 17 (ReduceSum: 12) and a compile-time input after;
``noop_with_empty_axes`` is honoured. ReduceLogSumExp subtracts the maximum first, as a stable
implementation must.
"""

from __future__ import annotations

from backends.tvm._env import relax
from backends.tvm.converters._common import ints, needs_static
from backends.tvm.converters._registry import converter
from irlib import Node

_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
        "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _axes(cx, node: Node) -> list[int] | None:
    attr_until = 13 if node.op_type == "ReduceSum" else 18
    if cx.opset < attr_until:
        return ints(node, "axes")
    a = cx.const(node, 1)
    return None if a is None or a.size == 0 else [int(v) for v in a.reshape(-1)]


@converter(*_OPS, check=needs_static(1, what="axes"), notes="axes attribute or input;"
           " noop_with_empty_axes")
def reduce(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    axes = _axes(cx, node)
    keep = bool(node.attr("keepdims", 1))
    if axes is None:
        if node.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(rank))
    axes = sorted(a + rank if a < 0 else a for a in axes)
    op = node.op_type
    if op == "ReduceSum":
        return relax.op.sum(x, axes, keep)
    if op == "ReduceMean":
        return relax.op.mean(x, axes, keep)
    if op == "ReduceMax":
        return relax.op.max(x, axes, keep)
    if op == "ReduceMin":
        return relax.op.min(x, axes, keep)
    if op == "ReduceProd":
        return relax.op.prod(x, axes, keep)
    if op == "ReduceL1":
        return relax.op.sum(relax.op.abs(x), axes, keep)
    if op == "ReduceSumSquare":
        return relax.op.sum(relax.op.multiply(x, x), axes, keep)
    if op == "ReduceL2":
        return relax.op.sqrt(cx.emit(relax.op.sum(relax.op.multiply(x, x), axes, keep)))
    if op == "ReduceLogSum":
        return relax.op.log(cx.emit(relax.op.sum(x, axes, keep)))
    # ReduceLogSumExp: m + log(sum(exp(x - m)))
    m = cx.emit(relax.op.max(x, axes, True))
    s = cx.emit(relax.op.log(relax.op.sum(relax.op.exp(relax.op.subtract(x, m)), axes, True)))
    y = relax.op.add(s, m)
    return y if keep else relax.op.squeeze(cx.emit(y), axes)


def _arg_check(node: Node) -> bool | str:
    if node.attr("select_last_index", 0):
        return f"{node.op_type}: select_last_index=1 is not supported"
    return True


@converter("ArgMax", "ArgMin", check=_arg_check, notes="select_last_index=0")
def arg_reduce(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    axis = int(node.attr("axis", 0))
    axis = axis + rank if axis < 0 else axis
    f = relax.op.argmax if node.op_type == "ArgMax" else relax.op.argmin
    y = f(x, axis, bool(node.attr("keepdims", 1)))
    return relax.op.astype(y, "int64") if cx.dtype(cx.emit(y)) != "int64" else y
