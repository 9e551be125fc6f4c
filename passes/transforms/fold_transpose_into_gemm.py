"""Transpose of a Gemm operand -> Gemm's ``transA``/``transB`` flag.

``Gemm(Transpose(a), b)`` is ``Gemm(a, b, transA=1 - transA)`` (Gemm operands are 2-D, so the
transpose is the swap ``perm=[1,0]``; an identity ``perm=[0,1]`` is simply dropped). The same holds
for ``B``. A 2-D ``MatMul(Transpose(a), b)`` becomes ``Gemm(a, b, transA=1)`` from opset 11 (where
Gemm's C is optional) when the opset runs Gemm for that dtype. The Transpose must have no other
reader (the driver refuses otherwise), so a node is saved every time.
"""

from __future__ import annotations

import dataclasses

from passes.registry import register_pass
from passes.rewrite import PatternPass, RewriteRule, attr_or_default, op_accepts
from passes.transforms.fuse_conv_bn import copy_attributes

__all__ = ["FoldTransposeIntoGemm", "TransposeIntoGemmA", "TransposeIntoGemmB",
           "TransposeMatMulToGemmA", "TransposeMatMulToGemmB"]


def _swaps(t) -> bool | None:
    """True for a 2-D swap, False for the identity permutation, None for anything else."""
    perm = t.attr("perm")
    if perm is None:
        return True  # default: reverse the axes, a swap for a 2-D operand
    perm = tuple(perm)
    return {(1, 0): True, (0, 1): False}.get(perm)


def _gemm_rule(operand: int):
    flag = "transA" if operand == 0 else "transB"

    class Rule(RewriteRule):
        __doc__ = f"Gemm with a transposed {'AB'[operand]} -> Gemm with {flag} flipped."
        name = f"transpose-into-gemm-{'ab'[operand]}"

        def pattern(self, op, x, other):
            t = op.Transpose(x, _name="t")
            ins = (t, other) if operand == 0 else (other, t)
            return op.Gemm(*ins, _allow_other_inputs=True, _name="gemm")

        def check(self, m, t):
            if _swaps(t) is None:
                return "Transpose is not a 2-D permutation"

        def rewrite(self, op, x, other, t, gemm):
            flipped = (attr_or_default(gemm, flag) or 0) ^ int(_swaps(t))
            ins = [x, other] if operand == 0 else [other, x]
            ins += list(gemm.inputs[2:])
            return op.Gemm(*ins, _name=gemm.name, **copy_attributes(gemm, **{flag: flipped}))

    Rule.__name__ = Rule.__qualname__ = f"TransposeIntoGemm{'AB'[operand]}"
    return Rule


TransposeIntoGemmA = _gemm_rule(0)
TransposeIntoGemmB = _gemm_rule(1)


def _matmul_rule(operand: int):
    flag = "transA" if operand == 0 else "transB"

    class Rule(RewriteRule):
        __doc__ = f"2-D MatMul with a transposed {'AB'[operand]} -> Gemm with {flag} (opset >= 11)."
        name = f"transpose-matmul-to-gemm-{'ab'[operand]}"

        def pattern(self, op, x, other):
            t = op.Transpose(x, _name="t")
            return op.MatMul(*((t, other) if operand == 0 else (other, t)), _name="matmul")

        def check(self, m, x, other, t):
            if m.opset is not None and m.opset < 11:
                return "Gemm without C needs opset 11"
            if _swaps(t) is None:
                return "Transpose is not a 2-D permutation"
            if any(v.shape is None or len(v.shape) != 2 for v in (x, other)):
                return "MatMul operands are not known to be 2-D"
            if not op_accepts("Gemm", m.opset, x.dtype):
                return f"Gemm at opset {m.opset} does not take this dtype"

        def rewrite(self, op, x, other, t, matmul):
            ins = (x, other) if operand == 0 else (other, x)
            return op.Gemm(*ins, _name=matmul.name, **{flag: int(_swaps(t))})

    Rule.__name__ = Rule.__qualname__ = f"TransposeMatMulToGemm{'AB'[operand]}"
    return Rule


TransposeMatMulToGemmA = _matmul_rule(0)
TransposeMatMulToGemmB = _matmul_rule(1)


@register_pass
@dataclasses.dataclass(frozen=True)
class FoldTransposeIntoGemm(PatternPass):
    """Fold a Transpose of a Gemm operand into transA/transB (and 2-D MatMul(Transpose) -> Gemm)."""

    name = "fold-transpose-into-gemm"
    rules = (TransposeIntoGemmA, TransposeIntoGemmB, TransposeMatMulToGemmA,
             TransposeMatMulToGemmB)
