"""Identity elimination: ops that compute their input unchanged are bypassed.

Each rule is valid only when the replacement has exactly the node's output type: where that
depends on shapes or dtypes (``x + 0`` broadcasts, ``Reshape`` may change the shape) the rule
asks for known types and refuses otherwise (run ``infer-shapes`` first, as the -O levels do).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import TensorType, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import Const, PatternPass, RewriteRule


def same_type(a: Value, b: Value) -> bool:
    """True when both have known, equal dtypes and fully static equal shapes."""
    ta, tb = a.type, b.type
    return (isinstance(ta, TensorType) and isinstance(tb, TensorType) and ta.dtype == tb.dtype
            and ta.is_static and tb.is_static and ta.shape == tb.shape)


class RemoveIdentity(RewriteRule):
    """Identity(x) -> x."""

    name = "remove-identity"

    def pattern(self, op, x):
        return op.Identity(x)

    def check(self, m, x):
        if x.type is not None and not isinstance(x.type, TensorType):
            return "sequence/optional Identity is kept"

    def rewrite(self, op, x):
        return x


class RemoveInferenceDropout(RewriteRule):
    """Dropout(x) at inference (no training_mode, or a constant false one) -> x."""

    name = "remove-inference-dropout"

    def pattern(self, op, x):
        return op.Dropout(x, _allow_other_inputs=True)

    def check(self, m, x):
        node = m.root
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = get_const(node.inputs[2])
            if mode is None or bool(np.any(mode)):
                return "training_mode is not a constant false"
        if node.attr("is_test", 1) == 0 and "is_test" in node.attributes:
            return "legacy Dropout in training mode (is_test=0)"
        if len(node.outputs) > 1 and (node.outputs[1].has_uses() or node.outputs[1].is_graph_output()):
            return "the mask output is used"

    def rewrite(self, op, x):
        return x


class RemoveNoOpCast(RewriteRule):
    """Cast(x, to=T) -> x when x already has element type T."""

    name = "remove-noop-cast"

    def pattern(self, op, x):
        return op.Cast(x, _name="cast")

    def check(self, m, x, cast):
        if not isinstance(x.type, TensorType) or int(x.type.dtype) != cast.attr("to"):
            return "input dtype unknown or different"

    def rewrite(self, op, x):
        return x


def _neutral_rule(op_name: str, neutral: float, commutes: bool):
    class Rule(RewriteRule):
        __doc__ = f"{op_name}(x, {neutral:g}) -> x when the output has x's type."
        name = f"remove-{op_name.lower()}-by-{'one' if neutral == 1 else 'zero'}"

        def pattern(self, op, x):
            return getattr(op, op_name)(x, Const(neutral))

        def check(self, m, x):
            if not same_type(x, m.root.output):
                return "types not known equal (broadcast possible)"

        def rewrite(self, op, x):
            return x

    Rule.__name__ = Rule.__qualname__ = f"Remove{op_name}Neutral"
    return Rule


RemoveAddZero = _neutral_rule("Add", 0.0, True)
RemoveSubZero = _neutral_rule("Sub", 0.0, False)
RemoveMulOne = _neutral_rule("Mul", 1.0, True)
RemoveDivOne = _neutral_rule("Div", 1.0, False)


class RemoveInverseTransposes(RewriteRule):
    """Transpose(Transpose(x, p), q) -> x when q undoes p."""

    name = "remove-inverse-transposes"

    def pattern(self, op, x):
        return op.Transpose(op.Transpose(x, _name="first"), _name="second")

    def check(self, m, x, first, second):
        p, q = first.attr("perm"), second.attr("perm")
        if p is None or q is None:
            rank = x.type.rank if isinstance(x.type, TensorType) else None
            if rank is None:
                return "default perm on a value of unknown rank"
            p = p or tuple(reversed(range(rank)))
            q = q or tuple(reversed(range(rank)))
        if [p[i] for i in q] != list(range(len(p))):
            return "permutations do not cancel"

    def rewrite(self, op, x):
        return x


class RemoveNoOpReshape(RewriteRule):
    """Reshape(x, s) -> x when x's static shape already is the output's."""

    name = "remove-noop-reshape"

    def pattern(self, op, x, shape):
        return op.Reshape(x, shape)

    def check(self, m, x, shape):
        if not same_type(x, m.root.output):
            return "shapes not known equal"

    def rewrite(self, op, x):
        return x


class RemoveSqueezeUnsqueeze(RewriteRule):
    """Squeeze(Unsqueeze(x, axes), axes) -> x (same axes, opset >= 13 inputs or attributes)."""

    name = "remove-squeeze-unsqueeze"

    def pattern(self, op, x):
        return op.Squeeze(op.Unsqueeze(x, _allow_other_inputs=True, _name="unsq"),
                          _allow_other_inputs=True, _name="sq")

    def check(self, m, x, unsq, sq):
        a, b = _axes(unsq), _axes(sq)
        if a is None or b is None or sorted(a) != sorted(b):
            return "axes differ or are not constant"

    def rewrite(self, op, x):
        return x


def _axes(node):
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = get_const(node.inputs[1])
        return None if arr is None else [int(v) for v in arr.ravel()]
    axes = node.attr("axes")
    return None if axes is None else list(axes)


@register_pass
@dataclasses.dataclass(frozen=True)
class EliminateIdentity(PatternPass):
    """Bypass ops that return their input: Identity, inference Dropout, no-op Cast/Reshape, x+0, x*1, ..."""

    name = "eliminate-identity"
    rules = (RemoveIdentity, RemoveInferenceDropout, RemoveNoOpCast, RemoveAddZero,
             RemoveSubZero, RemoveMulOne, RemoveDivOne, RemoveInverseTransposes,
             RemoveNoOpReshape, RemoveSqueezeUnsqueeze)
