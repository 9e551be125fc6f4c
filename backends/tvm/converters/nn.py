"""Neural-network ops: Conv, ConvTranspose, pools, normalizations, LRN, Softmax/LogSoftmax.

ONNX's ``pads`` (all begins, then all ends) is also Relax's ``padding`` order. ``auto_pad``
SAME_UPPER/SAME_LOWER is resolved to explicit pads from static spatial sizes. BatchNormalization
is lowered in inference mode (Relax's ``nn.batch_norm`` defaults to training mode).
"""

from __future__ import annotations

import math

import numpy as np

from backends.tvm._env import relax
from backends.tvm.converters._common import ints, scalar
from backends.tvm.converters._registry import converter
from irlib import Node

_LAYOUTS = {1: ("NCW", "OIW"), 2: ("NCHW", "OIHW"), 3: ("NCDHW", "OIDHW")}


def _spatial_check(node: Node) -> bool | str:
    x = node.inputs[0]
    shape = getattr(x.type, "shape", None) if x is not None else None
    if shape is None:
        return f"{node.op_type}: the input's rank must be known"
    if len(shape) - 2 not in _LAYOUTS:
        return f"{node.op_type}: {len(shape) - 2}-D is not supported (1-D to 3-D are)"
    pad = node.attr("auto_pad", "NOTSET")
    if pad in ("SAME_UPPER", "SAME_LOWER") and not all(isinstance(d, int) for d in shape[2:]):
        return f"{node.op_type}: auto_pad={pad} needs static spatial sizes"
    return True


def _pads(cx, node: Node, x, kernel: list[int], strides: list[int], dilations: list[int],
          ceil: bool = False) -> list[int]:
    n = len(kernel)
    mode = node.attr("auto_pad", "NOTSET")
    if mode == "VALID":
        return [0] * (2 * n)
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        spatial = cx.static_shape(x, node)[2:]
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            begin = small if mode == "SAME_UPPER" else total - small
            begins.append(begin)
            ends.append(total - begin)
        return begins + ends
    return ints(node, "pads", [0] * (2 * n))


def _window(node: Node, n: int, kernel=None):
    kernel = kernel or ints(node, "kernel_shape")
    strides = ints(node, "strides", [1] * n)
    dilations = ints(node, "dilations", [1] * n)
    return kernel, strides, dilations


@converter("Conv", check=_spatial_check, notes="1-D to 3-D, groups, dilations, auto_pad")
def conv(cx, node: Node):
    x, w, b = cx.arg(node, 0), cx.arg(node, 1), cx.arg(node, 2)
    n = cx.rank(x) - 2
    kernel = ints(node, "kernel_shape") or cx.static_shape(w, node)[2:]
    _, strides, dilations = _window(node, n, kernel)
    pads = _pads(cx, node, x, kernel, strides, dilations)
    data_layout, kernel_layout = _LAYOUTS[n]
    f = getattr(relax.op.nn, f"conv{n}d")
    y = f(x, w, strides=strides, padding=pads, dilation=dilations,
          groups=int(node.attr("group", 1)), data_layout=data_layout, kernel_layout=kernel_layout)
    if b is not None:
        y = relax.op.add(cx.emit(y), relax.op.reshape(b, [1, -1] + [1] * n))
    return y


def _conv_transpose_check(node: Node) -> bool | str:
    ok = _spatial_check(node)
    if ok is not True:
        return ok
    if len(node.inputs[0].type.shape) - 2 == 3:
        return "ConvTranspose: 3-D is not supported (1-D and 2-D are)"
    return True


@converter("ConvTranspose", check=_conv_transpose_check,
           notes="1-D and 2-D, groups, dilations, output_padding, output_shape, auto_pad")
