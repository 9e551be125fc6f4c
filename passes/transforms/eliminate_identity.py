"""Identity elimination: ops that compute their input unchanged are bypassed.

Each rule is valid only when the replacement has exactly the node's output type: where that
depends on shapes or dtypes (``x + 0`` broadcasts, ``Reshape`` may change the shape) the rule
asks for known types and refuses otherwise (run ``infer-shapes`` first, as the -O levels do).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import TensorType, Value
from passes.constants import get_const, get_scalar
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


def _static_shape(v: Value) -> tuple | None:
    t = v.type
    return t.shape if isinstance(t, TensorType) and t.is_static else None


def _types_agree(x: Value, y: Value) -> bool:
    """False only when both types are known tensors and differ (an op's output must not change
    x's dtype or, where known, its rank and static dims)."""
    tx, ty = x.type, y.type
    if not (isinstance(tx, TensorType) and isinstance(ty, TensorType)):
        return True
    if tx.dtype != ty.dtype:
        return False
    if tx.shape is None or ty.shape is None:
        return True
    return len(tx.shape) == len(ty.shape) and all(
        not (isinstance(a, int) and isinstance(b, int)) or a == b for a, b in zip(tx.shape, ty.shape))


class RemoveNoOpExpand(RewriteRule):
    """Expand(x, s) -> x when broadcasting x's static shape with s gives x's shape."""

    name = "remove-noop-expand"

    def pattern(self, op, x, shape):
        return op.Expand(x, shape)

    def check(self, m, x, shape):
        if same_type(x, m.root.output):
            return None
        dims, s = _static_shape(x), get_const(shape)
        if dims is None or s is None:
            return "shape of x or the target shape not known"
        try:
            out = np.broadcast_shapes(dims, tuple(int(d) for d in s.ravel()))
        except ValueError:
            return "shapes do not broadcast"
        if tuple(out) != tuple(dims) or not _types_agree(x, m.root.output):
            return "Expand changes the shape"

    def rewrite(self, op, x):
        return x


def _slice_params(node):
    """(starts, ends, axes, steps) of a Slice as int lists, or None when not constant. Opset 10
    moved them from attributes to inputs; a Slice with inputs beyond the data uses the new form."""
    if len(node.inputs) >= 3:
        vals = []
        for i in range(1, 5):
            v = node.inputs[i] if i < len(node.inputs) else None
            if v is None:
                vals.append(None)
                continue
            arr = get_const(v)
            if arr is None:
                return None
            vals.append([int(a) for a in arr.ravel()])
        starts, ends, axes, steps = vals
    else:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
        if starts is None or ends is None:
            return None
        starts, ends = list(starts), list(ends)
        axes = None if axes is None else list(axes)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    return starts, ends, axes, steps


_INT64_MAX = int(np.iinfo(np.int64).max)


class RemoveFullSlice(RewriteRule):
    """Slice(x, starts, ends, axes, steps) -> x when every slice takes a whole axis in order."""

    name = "remove-full-slice"

    def pattern(self, op, x):
        return op.Slice(x, _allow_other_inputs=True, _name="sl")

    def check(self, m, x, sl):
        params = _slice_params(sl)
        if params is None:
            return "slice bounds are not constant"
        shape = x.shape if isinstance(x.type, TensorType) else None
        for start, end, axis, step in zip(*params):
            if step != 1:
                return "a step is not 1"
            if shape is not None and not -len(shape) <= axis < len(shape):
                return "axis out of range"
            dim = shape[axis] if shape is not None else None
            if isinstance(dim, int):
                lo = start + dim if start < 0 else start
                hi = end + dim if end < 0 else end
                if max(lo, 0) != 0 or min(hi, dim) < dim:
                    return "a slice does not cover its axis"
            elif start != 0 or end < _INT64_MAX:
                return "a slice over a dynamic axis is not provably full"
        if not _types_agree(x, m.root.output):
            return "types differ"

    def rewrite(self, op, x):
        return x


class RemoveZeroPad(RewriteRule):
    """Pad(x, pads=0...) -> x (any mode: nothing is added)."""

    name = "remove-zero-pad"

    def pattern(self, op, x):
        return op.Pad(x, _allow_other_inputs=True, _name="pad")

    def check(self, m, x, pad):
        if len(pad.inputs) > 1 and pad.inputs[1] is not None:
            pads = get_const(pad.inputs[1])
            if pads is None:
                return "pads are not constant"
            pads = pads.ravel().tolist()
        else:
            pads = pad.attr("pads", pad.attr("paddings"))
            if pads is None:
                return "no pads"
        if any(int(p) != 0 for p in pads):
            return "pads are not all zero"
        if not _types_agree(x, m.root.output):
            return "types differ"

    def rewrite(self, op, x):
        return x


class MergeReshapes(RewriteRule):
    """Reshape(Reshape(x, s1), s2) -> Reshape(x, s2) when s2 does not copy a dim (no 0, or
    allowzero=1) from the intermediate shape; a 0 copying a static dim is resolved first."""

    name = "merge-reshapes"

    def pattern(self, op, x, s1, s2):
        return op.Reshape(op.Reshape(x, s1, _name="first"), s2, _name="second")

    def check(self, m, x, s1, s2, first, second):
        shape = get_const(s2)
        if shape is None:
            return "second shape is not constant"
        if 0 in shape.ravel().tolist() and not second.attr("allowzero", 0):
            mid = _static_shape(first.output)
            dims = shape.ravel().tolist()
            if mid is None or any(d == 0 and i >= len(mid) for i, d in enumerate(dims)):
                return "second shape copies a dim of an unknown intermediate shape"

    def rewrite(self, op, x, s2, first, second):
        shape = get_const(s2)
        allowzero = second.attr("allowzero", 0)
        attrs = {"allowzero": allowzero} if "allowzero" in second.attributes else {}
        if 0 in shape.ravel().tolist() and not allowzero:
            mid = _static_shape(first.output)
            dims = [mid[i] if d == 0 else d for i, d in enumerate(shape.ravel().tolist())]
            s2 = op.constant(np.array(dims, np.int64))
        return op.Reshape(x, s2, **attrs)


class RemoveReluBeforeClip(RewriteRule):
    """Clip(Relu(x), min >= 0, max) -> Clip(x, min, max): the clip already floors at min."""

    name = "remove-relu-before-clip"

    def pattern(self, op, x):
        return op.Clip(op.Relu(x), _allow_other_inputs=True, _name="clip")

    def check(self, m, x, clip):
        if len(clip.inputs) > 1:
            lo = get_scalar(clip.inputs[1]) if clip.inputs[1] is not None else None
        else:
            lo = clip.attr("min")
        if lo is None or not lo >= 0:
            return "min is not a constant >= 0"

    def rewrite(self, op, x, clip):
        return op.Clip(x, *clip.inputs[1:], **dict(clip.attributes))


class RemoveReluRelu(RewriteRule):
    """Relu(Relu(x)) -> Relu(x)."""

    name = "remove-relu-relu"

    def pattern(self, op, x):
        return op.Relu(op.Relu(x, _name="inner"))

    def rewrite(self, op, inner):
        return inner.output


class RemoveUnsqueezeSqueeze(RewriteRule):
    """Unsqueeze(Squeeze(x, axes), axes) -> x: the squeezed size-1 dims come back where they were
    (axes given, or x's static shape tells which dims Squeeze drops)."""

    name = "remove-unsqueeze-squeeze"

    def pattern(self, op, x):
        return op.Unsqueeze(op.Squeeze(x, _allow_other_inputs=True, _name="sq"),
                            _allow_other_inputs=True, _name="unsq")

    def check(self, m, x, sq, unsq):
        a, b = _axes(sq), _axes(unsq)
        if a is None:
            dims = _static_shape(x)
            if dims is None or len(sq.inputs) > 1 and sq.inputs[1] is not None:
                return "squeeze axes unknown"
            a = [i for i, d in enumerate(dims) if d == 1]
        if b is None:
            return "unsqueeze axes are not constant"
        rank = x.type.rank if isinstance(x.type, TensorType) else None
        if rank is not None:
            a = sorted(i + rank if i < 0 else i for i in a)
            b = sorted(i + rank if i < 0 else i for i in b)
        if sorted(a) != sorted(b):
            return "axes differ"
        if not _types_agree(x, m.root.output):
            return "types differ"

    def rewrite(self, op, x):
        return x


@register_pass
@dataclasses.dataclass(frozen=True)
class EliminateIdentity(PatternPass):
    """Bypass ops that return their input: Identity, inference Dropout, no-op Cast/Reshape/Expand/Slice/Pad, x+0, x*1, ..."""

    name = "eliminate-identity"
    rules = (RemoveIdentity, RemoveInferenceDropout, RemoveNoOpCast, RemoveAddZero,
             RemoveSubZero, RemoveMulOne, RemoveDivOne, RemoveInverseTransposes,
             RemoveNoOpReshape, RemoveSqueezeUnsqueeze, RemoveUnsqueezeSqueeze, RemoveNoOpExpand,
             RemoveFullSlice, RemoveZeroPad, MergeReshapes, RemoveReluBeforeClip, RemoveReluRelu)
