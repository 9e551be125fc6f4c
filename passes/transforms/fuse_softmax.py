"""Softmax written out -> one ``Softmax`` node.

    e = Exp(Sub(x, ReduceMax(x, axes=[a])))         keepdims=1
    y = Div(e, ReduceSum(e, axes=[a]))   or  Mul(e, Reciprocal(ReduceSum(e, axes=[a])))

is ``Softmax(x, axis=a)`` from opset 13, where Softmax normalizes over the one axis ``a``. Before
opset 13 Softmax flattens the input to 2-D at ``axis`` and normalizes over everything after it,
which equals the single-axis softmax only for the last axis: there the rule needs the rank and
emits ``axis=rank-1``; other axes are left alone. Reduction axes are read from the attribute or
the constant input (ReduceSum takes them as an input from opset 13, ReduceMax from 18).

Without the ``ReduceMax`` subtraction (``Exp(x) / ReduceSum(Exp(x))``) the pattern is not fused:
it overflows to inf/NaN where Softmax does not, so the two are not the same function.
"""

from __future__ import annotations

import dataclasses

from passes.registry import register_pass
from passes.rewrite import PatternPass, RewriteRule, op_accepts
from passes.transforms.fuse_layer_norm import rank, reduce_axes

__all__ = ["FuseSoftmax", "SoftmaxDiv", "SoftmaxMulReciprocal", "softmax_axis"]


def softmax_axis(x, rmax, rsum, opset: int | None) -> int | str:
    """The Softmax ``axis`` equivalent to the matched reductions, or why there is none."""
    r = rank(x)
    axes = reduce_axes(rmax, opset, r)
    if isinstance(axes, str):
        return axes
    if reduce_axes(rsum, opset, r) != axes:
        return "ReduceMax and ReduceSum reduce different axes"
    if len(axes) != 1:
        return f"reduction over {len(axes)} axes"
    (axis,) = axes
    if opset is not None and opset < 13:
        if axis != -1 or r is None:
            return f"Softmax-{opset} flattens at its axis: only the last axis of a known rank fuses"
        axis = r - 1
    if x.dtype is None or not op_accepts("Softmax", opset, x.dtype):
        kind = x.dtype.name if x.dtype is not None else "unknown type"
        return f"Softmax at opset {opset} does not take {kind}"
    return axis


class SoftmaxDiv(RewriteRule):
    """Exp(x - ReduceMax(x)) / ReduceSum(Exp(..)) -> Softmax(x)."""

    name = "softmax"

    def pattern(self, op, x):
        e = op.Exp(op.Sub(x, op.ReduceMax(x, _allow_other_inputs=True, _name="rmax")))
        return op.Div(e, op.ReduceSum(e, _allow_other_inputs=True, _name="rsum"), _name="root")

    def check(self, m, x, rmax, rsum):
        axis = softmax_axis(x, rmax, rsum, m.opset)
        if isinstance(axis, str):
            return axis
        m.bindings["_axis"] = axis

    def rewrite(self, op, x, root, _axis):
        return op.Softmax(x, axis=_axis, _name=root.name)


class SoftmaxMulReciprocal(SoftmaxDiv):
    """Exp(x - ReduceMax(x)) * Reciprocal(ReduceSum(Exp(..))) -> Softmax(x)."""

    name = "softmax-reciprocal"

    def pattern(self, op, x):
        e = op.Exp(op.Sub(x, op.ReduceMax(x, _allow_other_inputs=True, _name="rmax")))
        total = op.ReduceSum(e, _allow_other_inputs=True, _name="rsum")
        return op.Mul(e, op.Reciprocal(total), _name="root")


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseSoftmax(PatternPass):
    """Fuse Exp(x - max) / sum(Exp(x - max)) over one axis into Softmax (opset-aware)."""

    name = "fuse-softmax"
    rules = (SoftmaxDiv, SoftmaxMulReciprocal)
