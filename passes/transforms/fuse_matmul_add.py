"""MatMul + Add -> Gemm, for a 2-D product with a constant 2-D weight.

``Add(MatMul(a, B), c)`` is ``Gemm(a, B, c)`` when ``a`` is 2-D ``[M, K]``, ``B`` a constant
``[K, N]`` and ``c`` broadcasts to ``[M, N]`` the way Gemm's C does (unidirectionally: ``c`` never
makes the output bigger). Shapes must be known: ``c``'s static shape is checked dimension by
dimension, a symbolic ``M`` only accepts a ``c`` without a row dimension (or with 1 there).

Gemm is emitted only when the model's opset runs it for that dtype (Gemm-7 and later broadcast C;
int32/int64 need Gemm-9, bfloat16 Gemm-13), so the result is still standard, portable ONNX.
"""

from __future__ import annotations

import dataclasses

from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternPass, RewriteRule, op_accepts

__all__ = ["FuseMatMulAdd", "MatMulAddToGemm", "gemm_c_fits"]


def gemm_c_fits(c_shape, m, n) -> str | None:
    """None when a C of static shape ``c_shape`` broadcasts unidirectionally to ``[m, n]``
    (``m`` may be symbolic: a str or None), else the reason it does not."""
    if c_shape is None or any(not isinstance(d, int) for d in c_shape):
        return "bias shape is not static"
    if len(c_shape) > 2:
        return f"bias of rank {len(c_shape)} would grow the output"
    full = (1,) * (2 - len(c_shape)) + tuple(c_shape)
    if full[1] not in (1, n):
        return f"bias has {full[1]} columns, the product {n}"
    if full[0] != 1 and full[0] != m:
        return f"bias has {full[0]} rows, the product {m}"
    return None


class MatMulAddToGemm(RewriteRule):
    """Add(MatMul(a, B), c) -> Gemm(a, B, c) when a is 2-D, B a constant 2-D weight."""

    name = "matmul-add-to-gemm"

    def pattern(self, op, a, b, c):
        return op.Add(op.MatMul(a, b, _name="matmul"), c)

    def check(self, m, a, b, c):
        if m.opset is not None and m.opset < 7:
            return "Gemm before opset 7 needs broadcast=1"
        if a.shape is None or len(a.shape) != 2:
            return "MatMul input is not known to be 2-D"
        weight = get_const(b)
        if weight is None or weight.ndim != 2:
            return "MatMul weight is not a constant 2-D tensor"
        if a.dtype is None or a.dtype != c.dtype or a.dtype != b.dtype:
            return "operand dtypes differ or are unknown"
        if not op_accepts("Gemm", m.opset, a.dtype):
            return f"Gemm at opset {m.opset} does not take {a.dtype.name}"
        return gemm_c_fits(c.shape, a.shape[0], weight.shape[1])

    def rewrite(self, op, a, b, c, matmul):
        return op.Gemm(a, b, c, _name=matmul.name)


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseMatMulAdd(PatternPass):
    """Fuse MatMul (2-D input, constant 2-D weight) + Add of a broadcastable bias into Gemm."""

    name = "fuse-matmul-add"
    rules = (MatMulAddToGemm,)
