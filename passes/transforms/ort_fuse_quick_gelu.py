"""x * Sigmoid(alpha * x) (SiLU / Swish, and QuickGelu's alpha = 1.702) ->
``com.microsoft.QuickGelu(x, alpha)``: one pass over the tensor instead of two, no intermediate.

    y = Mul(x, Sigmoid(x))                 ->   y = QuickGelu(x, alpha=1.0)
    y = Mul(x, Sigmoid(Mul(x, 1.702)))     ->   y = QuickGelu(x, alpha=1.702)

float32 only (ORT's CPU kernel); the Sigmoid (and the scaling Mul) must be read only inside the
pattern, the scale a constant scalar. ``-O3`` for ``--target ort`` only.
"""

from __future__ import annotations

import dataclasses

from passes.registry import register_pass
from passes.rewrite import Const, RewriteRule
from passes.transforms.fuse_layer_norm import scalar_const
from passes.transforms.ort_common import MS_DOMAIN, OrtPatternPass, is_float32

__all__ = ["OrtFuseQuickGelu", "SiluToQuickGelu", "ScaledSigmoidToQuickGelu"]


class SiluToQuickGelu(RewriteRule):
    """Mul(x, Sigmoid(x)) -> QuickGelu(x, alpha=1)."""

    name = "silu-to-quick-gelu"

    def pattern(self, op, x):
        return op.Mul(x, op.Sigmoid(x))

    def check(self, m, x):
        if not is_float32(x) or not is_float32(m.root.output):
            return "QuickGelu runs float32 only"
        if x.shape is None or m.root.output.shape != x.shape:
            return "the product's shape is not known to be x's"

    def rewrite(self, op, x):
        return op.QuickGelu(x, alpha=1.0, _domain=MS_DOMAIN)


class ScaledSigmoidToQuickGelu(RewriteRule):
    """Mul(x, Sigmoid(Mul(x, alpha))) -> QuickGelu(x, alpha)."""

    name = "scaled-sigmoid-to-quick-gelu"

    def pattern(self, op, x):
        return op.Mul(x, op.Sigmoid(op.Mul(x, Const(name="alpha"))))

    def check(self, m, x, alpha):
        if not is_float32(x) or not is_float32(m.root.output):
            return "QuickGelu runs float32 only"
        if x.shape is None or m.root.output.shape != x.shape:
            return "the product's shape is not known to be x's"
        a = scalar_const(alpha, x)
        if a is None:
            return "the Sigmoid's scale is not a scalar constant"
        m.bindings["_alpha"] = a

    def rewrite(self, op, x, _alpha):
        return op.QuickGelu(x, alpha=float(_alpha), _domain=MS_DOMAIN)


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtFuseQuickGelu(OrtPatternPass):
    """Fuse x * Sigmoid(alpha * x) (SiLU/Swish) into com.microsoft QuickGelu."""

    name = "ort-fuse-quick-gelu"
    rules = (ScaledSigmoidToQuickGelu, SiluToQuickGelu)
