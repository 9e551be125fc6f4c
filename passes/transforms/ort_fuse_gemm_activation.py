"""Gemm + activation -> ``com.microsoft.FusedGemm`` (ORT's CPU kernel applies the activation to
the product in place, no second pass over the output).

    y = Relu(Gemm(a, B, c, transB=1))   ->   y = FusedGemm(a, B, c, transB=1, activation="Relu")

FusedGemm names its activation's parameters ``activation_alpha``/``activation_beta`` (not
FusedConv's ``activation_params``). Activations fused: Relu, Sigmoid, Tanh, LeakyRelu(alpha),
HardSigmoid(alpha, beta), Elu(alpha), Softsign, ThresholdedRelu(alpha) -- those ORT's own
Gemm-activation fusion accepts on CPU. Clip is not one of them: a Gemm + Clip stays as it is.
float32 only; the Gemm output must be read by the activation alone. ``-O3`` for ``--target ort``.
"""

from __future__ import annotations

import dataclasses

from irlib import Node
from passes.registry import register_pass
from passes.rewrite import RewritePattern
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_conv_bn import copy_attributes
from passes.transforms.ort_common import MS_DOMAIN, OrtPatternPass, is_float32, is_std

__all__ = ["OrtFuseGemmActivation", "GemmActivation"]

#: activation -> (its attributes, with their ONNX defaults)
ACTIVATIONS = {
    "Relu": {}, "Sigmoid": {}, "Tanh": {}, "Softsign": {},
    "LeakyRelu": {"alpha": 0.01}, "Elu": {"alpha": 1.0}, "ThresholdedRelu": {"alpha": 1.0},
    "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
}


class GemmActivation(RewritePattern):
    """Act(Gemm(a, B, c)) -> FusedGemm(a, B, c, activation=Act)."""

    name = "gemm-activation"
    root_ops = tuple(ACTIVATIONS)

    def match_and_rewrite(self, act: Node, rewriter: PatternRewriter) -> bool | str:
        if not is_std(act, *ACTIVATIONS):
            return False
        x = act.inputs[0]
        gemm = x.producer() if x is not None else None
        if not is_std(gemm, "Gemm"):
            return False
        if x.is_graph_output() or x.num_uses() != 1:
            return "Gemm output has other readers"
        if not is_float32(gemm.inputs[0]) or not is_float32(act.output):
            return "FusedGemm runs float32 only"
        if any(a.ref_attr_name for n in (gemm, act) for a in n.attributes.values()):
            return "attribute refers to a function parameter"
        attrs = {**copy_attributes(gemm), "activation": act.op_type}
        for k, default in ACTIVATIONS[act.op_type].items():
            attrs[f"activation_{k}"] = float(act.attr(k, default))
        fused = rewriter.make_node("FusedGemm", list(gemm.inputs), attrs, domain=MS_DOMAIN,
                                   name=gemm.name or act.name)
        ok = rewriter.replace([act.output], [fused.output], matched=[act, gemm], anchor=act)
        return True if ok else "replacement would rename a graph input, initializer or output"


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtFuseGemmActivation(OrtPatternPass):
    """Fuse Gemm + Relu/Sigmoid/Tanh/LeakyRelu/HardSigmoid/Elu/... into com.microsoft FusedGemm."""

    name = "ort-fuse-gemm-activation"
    rules = (GemmActivation,)