def conv_transpose(cx, node: Node):
    x, w, b = cx.arg(node, 0), cx.arg(node, 1), cx.arg(node, 2)
    n = cx.rank(x) - 2
    kernel = ints(node, "kernel_shape") or cx.static_shape(w, node)[2:]
    _, strides, dilations = _window(node, n, kernel)
    out_pad = ints(node, "output_padding", [0] * n)
    out_shape = ints(node, "output_shape")
    mode = node.attr("auto_pad", "NOTSET")
    if out_shape is not None or mode in ("SAME_UPPER", "SAME_LOWER"):
        spatial = cx.static_shape(x, node)[2:]
        if out_shape is None:
            out_shape = [size * s for size, s in zip(spatial, strides)]
        out_shape = out_shape[-n:]
        begins, ends = [], []
        for i in range(n):
            total = (strides[i] * (spatial[i] - 1) + out_pad[i] + ((kernel[i] - 1) * dilations[i] + 1)
                     - out_shape[i])
            total = max(total, 0)
            if mode == "SAME_UPPER":
                begin = total // 2
            else:  # SAME_LOWER and explicit output_shape: ONNX puts the larger half first
                begin = total - total // 2
            begins.append(begin)
            ends.append(total - begin)
        pads = begins + ends
    elif mode == "VALID":
        pads = [0] * (2 * n)
    else:
        pads = ints(node, "pads", [0] * (2 * n))
    layouts = {1: ("NCW", "IOW"), 2: ("NCHW", "IOHW")}[n]
    f = getattr(relax.op.nn, f"conv{n}d_transpose")
    y = f(x, w, strides=strides, padding=pads, output_padding=out_pad, dilation=dilations,
          groups=int(node.attr("group", 1)), data_layout=layouts[0], kernel_layout=layouts[1])
    if b is not None:
        y = relax.op.add(cx.emit(y), relax.op.reshape(b, [1, -1] + [1] * n))
    return y


def _pool_check(node: Node) -> bool | str:
    ok = _spatial_check(node)
    if ok is not True:
        return ok
    if node.op_type == "MaxPool" and len(node.outputs) > 1 and \
            (node.outputs[1].has_uses() or node.outputs[1].is_graph_output()):
        return "MaxPool: the Indices output is not supported"
    if node.attr("storage_order", 0):
        return "MaxPool: storage_order=1 is not supported"
    return True


@converter("MaxPool", "AveragePool", check=_pool_check,
           notes="1-D to 3-D, ceil_mode, dilations, count_include_pad; not MaxPool's Indices")
def pool(cx, node: Node):
    x = cx.arg(node, 0)
    n = cx.rank(x) - 2
    kernel, strides, dilations = _window(node, n)
    pads = _pads(cx, node, x, kernel, strides, dilations)
    kind = "max" if node.op_type == "MaxPool" else "avg"
    f = getattr(relax.op.nn, f"{kind}_pool{n}d")
    layout = _LAYOUTS[n][0]
    kw = dict(pool_size=kernel, strides=strides, padding=pads, dilation=dilations,
              ceil_mode=bool(node.attr("ceil_mode", 0)), layout=layout)
    if kind == "avg":
        kw["count_include_pad"] = bool(node.attr("count_include_pad", 0))
    return f(x, **kw)


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(cx, node: Node):
    x = cx.arg(node, 0)
    axes = list(range(2, cx.rank(x)))
    f = relax.op.mean if node.op_type == "GlobalAveragePool" else relax.op.max
    return f(x, axis=axes, keepdims=True)


def _bn_check(node: Node) -> bool | str:
    if node.attr("training_mode", 0):
        return "BatchNormalization: training_mode=1 is not supported (inference only)"
    if node.attr("spatial", 1) == 0:
        return "BatchNormalization: spatial=0 is not supported"
    for v in node.outputs[1:]:
        if v.has_uses() or v.is_graph_output():
            return "BatchNormalization: the running mean/var outputs are not supported"
    return True


@converter("BatchNormalization", check=_bn_check, notes="inference mode")
def batch_norm(cx, node: Node):
    x, scale, bias, mean, var = (cx.arg(node, i) for i in range(5))
    bn = cx.emit(relax.op.nn.batch_norm(x, scale, bias, mean, var, axis=1,
                                        epsilon=float(node.attr("epsilon", 1e-5)),
                                        training=False))
    return relax.TupleGetItem(bn, 0)


