"""Pad (constant mode, zeros, spatial axes only) -> the ``pads`` of the Conv or pool after it.

Exact cases only:

- ``Conv``: a Conv pads with zeros, so a zero Pad adds to its ``pads``.
- ``AveragePool``: the padded zeros are real elements to the pool, counted in each average; that
  is what ``count_include_pad=1`` does. Fused when the pool already has ``count_include_pad=1``, or
  has no padding of its own (then it is switched to 1); refused with ``ceil_mode=1`` (windows past
  the end are clipped differently), before opset 7 (no ``count_include_pad``) and when the total
  padding reaches the kernel size (ONNX Runtime refuses such pools).
- ``MaxPool``: its padding never wins a max (it acts as -inf). A Pad of -inf is therefore exact,
  and a zero Pad is when the input is known non-negative (it comes from a Relu) and every window
  keeps at least one real element (``dilations`` 1, ``ceil_mode`` 0, total padding below the
  kernel on each side). The ``Indices`` output must be unused (padding shifts indices).

The Pad must be constant mode with constant pads (``pads`` attribute before opset 11, inputs
after, ``axes`` from opset 18), no negative pads (cropping) and no padding of the batch or channel
axes; the consumer must have ``auto_pad`` NOTSET or VALID.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from irlib import Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternPass, RewriteRule, attr_or_default
from passes.transforms.fuse_conv_bn import copy_attributes

__all__ = ["FusePadIntoConv", "PadIntoConv", "PadIntoAveragePool", "PadIntoMaxPool",
           "spatial_pads"]


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def spatial_pads(pad: Node, rank: int | None, opset: int | None):
    """``(pads, value)`` of a constant-mode Pad that pads only spatial axes of a rank-``rank``
    tensor, ``pads`` laid out like Conv's (``[b1..bn, e1..en]`` over the n spatial axes), or a
    reason string."""
    if _text(attr_or_default(pad, "mode", opset) or "constant") != "constant":
        return "Pad mode is not constant"
    if "pads" in pad.attributes:  # Pad-2
        amounts = np.asarray(pad.attr("pads"), np.int64)
        value = float(pad.attr("value", 0.0))
        axes = None
    elif "paddings" in pad.attributes:
        return "Pad-1 is not supported"
    else:
        amounts = get_const(pad.inputs[1]) if len(pad.inputs) > 1 else None
        if amounts is None:
            return "Pad amounts are not constant"
        cv = pad.inputs[2] if len(pad.inputs) > 2 else None
        value = 0.0
        if cv is not None:
            arr = get_const(cv)
            if arr is None or arr.size != 1:
                return "Pad value is not a constant scalar"
            value = float(arr.reshape(()).astype(np.float64))
        av = pad.inputs[3] if len(pad.inputs) > 3 else None
        axes = None
        if av is not None:
            axes = get_const(av)
            if axes is None:
                return "Pad axes are not constant"
    amounts = np.asarray(amounts, np.int64).reshape(-1)
    if amounts.size % 2:
        return "Pad amounts have odd length"
    half = amounts.size // 2
    if axes is None:
        if rank is not None and half != rank:
            return "Pad rank differs from the consumer's"
        rank = half
        begin, end = amounts[:half], amounts[half:]
    else:
        if rank is None:
            return "rank unknown for Pad axes"
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in np.asarray(axes).reshape(-1)]
        if len(axes) != half or len(set(axes)) != half or any(not 0 <= a < rank for a in axes):
            return "invalid Pad axes"
        begin, end = np.zeros(rank, np.int64), np.zeros(rank, np.int64)
        begin[axes], end[axes] = amounts[:half], amounts[half:]
    if rank < 3:
        return "Pad input has no spatial axes"
    if np.any(amounts < 0):
        return "negative pads (cropping)"
    if np.any(begin[:2] != 0) or np.any(end[:2] != 0):
        return "Pad pads the batch or channel axis"
    return [int(p) for p in begin[2:]] + [int(p) for p in end[2:]], value


def _own_pads(node: Node, spatial: int, opset):
    """The consumer's explicit pads (zeros for VALID / no pads), or a reason string."""
    auto_pad = _text(attr_or_default(node, "auto_pad", opset) or "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        return f"auto_pad={auto_pad}"
    pads = node.attr("pads") if auto_pad == "NOTSET" else None
    pads = list(pads) if pads is not None else [0] * (2 * spatial)
    if len(pads) != 2 * spatial:
        return "pads attribute does not match the rank"
    return pads


def _merged(pad: Node, node: Node, rank: int | None, opset):
    found = spatial_pads(pad, rank, opset)
    if isinstance(found, str):
        return found
    extra, value = found
    own = _own_pads(node, len(extra) // 2, opset)
    if isinstance(own, str):
        return own
    if any(a.ref_attr_name for a in node.attributes.values()):
        return "attribute refers to a function parameter"
    return own, [a + b for a, b in zip(own, extra)], value


def _rebuild(op, node: Node, x: Value, pads: list[int], **overrides):
    attrs = copy_attributes(node, drop=("auto_pad",), pads=pads, **overrides)
    outs = len(node.outputs)
    return getattr(op, node.op_type)(x, *node.inputs[1:], _name=node.name, _outputs=outs, **attrs)


class PadIntoConv(RewriteRule):
    """Conv(Pad(x, zeros on spatial axes)) -> Conv(x) with larger pads."""

    name = "pad-into-conv"

    def pattern(self, op, x):
        return op.Conv(op.Pad(x, _allow_other_inputs=True, _name="pad"),
                       _allow_other_inputs=True, _name="node")

    def check(self, m, pad, node):
        w = node.inputs[1] if len(node.inputs) > 1 else None
        rank = len(w.shape) if w is not None and w.shape is not None else None
        found = _merged(pad, node, rank, m.opset)
        if isinstance(found, str):
            return found
        _, pads, value = found
        if value != 0.0:
            return "Pad value is not zero"
        m.bindings["_pads"] = pads

    def rewrite(self, op, x, node, _pads):
        return _rebuild(op, node, x, _pads)


class PadIntoAveragePool(RewriteRule):
    """AveragePool(Pad(x, zeros)) -> AveragePool(x, pads, count_include_pad=1) where exact."""

    name = "pad-into-average-pool"

    def pattern(self, op, x):
        return op.AveragePool(op.Pad(x, _allow_other_inputs=True, _name="pad"), _name="node")

    def check(self, m, pad, node):
        if m.opset is not None and m.opset < 7:
            return "count_include_pad needs opset 7"
        kernel = node.attr("kernel_shape")
        if kernel is None:
            return "kernel_shape missing"
        if attr_or_default(node, "ceil_mode", m.opset):
            return "ceil_mode=1"
        found = _merged(pad, node, len(kernel) + 2, m.opset)
        if isinstance(found, str):
            return found
        own, pads, value = found
        if value != 0.0:
            return "Pad value is not zero"
        if not attr_or_default(node, "count_include_pad", m.opset) and any(own):
            return "pool has its own padding and count_include_pad=0"
        if not _below_kernel(pads, kernel):
            return "padding as large as the kernel (ONNX Runtime refuses such a pool)"
        m.bindings["_pads"] = pads

    def rewrite(self, op, x, node, _pads):
        return _rebuild(op, node, x, _pads, count_include_pad=1)


def _below_kernel(pads: list[int], kernel) -> bool:
    """Every pad smaller than the kernel along its axis (ONNX Runtime's pools require it)."""
    n = len(kernel)
    return all(pads[i] < kernel[i] and pads[i + n] < kernel[i] for i in range(n))


def _non_negative(v: Value) -> bool:
    p = v.producer()
    return p is not None and p.op_type == "Relu" and p.domain in ("", "ai.onnx")


class PadIntoMaxPool(RewriteRule):
    """MaxPool(Pad(x, -inf, or 0 with x >= 0)) -> MaxPool(x) with larger pads, where exact."""

    name = "pad-into-max-pool"

    def pattern(self, op, x):
        return op.MaxPool(op.Pad(x, _allow_other_inputs=True, _name="pad"), _name="node")

    def check(self, m, x, pad, node):
        if len(node.outputs) > 1 and node.outputs[1].name and \
                (node.outputs[1].has_uses() or node.outputs[1].is_graph_output()):
            return "Indices output is used"
        kernel = node.attr("kernel_shape")
        if kernel is None:
            return "kernel_shape missing"
        if attr_or_default(node, "ceil_mode", m.opset):
            return "ceil_mode=1"
        if any(d != 1 for d in (node.attr("dilations") or ())):
            return "dilated MaxPool"
        found = _merged(pad, node, len(kernel) + 2, m.opset)
        if isinstance(found, str):
            return found
        _, pads, value = found
        if not (value == -math.inf or (value == 0.0 and _non_negative(x))):
            return "Pad value is neither -inf nor zero on a non-negative input"
        if not _below_kernel(pads, kernel):
            return "padding as large as the kernel (a window could hold no real element)"
        m.bindings["_pads"] = pads

    def rewrite(self, op, x, node, _pads):
        return _rebuild(op, node, x, _pads)


@register_pass
@dataclasses.dataclass(frozen=True)
class FusePadIntoConv(PatternPass):
    """Fold a zero, constant-mode spatial Pad into the pads of the Conv/AveragePool/MaxPool after it."""

    name = "fuse-pad-into-conv"
    rules = (PadIntoConv, PadIntoAveragePool, PadIntoMaxPool)
