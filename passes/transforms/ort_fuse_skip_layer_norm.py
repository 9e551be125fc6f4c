"""Residual Add + LayerNormalization -> ``com.microsoft.SkipLayerNormalization`` (ORT's CPU
kernel adds, normalizes and scales in one pass over each row).

    s = Add(x, skip)             ;  y = LayerNormalization(s, gamma, beta, axis=-1)
        ->  y, _, _, s' = SkipLayerNormalization(x, skip, gamma, beta[, bias])

- a bias Add before the residual (``Add(Add(MatMul, b), skip)``, BERT's post-LN blocks) goes into
  the kernel's ``bias`` input when ``b`` is a constant vector of the hidden size read only there;
- when the sum ``s`` has other readers (pre-LN transformers: ViT, GPT-2 carry it to the next
  block), they read the kernel's fourth output ``input_skip_bias_sum`` instead.

Conditions (those of ORT's CPU kernel): float32, ``x`` and ``skip`` of the same known 3-D shape
``[batch, seq, hidden]``, normalization over the last axis only, ``gamma`` (and ``beta``) a 1-D
vector of ``hidden``, ``stash_type`` 1, the LayerNormalization's Mean/InvStdDev outputs unused.
``-O3`` for ``--target ort`` only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import Node
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import RewritePattern
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_layer_norm import topo_order
from passes.transforms.ort_common import MS_DOMAIN, OrtPatternPass, is_float32, is_std

__all__ = ["OrtFuseSkipLayerNorm", "SkipLayerNorm"]


def _vector(value, hidden: int) -> bool:
    return value is not None and value.shape == (hidden,) and is_float32(value)


class SkipLayerNorm(RewritePattern):
    """LayerNormalization(Add(x, skip)) -> SkipLayerNormalization(x, skip, gamma, beta, bias)."""

    name = "skip-layer-norm"
    root_ops = ("LayerNormalization",)

    def match_and_rewrite(self, ln: Node, rewriter: PatternRewriter) -> bool | str:
        if not is_std(ln, "LayerNormalization"):
            return False
        s = ln.inputs[0]
        add = s.producer() if s is not None else None
        if not is_std(add, "Add"):
            return False
        x, skip = add.inputs
        shape = s.shape
        if shape is None or len(shape) != 3 or not isinstance(shape[-1], int):
            return "input is not known to be [batch, seq, hidden]"
        if x is skip or x.shape != shape or skip.shape != shape:
            return "the residual operands do not have the sum's shape"
        if not (is_float32(x) and is_float32(skip) and is_float32(ln.outputs[0])):
            return "SkipLayerNormalization runs float32 only"
        if int(ln.attr("axis", -1)) not in (-1, 2) or int(ln.attr("stash_type", 1)) != 1:
            return "LayerNormalization is not over the last axis in float32"
        if any(v.name and (v.has_uses() or v.is_graph_output()) for v in ln.outputs[1:]):
            return "LayerNormalization's mean or inverse std dev is used"
        hidden = shape[-1]
        gamma = ln.inputs[1]
        beta = ln.inputs[2] if len(ln.inputs) > 2 else None
        if not _vector(gamma, hidden) or (beta is not None and not _vector(beta, hidden)):
            return "gamma/beta are not vectors of the hidden size"
        matched = [ln, add]
        bias = None
        for i in (0, 1):  # a bias Add on either operand
            inner = add.inputs[i].producer()
            if not is_std(inner, "Add") or add.inputs[i].num_uses() != 1 or \
                    add.inputs[i].is_graph_output():
                continue
            for j in (0, 1):
                arr = get_const(inner.inputs[j])
                if arr is not None and arr.dtype == np.float32 and arr.shape == (hidden,) \
                        and inner.inputs[1 - j].shape == shape:
                    bias = inner.inputs[j]
                    if i == 0:
                        x = inner.inputs[1 - j]
                    else:
                        skip = inner.inputs[1 - j]
                    matched.append(inner)
                    break
            if bias is not None:
                break
        if bias is not None and (gamma is bias or beta is bias):
            return "bias is gamma or beta"
        sum_used = s.is_graph_output() or any(u is not ln for u in s.users())
        inputs = [x, skip, gamma, beta if beta is not None else None]
        if bias is not None:
            inputs.append(bias)
        while inputs and inputs[-1] is None:
            inputs.pop()
        attrs = {"epsilon": float(ln.attr("epsilon", 1e-5))}
        node = rewriter.make_node("SkipLayerNormalization", inputs, attrs, domain=MS_DOMAIN,
                                  num_outputs=4 if sum_used else 1, name=ln.name)
        if sum_used:
            for v in node.outputs[1:3]:
                v.name = ""  # mean and inv_std_var: not produced
            old, new = [ln.outputs[0], s], [node.outputs[0], node.outputs[3]]
        else:
            old, new = [ln.outputs[0]], [node.outputs[0]]
        ok = rewriter.replace(old, new, matched=topo_order(matched), anchor=ln)
        return True if ok else "replacement would rename a graph input, initializer or output"


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtFuseSkipLayerNorm(OrtPatternPass):
    """Fuse (bias Add +) residual Add + LayerNormalization into com.microsoft SkipLayerNormalization."""

    name = "ort-fuse-skip-layer-norm"
    rules = (SkipLayerNorm,)