@converter("InstanceNormalization")
def instance_norm(cx, node: Node):
    x, scale, bias = (cx.arg(node, i) for i in range(3))
    axes = list(range(2, cx.rank(x)))
    return relax.op.nn.instance_norm(x, scale, bias, channel_axis=1, axes=axes,
                                     epsilon=float(node.attr("epsilon", 1e-5)))


def _ln_check(node: Node) -> bool | str:
    for v in node.outputs[1:]:
        if v.has_uses() or v.is_graph_output():
            return "LayerNormalization: the Mean/InvStdDev outputs are not supported"
    return True


@converter("LayerNormalization", check=_ln_check, notes="any axis; optional bias")
def layer_norm(cx, node: Node):
    x, scale, bias = cx.arg(node, 0), cx.arg(node, 1), cx.arg(node, 2)
    rank = cx.rank(x)
    axis = int(node.attr("axis", -1)) % rank
    axes = list(range(axis, rank))
    eps = float(node.attr("epsilon", 1e-5))
    norm_shape = cx.shape(x)[axis:]
    if cx.shape(scale) == norm_shape and None not in norm_shape and \
            (bias is None or cx.shape(bias) == norm_shape):
        if bias is None:
            bias = relax.const(np.zeros(norm_shape, cx.dtype(x)), cx.dtype(x))
        return relax.op.nn.layer_norm(x, scale, bias, axes=axes, epsilon=eps)
    # Scale/B broadcast to the normalized shape: spell it out
    mean = cx.emit(relax.op.mean(x, axis=axes, keepdims=True))
    d = cx.emit(relax.op.subtract(x, mean))
    var = relax.op.mean(relax.op.multiply(d, d), axis=axes, keepdims=True)
    y = relax.op.divide(d, relax.op.sqrt(relax.op.add(var, scalar(cx, eps, x))))
    y = relax.op.multiply(y, scale)
    return y if bias is None else relax.op.add(cx.emit(y), bias)


@converter("LRN", notes="across channels, as a channel-window average pool")
def lrn(cx, node: Node):
    x = cx.arg(node, 0)
    size = int(node.attr("size"))
    alpha, beta = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    dims = cx.dims(x)
    sq = cx.emit(relax.op.multiply(x, x))
    flat = cx.emit(relax.op.reshape(sq, [dims[0], 1, dims[1], -1]))
    pre, post = (size - 1) // 2, int(math.ceil((size - 1) / 2))
    avg = relax.op.nn.avg_pool2d(flat, pool_size=(size, 1), strides=(1, 1),
                                 padding=(pre, 0, post, 0), count_include_pad=True)
    window = cx.emit(relax.op.reshape(cx.emit(avg), dims))  # sum / size
    base = cx.emit(relax.op.add(scalar(cx, bias, x), relax.op.multiply(window, scalar(cx, alpha, x))))
    return relax.op.divide(x, cx.emit(relax.op.power(base, scalar(cx, beta, x))))


def _softmax(cx, node: Node, f):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    default = -1 if cx.opset >= 13 else 1
    axis = int(node.attr("axis", default)) % max(rank, 1)
    if cx.opset >= 13 or axis == rank - 1:
        return f(x, axis=axis)
    # opset < 13: softmax over everything from `axis` on, as one flattened dimension
    dims = cx.dims(x)
    lead = 1
    for d in dims[:axis]:
        lead = lead * d
    flat = cx.emit(relax.op.reshape(x, [lead, -1]))
    return relax.op.reshape(cx.emit(f(flat, axis=1)), dims)


@converter("Softmax", notes="opset < 13 flattens from axis on, as ONNX")
def softmax(cx, node: Node):
    return _softmax(cx, node, relax.op.nn.softmax)


@converter("LogSoftmax", notes="opset < 13 flattens from axis on, as ONNX")
def log_softmax(cx, node: Node):
    return _softmax(cx, node, relax.op.nn.log_softmax)


