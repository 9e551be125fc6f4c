"""Conv + activation -> ``com.microsoft.FusedConv`` (ONNX Runtime's CPU kernel applies the
activation to each output tile while it is still in cache).

    y = Relu(Conv(x, W, B))          ->   y = FusedConv(x, W, B, activation="Relu")
    y = Clip(Conv(x, W, B), 0, 6)    ->   y = FusedConv(x, W, B, activation="Clip",
                                                         activation_params=[0, 6])

The activations are those ORT's CPU kernel (MLAS) applies: Relu, Sigmoid, Tanh, LeakyRelu,
HardSigmoid and Clip with constant bounds (:func:`ort_common.activation_attrs`); the Conv must be
float32 (the only type of the CPU FusedConv kernel) and its output read by the activation alone.
The Conv's attributes carry over unchanged. ``-O3`` for ``--target ort`` only: the result runs
only under ONNX Runtime.
"""

from __future__ import annotations

import dataclasses

from irlib import Node
from passes.registry import register_pass
from passes.rewrite import RewritePattern
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_conv_bn import copy_attributes
from passes.transforms.ort_common import (
    MS_DOMAIN, OrtPatternPass, activation_attrs, is_float32, is_std,
)

__all__ = ["OrtFuseConvActivation", "ConvActivation"]

ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip")


class ConvActivation(RewritePattern):
    """Act(Conv(x, W, B)) -> FusedConv(x, W, B, activation=Act)."""

    name = "conv-activation"
    root_ops = ACTIVATIONS

    def match_and_rewrite(self, act: Node, rewriter: PatternRewriter) -> bool | str:
        if not is_std(act, *ACTIVATIONS):
            return False
        x = act.inputs[0]
        conv = x.producer() if x is not None else None
        if not is_std(conv, "Conv"):
            return False
        if x.is_graph_output() or x.num_uses() != 1:
            return "Conv output has other readers"
        if not is_float32(conv.inputs[0]) or not is_float32(act.output):
            return "FusedConv runs float32 only"
        if any(a.ref_attr_name for a in conv.attributes.values()):
            return "Conv attribute refers to a function parameter"
        opset = rewriter.model.opset() if rewriter.model is not None else None
        attrs = activation_attrs(act, opset)
        if isinstance(attrs, str):
            return attrs
        fused = rewriter.make_node("FusedConv", list(conv.inputs), {**copy_attributes(conv), **attrs},
                                   domain=MS_DOMAIN, name=conv.name or act.name)
        ok = rewriter.replace([act.output], [fused.output], matched=[act, conv], anchor=act)
        return True if ok else "replacement would rename a graph input, initializer or output"


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtFuseConvActivation(OrtPatternPass):
    """Fuse Conv + Relu/Sigmoid/Tanh/LeakyRelu/HardSigmoid/Clip into com.microsoft FusedConv."""

    name = "ort-fuse-conv-activation"
    rules = (ConvActivation,)
