"""Conv + BatchNormalization (inference) -> Conv with folded weights and bias.

At inference BatchNormalization is an affine map per channel::

    BN(y) = (y - mean) / sqrt(var + eps) * scale + bias = y * s + t
    s = scale / sqrt(var + eps),  t = bias - mean * s

and a Conv's output channel ``m`` is ``W[m] * x + b[m]``, so ``BN(Conv(x, W, b))`` is
``Conv(x, W * s[m], b * s + t)``: one node fewer, no extra work. Groups change nothing (output
channel ``m`` still reads only ``W[m]``), nor does the spatial rank. The folding is computed in
float64 and stored in the Conv weight's own dtype (a float16 model stays float16).

The rule refuses a BN in training mode (``training_mode=1``, ``is_test=0`` before opset 7, or a
used running-statistics output), ``spatial=0`` (opsets 7-8: per-element statistics), parameters
that are not constants (a graph input with a default may be overridden at run time), a Conv whose
weight or bias is not constant, and non-floating types. The Conv output must have no other
reader: the driver refuses otherwise. ``fuse-gemm-bn`` (fuse_gemm_bn.py) does the same for
MatMul/Gemm.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import Attribute, Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternPass, RewriteRule, attr_or_default

__all__ = ["FuseConvBatchNorm", "ConvBatchNorm", "bn_affine", "conv_constants", "copy_attributes",
           "is_float", "scale_conv"]


def is_float(arr: np.ndarray | None) -> bool:
    """True for a numpy array of a floating type (float16/32/64 and ml_dtypes' bfloat16)."""
    if arr is None:
        return False
    return np.issubdtype(arr.dtype, np.floating) or arr.dtype.name == "bfloat16"


def copy_attributes(node: Node, drop: tuple[str, ...] = (), **overrides) -> dict[str, Attribute]:
    """``node``'s attributes as fresh :class:`Attribute` objects (for a replacement node), minus
    ``drop``, with ``overrides`` (name -> Python value) set on top."""
    out = {k: Attribute(a.name, a.type, a.value, a.doc_string, a.ref_attr_name)
           for k, a in node.attributes.items() if k not in drop}
    for k, v in overrides.items():
        out[k] = Attribute.infer(k, v)
    return out


def bn_affine(bn: Node, channels: int, opset: int | None):
    """``(s, t)`` (float64 vectors of length ``channels``) such that ``bn`` computes
    ``y * s + t`` per channel, or a string saying why that does not hold."""
    if any(a.ref_attr_name for a in bn.attributes.values()):
        return "attribute refers to a function parameter"
    if attr_or_default(bn, "training_mode", opset) not in (None, 0):
        return "BatchNormalization in training mode"
    if "is_test" in bn.attributes and bn.attr("is_test") == 0 or \
            (opset is not None and opset < 7 and "is_test" not in bn.attributes):
        return "legacy BatchNormalization without is_test=1"
    if "spatial" in bn.attributes and bn.attr("spatial") == 0:
        return "spatial=0 (per-element statistics)"
    for v in bn.outputs[1:]:
        if v.name and (v.has_uses() or v.is_graph_output()):
            return "running statistics output is used"
    if len(bn.inputs) != 5 or any(v is None for v in bn.inputs):
        return "BatchNormalization needs its five inputs"
    params = [get_const(v) for v in bn.inputs[1:]]
    if any(p is None for p in params):
        return "BatchNormalization parameters are not constant"
    if not all(is_float(p) for p in params):
        return "BatchNormalization parameters are not floating point"
    if any(p.size != channels or p.ndim > 1 for p in params):
        return f"BatchNormalization parameters are not {channels}-vectors"
    scale, bias, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = attr_or_default(bn, "epsilon", opset)
    eps = 1e-5 if eps is None else float(eps)
    with np.errstate(all="ignore"):
        s = scale / np.sqrt(var + eps)
    if not np.all(np.isfinite(s)):
        return "folded scale is not finite (var + epsilon <= 0?)"
    return s, bias - mean * s


def conv_constants(conv: Node, w: Value):
    """``(weight, bias)`` arrays of a Conv whose weights can be folded, or a reason string."""
    weight = get_const(w)
    if weight is None:
        return "Conv weight is not constant"
    if not is_float(weight) or weight.ndim < 3:
        return "Conv weight is not a floating tensor of rank >= 3"
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    bias = None
    if b is not None:
        bias = get_const(b)
        if bias is None:
            return "Conv bias is not constant"
        if bias.shape != (weight.shape[0],) or bias.dtype != weight.dtype:
            return "Conv bias is not a vector of the weight's dtype"
    return weight, bias


def scale_conv(weight: np.ndarray, bias: np.ndarray | None, s: np.ndarray, t: np.ndarray):
    """Weights and bias of ``Conv(x, weight, bias) * s + t`` (per output channel), computed in
    float64 and returned in the weight's dtype."""
    shape = (-1,) + (1,) * (weight.ndim - 1)
    w64 = weight.astype(np.float64) * s.reshape(shape)
    b64 = (0.0 if bias is None else bias.astype(np.float64)) * s + t
    return w64.astype(weight.dtype), np.asarray(b64, np.float64).astype(weight.dtype)


class ConvBatchNorm(RewriteRule):
    """BatchNormalization(Conv(x, W, b)) -> Conv(x, W * s, b * s + t)."""

    name = "conv-bn"

    def pattern(self, op, x, w, scale, bias, mean, var):
        return op.BatchNormalization(op.Conv(x, w, _allow_other_inputs=True, _name="conv"),
                                     scale, bias, mean, var, _name="bn")

    def check(self, m, w, conv, bn):
        found = conv_constants(conv, w)
        if isinstance(found, str):
            return found
        weight, _ = found
        affine = bn_affine(bn, weight.shape[0], m.opset)
        if isinstance(affine, str):
            return affine
        m.bindings["_folded"] = scale_conv(*found, *affine)

    def rewrite(self, op, x, conv, _folded):
        weight, bias = _folded
        return op.Conv(x, op.constant(weight), op.constant(bias), _name=conv.name,
                       **copy_attributes(conv))


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseConvBatchNorm(PatternPass):
    """Fold an inference BatchNormalization into the Conv before it (weights and bias)."""

    name = "fuse-conv-bn"
    rules = (ConvBatchNorm,)
