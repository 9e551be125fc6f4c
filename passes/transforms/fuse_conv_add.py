"""Conv followed by Add of a constant per-channel bias -> the Conv's own bias.

``Conv(x, W, b) + c`` equals ``Conv(x, W, b + c)`` when ``c``, broadcast against the Conv output
``[N, M, *spatial]``, holds one value per output channel and changes nothing else: ``c`` may have
the shape ``[M,1,1]``, ``[1,M,1,1]``, ``[1,1,1]`` or be a scalar (for a 2-D Conv), but not ``[M]``
(that would broadcast along the last spatial axis) nor anything with more dimensions than the
output (the Add would grow the output's rank). The Conv's weight may be a run-time value (only
its static shape is read); its bias, if any, must be constant.

>>> from passes import PassManager; PassManager("fuse-conv-add").run(model)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import DType, Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import Const, PatternPass, RewriteRule
from passes.transforms.fuse_conv_bn import copy_attributes, is_float

__all__ = ["FuseConvAdd", "ConvAddBias", "per_channel", "conv_out_channels"]


def conv_out_channels(w: Value) -> tuple[int, int] | str:
    """``(rank of the Conv output, output channels)`` from the weight's static shape."""
    shape = w.shape
    if shape is None or len(shape) < 3 or not isinstance(shape[0], int):
        return "Conv weight shape (output channels, rank) is unknown"
    return len(shape), shape[0]


def per_channel(c: np.ndarray, rank: int, channels: int) -> np.ndarray | str:
    """The ``channels``-vector that ``c`` contributes per channel (axis 1) when broadcast against
    a tensor of rank ``rank`` with ``channels`` channels, or why ``c`` is not per-channel."""
    if c.ndim > rank:
        return f"constant of rank {c.ndim} would broadcast the rank-{rank} output up"
    shape = (1,) * (rank - c.ndim) + c.shape
    for axis, d in enumerate(shape):
        if axis == 1:
            if d not in (1, channels):
                return f"constant has {d} channels, the Conv {channels}"
        elif d != 1:
            return f"constant varies along axis {axis}, not only along channels"
    vector = c.reshape(shape).reshape(-1)
    return np.broadcast_to(vector, (channels,))


def _conv_bias(conv: Node, channels: int):
    """The Conv's constant bias (None when it has none) or a reason string."""
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if b is None:
        return None
    bias = get_const(b)
    if bias is None or bias.shape != (channels,):
        return "Conv bias is not a constant vector"
    return bias


class ConvAddBias(RewriteRule):
    """Add(Conv(x, W, b), c) -> Conv(x, W, b + c) for a constant per-channel c."""

    name = "conv-add-bias"

    def pattern(self, op, x, w):
        return op.Add(op.Conv(x, w, _allow_other_inputs=True, _name="conv"), Const(name="c"))

    def check(self, m, w, conv, c):
        found = conv_out_channels(w)
        if isinstance(found, str):
            return found
        rank, channels = found
        addend = get_const(c)
        if not is_float(addend) or DType.from_numpy(addend.dtype) != w.dtype:
            return "constant is not of the Conv's floating dtype"
        vector = per_channel(addend, rank, channels)
        if isinstance(vector, str):
            return vector
        bias = _conv_bias(conv, channels)
        if isinstance(bias, str):
            return bias
        b64 = vector.astype(np.float64) + (0.0 if bias is None else bias.astype(np.float64))
        m.bindings["_bias"] = b64.astype(addend.dtype)

    def rewrite(self, op, x, w, conv, _bias):
        return op.Conv(x, w, op.constant(_bias), _name=conv.name, **copy_attributes(conv))


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseConvAdd(PatternPass):
    """Fold Add of a constant per-channel bias into the Conv before it."""

    name = "fuse-conv-add"
    rules = (ConvAddBias,)
