"""Chains of Mul/Div by constant scalars -> one Mul.

``x * a * b``, ``x / a * b``, ``x * a / b`` and ``x / a / b`` (``a``, ``b`` constants holding one
element) become ``x * c`` with ``c = a * b``, ``b / a``, ``a / b`` or ``1 / (a * b)``, computed in
float64 and stored in x's dtype. Longer chains fold pairwise (the driver revisits the result).

This reassociates floating point: the result may differ from the original in the last bits
(fp32: relative error ~1e-7 per folded op; the tests allow rtol 1e-6), and dividing becomes
multiplying by a rounded reciprocal. Integer chains are folded only for Mul * Mul (exact in
wrap-around arithmetic); an integer Div truncates, so it is never rewritten. A folded constant
that overflows, underflows to zero or a subnormal, or is not finite is refused (``x * 1e30 *
1e-30`` stays), as are Div by zero or non-finite constants.

The folded constant has the broadcast shape of ``a`` and ``b`` (``[1]`` and ``[]`` give ``[1]``),
so the output keeps the original's shape exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import Const, PatternPass, RewriteRule
from passes.transforms.fuse_conv_bn import is_float

__all__ = ["FoldScalarChains", "fold_pair"]


def fold_pair(inner: str, outer: str, a: np.ndarray, b: np.ndarray) -> np.ndarray | str:
    """The constant ``c`` with ``(x inner a) outer b == x * c``, in ``a``'s dtype, or a reason."""
    if a.size != 1 or b.size != 1:
        return "not scalar constants"
    if a.dtype != b.dtype:
        return "constants of different dtypes"
    shape = np.broadcast_shapes(a.shape, b.shape)
    if not is_float(a):
        if inner == outer == "Mul" and np.issubdtype(a.dtype, np.integer):
            with np.errstate(over="ignore"):
                return (a.reshape(()) * b.reshape(())).astype(a.dtype).reshape(shape)
        return "integer Div truncates"
    a64, b64 = float(a.reshape(()).astype(np.float64)), float(b.reshape(()).astype(np.float64))
    divisors = ([a64] if inner == "Div" else []) + ([b64] if outer == "Div" else [])
    if any(d == 0.0 or not np.isfinite(d) for d in divisors) or not np.isfinite([a64, b64]).all():
        return "division by zero or non-finite constant"
    c = (a64 if inner == "Mul" else 1.0 / a64) * (b64 if outer == "Mul" else 1.0 / b64)
    info = np.finfo(np.float32 if a.dtype.name == "bfloat16" else a.dtype)
    if not (float(info.tiny) <= abs(c) <= float(info.max)):
        return "folded constant would overflow or underflow"
    return np.full(shape, c, np.float64).astype(a.dtype)


def _chain_rule(inner: str, outer: str):
    class Rule(RewriteRule):
        __doc__ = f"{outer}({inner}(x, a), b) -> Mul(x, c) for constant scalars a, b."
        name = f"fold-{inner.lower()}-{outer.lower()}"

        def pattern(self, op, x):
            return getattr(op, outer)(getattr(op, inner)(x, Const(name="a")), Const(name="b"))

        def check(self, m, a, b):
            c = fold_pair(inner, outer, get_const(a), get_const(b))
            if isinstance(c, str):
                return c
            m.bindings["_c"] = c

        def rewrite(self, op, x, _c):
            return op.Mul(x, op.constant(_c))

    Rule.__name__ = Rule.__qualname__ = f"Fold{inner}{outer}"
    return Rule


FoldMulMul = _chain_rule("Mul", "Mul")
FoldDivMul = _chain_rule("Div", "Mul")
FoldMulDiv = _chain_rule("Mul", "Div")
FoldDivDiv = _chain_rule("Div", "Div")


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldScalarChains(PatternPass):
    """Fold chains of Mul/Div by constant scalars (x*a*b, x/a*b, ...) into one Mul."""

    name = "fold-scalar-chains"
    rules = (FoldMulMul, FoldDivMul, FoldMulDiv, FoldDivDiv)
