"""Conv followed by Mul by a constant per-channel scale -> scaled weights and bias.

``Conv(x, W, b) * c`` equals ``Conv(x, W * c[m], b * c)`` when ``c`` holds one value per output
channel ``m`` (the shapes accepted are those of ``fuse-conv-add``: ``[M,1,1]``, ``[1,M,1,1]``, a
scalar ...). The weight and the bias (if any) must be constants; the product is computed in
float64 and stored in the weight's dtype.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import DType
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import Const, PatternPass, RewriteRule
from passes.transforms.fuse_conv_add import per_channel
from passes.transforms.fuse_conv_bn import conv_constants, copy_attributes, is_float, scale_conv

__all__ = ["FuseConvMul", "ConvMulScale"]


class ConvMulScale(RewriteRule):
    """Mul(Conv(x, W, b), c) -> Conv(x, W * c, b * c) for a constant per-channel c."""

    name = "conv-mul-scale"

    def pattern(self, op, x, w):
        return op.Mul(op.Conv(x, w, _allow_other_inputs=True, _name="conv"), Const(name="c"))

    def check(self, m, w, conv, c):
        found = conv_constants(conv, w)
        if isinstance(found, str):
            return found
        weight, bias = found
        factor = get_const(c)
        if not is_float(factor) or DType.from_numpy(factor.dtype) != DType.from_numpy(weight.dtype):
            return "constant is not of the Conv's floating dtype"
        vector = per_channel(factor, weight.ndim, weight.shape[0])
        if isinstance(vector, str):
            return vector
        s = vector.astype(np.float64)
        m.bindings["_folded"] = scale_conv(weight, bias, s, np.zeros_like(s))

    def rewrite(self, op, x, conv, _folded):
        weight, bias = _folded
        if len(conv.inputs) < 3 or conv.inputs[2] is None:
            return op.Conv(x, op.constant(weight), _name=conv.name, **copy_attributes(conv))
        return op.Conv(x, op.constant(weight), op.constant(bias), _name=conv.name,
                       **copy_attributes(conv))


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseConvMul(PatternPass):
    """Fold Mul by a constant per-channel scale into the Conv before it (weights and bias)."""

    name = "fuse-conv-mul"
    rules = (ConvMulScale,)
