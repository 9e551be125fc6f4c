"""BatchNormalization (inference) after MatMul/Gemm with constant weights -> folded weights.

On a 2-D tensor ``[rows, N]`` BatchNormalization scales and shifts each column ``n``:
``BN(y) = y * s + t`` (see :func:`fuse_conv_bn.bn_affine`). Column ``n`` of ``A @ B`` reads only
column ``n`` of ``B``, so:

- ``BN(MatMul(a, B))`` -> ``Gemm(a, B * s, t)``, or ``Add(MatMul(a, B * s), t)`` for a dtype
  the model's Gemm does not take; refused before opset 7 (Add and Gemm broadcast only with
  ``broadcast=1`` there);
- ``BN(Gemm(a, B, C))`` -> ``Gemm(a, B', C')`` with ``B`` scaled along its ``N`` axis (rows when
  ``transB=1``), ``C' = beta * C * s + t`` and ``beta = 1``; ``alpha`` and ``transA`` stay.

Only 2-D products qualify (a MatMul whose first operand has another rank would put BN's channel
axis somewhere else); ``B`` (and Gemm's ``C``) must be constant floating tensors. A separate pass
from ``fuse-conv-bn`` so that each can be turned off alone; both share the BN checks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from passes.constants import get_const
from passes.registry import register_pass
from irlib import DType
from passes.rewrite import PatternPass, RewriteRule, attr_or_default, op_accepts
from passes.transforms.fuse_conv_bn import bn_affine, copy_attributes, is_float

__all__ = ["FuseGemmBatchNorm", "MatMulBatchNorm", "GemmBatchNorm"]


class MatMulBatchNorm(RewriteRule):
    """BatchNormalization(MatMul(a, B)) -> Gemm(a, B * s, t) for 2-D a and constant B."""

    name = "matmul-bn"

    def pattern(self, op, a, b, scale, bias, mean, var):
        return op.BatchNormalization(op.MatMul(a, b, _name="matmul"), scale, bias, mean, var,
                                     _name="bn")

    def check(self, m, a, b, bn):
        if m.opset is not None and m.opset < 7:
            return "Add/Gemm before opset 7 broadcast only with broadcast=1"
        weight = get_const(b)
        if weight is None or not is_float(weight) or weight.ndim != 2:
            return "MatMul weight is not a constant 2-D floating tensor"
        if a.shape is None or len(a.shape) != 2:
            return "MatMul input is not known to be 2-D"
        affine = bn_affine(bn, weight.shape[1], m.opset)
        if isinstance(affine, str):
            return affine
        s, t = affine
        m.bindings["_folded"] = ((weight.astype(np.float64) * s[None, :]).astype(weight.dtype),
                                 t.astype(weight.dtype))
        m.bindings["_gemm"] = op_accepts("Gemm", m.opset, DType.from_numpy(weight.dtype))

    def rewrite(self, op, a, matmul, _folded, _gemm):
        weight, shift = _folded
        if _gemm:
            return op.Gemm(a, op.constant(weight), op.constant(shift), _name=matmul.name)
        y = op.MatMul(a, op.constant(weight), _name=matmul.name)
        return op.Add(y, op.constant(shift))


class GemmBatchNorm(RewriteRule):
    """BatchNormalization(Gemm(a, B, C)) -> Gemm(a, B', C') with constant B (and C)."""

    name = "gemm-bn"

    def pattern(self, op, a, b, scale, bias, mean, var):
        return op.BatchNormalization(op.Gemm(a, b, _allow_other_inputs=True, _name="gemm"),
                                     scale, bias, mean, var, _name="bn")

    def check(self, m, b, gemm, bn):
        if m.opset is not None and m.opset < 7:
            return "Gemm before opset 7 broadcasts C only with broadcast=1"
        weight = get_const(b)
        if weight is None or not is_float(weight) or weight.ndim != 2:
            return "Gemm B is not a constant 2-D floating tensor"
        trans_b = attr_or_default(gemm, "transB", m.opset) or 0
        n = weight.shape[0] if trans_b else weight.shape[1]
        c_value = gemm.inputs[2] if len(gemm.inputs) > 2 else None
        c = None
        if c_value is not None:
            c = get_const(c_value)
            if c is None or c.dtype != weight.dtype:
                return "Gemm C is not a constant of B's dtype"
            if c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, n)):
                return "Gemm C does not broadcast to the output"
        affine = bn_affine(bn, n, m.opset)
        if isinstance(affine, str):
            return affine
        s, t = affine
        scaled = weight.astype(np.float64) * (s[:, None] if trans_b else s[None, :])
        beta = attr_or_default(gemm, "beta", m.opset)
        beta = 1.0 if beta is None else float(beta)
        c64 = 0.0 if c is None else beta * c.astype(np.float64)
        new_c = c64 * s + t  # broadcasts C (scalar, [N], [1,N], [M,1], [M,N]) against [N]
        m.bindings["_folded"] = (scaled.astype(weight.dtype), new_c.astype(weight.dtype))

    def rewrite(self, op, a, gemm, _folded):
        weight, c = _folded
        attrs = copy_attributes(gemm, drop=("beta",))
        return op.Gemm(a, op.constant(weight), op.constant(c), _name=gemm.name, **attrs)


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseGemmBatchNorm(PatternPass):
    """Fold an inference BatchNormalization into the MatMul/Gemm (constant weights) before it."""

    name = "fuse-gemm-bn"
    rules = (MatMulBatchNorm, GemmBatchNorm)
