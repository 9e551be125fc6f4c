"""RMSNorm written out by exporters -> one ``RMSNormalization`` node (ONNX opset >= 23).

The decomposition (T5, LLaMA and most LLM exports)::

    ms = ReduceMean(Pow(x, 2) | Mul(x, x), axes)        axes: the last k axes, keepdims=1
    n  = x / Sqrt(ms + eps)        or x * Reciprocal(Sqrt(ms + eps)), x * (1 / Sqrt(..)),
                                   x * Pow(ms + eps, -0.5)
    y  = Mul(n, gamma)             gamma optional (a ones constant is used without it)

is ``RMSNormalization(x, gamma, axis=-k, epsilon=eps, stash_type=s)``. RMSNormalization first
appeared in opset 23; ONNX Runtime 1.32 runs it on CPU (float, float16, double). At an older opset
the pattern is left alone: ``convert-opset{target=23}`` first if you want it fused.

Precision, as for LayerNormalization (see fuse_layer_norm.py): the standard computes
``Cast(x, stash_type)``, normalizes, casts back to x's type, then multiplies by the scale. So a
decomposition computing in x's own type becomes ``stash_type`` = x's type (exact), and the LLaMA
variant ``Cast(x16, float)`` ... ``Cast(n, float16)`` then ``Mul(gamma16)`` absorbs both Casts with
``stash_type=1``. Anything else (gamma applied before the Cast back) is left alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import Node
from passes.registry import register_pass
from passes.rewrite import PatternPass, op_accepts
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_layer_norm import (
    NoMatch, RecognitionPattern, affine_tail, as_value, cast_variant, check_eps, commit, is_op,
    rank, reciprocal_sqrt, reduce_axes, scalar_const, sole_user, trailing_axis,
)

__all__ = ["FuseRMSNorm", "RMSNormPattern"]


def _squared(node: Node | None):
    """``x`` when ``node`` is ``Pow(x, 2)`` or ``Mul(x, x)``, else None."""
    if is_op(node, "Mul") and node.inputs[0] is node.inputs[1]:
        return node.inputs[0]
    if is_op(node, "Pow") and scalar_const(node.inputs[1]) == 2.0:
        return node.inputs[0]
    return None


class RMSNormPattern(RecognitionPattern):
    """x / sqrt(mean(x^2) + eps) (* gamma) -> RMSNormalization."""

    name = "rms-norm"
    root_ops = ("ReduceMean",)

    def find(self, ms: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        sq_node = ms.inputs[0].producer() if ms.inputs[0] is not None else None
        x = _squared(sq_node)
        if x is None or sole_user(sq_node.output) is not ms:
            raise NoMatch()
        add = sole_user(ms.output)
        if not is_op(add, "Add"):
            raise NoMatch()
        other = add.inputs[1] if add.inputs[0] is ms.output else add.inputs[0]
        nodes = [sq_node, ms, add]
        norm = reciprocal_sqrt(add.output, x, nodes)
        eps = check_eps(scalar_const(other, x))

        axes = reduce_axes(ms, opset, rank(x))
        if isinstance(axes, str):
            raise NoMatch(axes)
        axis = trailing_axis(axes)
        if axis is None:
            raise NoMatch(f"ReduceMean over axes {list(axes)}, not the last ones")
        if x.dtype is None:
            raise NoMatch("the input's element type is unknown")

        source, last, stash = x, norm, int(x.dtype)
        cast = cast_variant(x, {sq_node, norm}, norm, nodes)
        if cast is not None:
            (source, last), stash = cast, int(x.dtype)
        dtype = source.dtype
        if not op_accepts("RMSNormalization", opset, dtype):
            raise NoMatch(f"RMSNormalization is not in opset {opset} for {dtype.name}")
        want = x.shape[axis:] if x.shape is not None else None
        if want is None or not all(isinstance(d, int) for d in want):
            raise NoMatch("the normalized dimensions are not static")

        last, gamma, _ = affine_tail(last, x, axis, dtype, nodes, with_beta=False)
        if gamma is None:
            gamma = np.ones(want, dtype.numpy)
        node = rewriter.make_node("RMSNormalization", [source, as_value(gamma, rewriter)],
                                  {"axis": axis, "epsilon": eps, "stash_type": stash},
                                  name=last.name or ms.name)
        return commit(rewriter, last, node.output, nodes)


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseRMSNorm(PatternPass):
    """Fuse x / sqrt(mean(x^2) + eps) * gamma into RMSNormalization (opset >= 23)."""

    name = "fuse-rms-norm"
    rules = (RMSNormPattern,)
