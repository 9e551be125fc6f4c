"""numpy implementations of ONNX ops, keyed by op type, for the reference executor.

An implementation is ``fn(node, inputs, out) -> tuple of arrays``: ``inputs`` holds numpy arrays
(``None`` for an omitted optional input) and ``out`` the arrays the results must end up in (views
into the executor's arena), or ``None`` when running without a plan. An implementation may write
its result straight into ``out[k]`` (elementwise ops do, through numpy's ``out=``) and return it;
the executor copies any other result into place. Reading ``out`` before writing it is not
allowed: its bytes may hold a dead tensor, or the input itself when the output is in place.

It covers the ops of ONNX's ``light_*`` test models and of examples/tiny_cnn.onnx, plus common
elementwise ops, not all of ONNX. Conv is im2col + one batched matmul.

>>> OPS["Relu"](node, [x], None)                              # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from irlib import Node

__all__ = ["OPS", "UnsupportedOpError", "attr"]


class UnsupportedOpError(NotImplementedError):
    """The reference executor has no implementation of an op."""


OPS: dict[str, Callable] = {}


def attr(node: Node, name: str, default=None):
    """The value of attribute ``name`` of ``node`` (tensors as numpy arrays)."""
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    if hasattr(v, "numpy"):
        return v.numpy()
    if isinstance(v, bytes):
        return v.decode()
    return v


def _op(*names):
    def wrap(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return wrap


def _o(out, k=0):
    return None if out is None else out[k]


# -- elementwise ------------------------------------------------------------------------------

def _unary(ufunc):
    def fn(node, inputs, out, opset=21):
        return (ufunc(inputs[0], out=_o(out)) if _o(out) is not None else ufunc(inputs[0]),)
    return fn


for _name, _uf in {"Relu": None, "Neg": np.negative, "Abs": np.abs, "Exp": np.exp, "Log": np.log,
                   "Sqrt": np.sqrt, "Tanh": np.tanh, "Floor": np.floor, "Ceil": np.ceil,
                   "Reciprocal": np.reciprocal, "Sin": np.sin, "Cos": np.cos, "Not": np.logical_not,
                   "Sign": np.sign, "Round": np.round}.items():
    if _uf is not None:
        OPS[_name] = _unary(_uf)


@_op("Relu")
def _relu(node, inputs, out, opset=21):
    x = inputs[0]
    return (np.maximum(x, np.zeros((), x.dtype), out=_o(out)),)


@_op("Sigmoid")
def _sigmoid(node, inputs, out, opset=21):
    x = inputs[0]
    o = _o(out)
    r = np.negative(x, out=o)
    np.exp(r, out=r)
    r += 1
    np.reciprocal(r, out=r)
    return (r,)


@_op("LeakyRelu")
def _leaky_relu(node, inputs, out, opset=21):
    x = inputs[0]
    alpha = np.asarray(attr(node, "alpha", 0.01), x.dtype)
    return (np.where(x >= 0, x, x * alpha),)


@_op("Clip")
def _clip(node, inputs, out, opset=21):
    x = inputs[0]
    if "min" in node.attributes or "max" in node.attributes:  # opset < 11
        lo, hi = attr(node, "min"), attr(node, "max")
    else:
        lo = inputs[1] if len(inputs) > 1 else None
        hi = inputs[2] if len(inputs) > 2 else None
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo).astype(x.dtype), out=_o(out))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi).astype(x.dtype), out=_o(out))
    return (y,)


def _binary(ufunc):
    def fn(node, inputs, out, opset=21):
        a, b = inputs
        o = _o(out)
        if o is not None and np.broadcast_shapes(a.shape, b.shape) == o.shape:
            return (ufunc(a, b, out=o),)
        return (ufunc(a, b),)
    return fn


for _name, _uf in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power,
                   "Equal": np.equal, "Less": np.less, "Greater": np.greater,
                   "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    OPS[_name] = _binary(_uf)


@_op("Div")
def _div(node, inputs, out, opset=21):
    a, b = inputs
    if np.issubdtype(a.dtype, np.integer):
        return ((np.trunc(a / b)).astype(a.dtype),)
    return _binary(np.divide)(node, inputs, out)


def _variadic(ufunc, mean=False):
    def fn(node, inputs, out, opset=21):
        xs = [x for x in inputs if x is not None]
        acc = xs[0].copy() if len(xs) > 1 else xs[0]
        for x in xs[1:]:
            acc = ufunc(acc, x)
        if mean:
            acc = (acc / len(xs)).astype(xs[0].dtype)
        return (acc,)
    return fn


OPS["Sum"] = _variadic(np.add)
OPS["Max"] = _variadic(np.maximum)
OPS["Min"] = _variadic(np.minimum)
OPS["Mean"] = _variadic(np.add, mean=True)


@_op("Dropout")
def _dropout(node, inputs, out, opset=21):
    x = inputs[0]
    return (x, np.ones(x.shape, np.bool_))  # inference: identity, mask all true


@_op("Cast")
def _cast(node, inputs, out, opset=21):
    from irlib import DType

    return (inputs[0].astype(DType(attr(node, "to")).numpy),)


# -- shapes and views -------------------------------------------------------------------------

@_op("Identity")
def _identity(node, inputs, out, opset=21):
    return (inputs[0],)


@_op("Reshape")
def _reshape(node, inputs, out, opset=21):
    x = inputs[0]
    shape = [int(d) for d in (inputs[1] if len(inputs) > 1 else attr(node, "shape"))]
    if not attr(node, "allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return (x.reshape(shape),)


@_op("Flatten")
def _flatten(node, inputs, out, opset=21):
    x = inputs[0]
    axis = attr(node, "axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return (x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])),)


def _axes(node, inputs):
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1]]
    a = attr(node, "axes")
    return None if a is None else list(a)


@_op("Squeeze")
def _squeeze(node, inputs, out, opset=21):
    x = inputs[0]
    axes = _axes(node, inputs)
    if axes is None:
        return (np.squeeze(x),)
    return (np.squeeze(x, axis=tuple(a % x.ndim for a in axes)),)


@_op("Unsqueeze")
def _unsqueeze(node, inputs, out, opset=21):
    x = inputs[0]
    axes = _axes(node, inputs)
    rank = x.ndim + len(axes)
    shape = list(x.shape)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    return (x.reshape(shape),)


@_op("Transpose")
def _transpose(node, inputs, out, opset=21):
    perm = attr(node, "perm")
    return (np.transpose(inputs[0], perm),)


@_op("Concat")
def _concat(node, inputs, out, opset=21):
    xs = [x for x in inputs if x is not None]
    axis = attr(node, "axis") % xs[0].ndim
    o = _o(out)
    if o is None:
        return (np.concatenate(xs, axis=axis),)
    # Write each piece into its slice; a piece may share memory with out (not read after).
    start = 0
    index = [slice(None)] * o.ndim
    pieces = [x.copy() if np.shares_memory(x, o) else x for x in xs]
    for x in pieces:
        index[axis] = slice(start, start + x.shape[axis])
        o[tuple(index)] = x
        start += x.shape[axis]
    return (o,)


@_op("Shape")
def _shape(node, inputs, out, opset=21):
    shape = np.array(inputs[0].shape, np.int64)
    start, end = attr(node, "start", 0), attr(node, "end", None)
    return (shape[start:end],)


@_op("Constant")
def _constant(node, inputs, out, opset=21):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attributes:
            v = attr(node, key)
            dtype = np.float32 if "float" in key else (np.int64 if "int" in key else None)
            return (np.asarray(v, dtype),)
    raise UnsupportedOpError(f"Constant node {node.name!r} has no supported value attribute")


@_op("ConstantOfShape")
def _constant_of_shape(node, inputs, out, opset=21):
    value = attr(node, "value")
    value = np.zeros(1, np.float32) if value is None else value
    shape = tuple(int(d) for d in inputs[0])
    o = _o(out)
    if o is not None:
        o[...] = value.reshape(())
        return (o,)
    return (np.full(shape, value.reshape(()), value.dtype),)


# -- linear algebra ---------------------------------------------------------------------------

@_op("MatMul")
def _matmul(node, inputs, out, opset=21):
    a, b = inputs
    o = _o(out)
    if o is not None and a.ndim >= 2 and b.ndim >= 2 and \
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]) == o.shape:
        return (np.matmul(a, b, out=o),)
    return (np.matmul(a, b),)


@_op("Gemm")
def _gemm(node, inputs, out, opset=21):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attr(node, "transA", 0):
        a = a.T
    if attr(node, "transB", 0):
        b = b.T
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    y = np.matmul(a, b)
    if alpha != 1.0:
        y *= np.asarray(alpha, y.dtype)
    if c is not None and beta != 0.0:
        y += c * np.asarray(beta, y.dtype) if beta != 1.0 else c
    return (y,)


# -- convolution and pooling ------------------------------------------------------------------

def _spatial(node, x_shape, kernel):
    """Strides, dilations and (begin, end) pads of a conv/pool node over ``len(kernel)`` dims."""
    n = len(kernel)
    strides = list(attr(node, "strides", [1] * n))
    dil = list(attr(node, "dilations", [1] * n))
    pads = list(attr(node, "pads", [0] * (2 * n)))
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * n)
        for i in range(n):
            size = x_shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - size)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + n] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    return strides, dil, pads


def _windows(xp, kernel, strides, dil, out_sizes):
    """A strided view (N, C, out..., k...) of the padded input ``xp``."""
    n = len(kernel)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    win = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(
        slice(0, o * s, s) for o, s in zip(out_sizes, strides)) + tuple(slice(None, None, d) for d in dil)
    return win[index]


@_op("Conv")
def _conv(node, inputs, out, opset=21):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    group = attr(node, "group", 1)
    kernel = list(attr(node, "kernel_shape", w.shape[2:]))
    n = len(kernel)
    strides, dil, pads = _spatial(node, x.shape, kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + n]) for i in range(n)]) if any(pads) else x
    out_sizes = [(xp.shape[2 + i] - ((kernel[i] - 1) * dil[i] + 1)) // strides[i] + 1 for i in range(n)]
    N, C = x.shape[:2]
    M = w.shape[0]
    P = math.prod(out_sizes)
    K = math.prod(kernel)
    if K == 1 and all(s == 1 for s in strides):  # 1x1: the input already is the column matrix
        cols = xp.reshape(N, group, C // group, P)
    else:
        # im2col: (N, G, C/G * K, P), then one batched matmul with (G, M/G, C/G * K).
        win = _windows(xp, kernel, strides, dil, out_sizes)  # N, C, out..., k...
        perm = (0, 1) + tuple(range(2 + n, 2 + 2 * n)) + tuple(range(2, 2 + n))
        cols = np.ascontiguousarray(win.transpose(perm)).reshape(N, group, (C // group) * K, P)
    wg = w.reshape(group, M // group, (C // group) * K)
    y = np.matmul(wg, cols).reshape((N, M) + tuple(out_sizes))
    if b is not None:
        y += b.reshape((1, M) + (1,) * n)
    return (y,)


def _pool_setup(node, x):
    kernel = list(attr(node, "kernel_shape"))
    n = len(kernel)
    strides, dil, pads = _spatial(node, x.shape, kernel)
    ceil = attr(node, "ceil_mode", 0)
    out_sizes, extra = [], []
    for i in range(n):
        span = x.shape[2 + i] + pads[i] + pads[i + n] - ((kernel[i] - 1) * dil[i] + 1)
        o = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
        if ceil and (o - 1) * strides[i] >= x.shape[2 + i] + pads[i]:
            o -= 1  # the last window must start inside the input or the begin padding
        out_sizes.append(o)
        need = (o - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1
        extra.append(max(0, need - (x.shape[2 + i] + pads[i] + pads[i + n])))
    return kernel, n, strides, dil, pads, out_sizes, extra


@_op("MaxPool")
def _maxpool(node, inputs, out, opset=21):
    x = inputs[0]
    kernel, n, strides, dil, pads, out_sizes, extra = _pool_setup(node, x)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + n] + extra[i]) for i in range(n)],
                constant_values=low)
    win = _windows(xp, kernel, strides, dil, out_sizes)
    y = win.max(axis=tuple(range(-n, 0)))
    return (y, None) if len(node.outputs) > 1 else (y,)


@_op("AveragePool")
def _avgpool(node, inputs, out, opset=21):
    x = inputs[0]
    kernel, n, strides, dil, pads, out_sizes, extra = _pool_setup(node, x)
    spec = [(0, 0), (0, 0)] + [(pads[i], pads[i + n] + extra[i]) for i in range(n)]
    xp = np.pad(x, spec)
    axes = tuple(range(-n, 0))
    total = _windows(xp, kernel, strides, dil, out_sizes).sum(axis=axes, dtype=np.float64)
    # Divisor: the window's elements inside the input (or inside input + pads).
    ones = np.zeros((1, 1) + xp.shape[2:], np.float64)
    inner = tuple(slice(p, p + s) for p, s in zip(pads[:n], x.shape[2:]))
    if attr(node, "count_include_pad", 0):
        inner = tuple(slice(0, pads[i] + x.shape[2 + i] + pads[i + n]) for i in range(n))
    ones[(0, 0) + inner] = 1
    count = _windows(ones, kernel, strides, dil, out_sizes).sum(axis=axes)
    return ((total / count).astype(x.dtype),)


@_op("GlobalAveragePool")
def _gap(node, inputs, out, opset=21):
    x = inputs[0]
    return (x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype),)


@_op("GlobalMaxPool")
def _gmp(node, inputs, out, opset=21):
    x = inputs[0]
    return (x.max(axis=tuple(range(2, x.ndim)), keepdims=True),)


# -- normalization ----------------------------------------------------------------------------

@_op("BatchNormalization")
def _batchnorm(node, inputs, out, opset=21):
    x, scale, bias, mean, var = inputs[:5]
    eps = attr(node, "epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    k = (scale / np.sqrt(var + np.asarray(eps, var.dtype))).astype(x.dtype)
    y = x * k.reshape(shape)
    y += (bias - mean * k).astype(x.dtype).reshape(shape)
    return (y,) + (None,) * (len(node.outputs) - 1)


@_op("LRN")
def _lrn(node, inputs, out, opset=21):
    x = inputs[0]
    size = attr(node, "size")
    alpha, beta, bias = attr(node, "alpha", 1e-4), attr(node, "beta", 0.75), attr(node, "bias", 1.0)
    sq = np.square(x, dtype=np.float64)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    padded = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    csum = np.cumsum(padded, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    C = x.shape[1]
    window = csum[:, size:size + C] - csum[:, 0:C]
    return ((x / (bias + alpha / size * window) ** beta).astype(x.dtype),)


@_op("Softmax")
def _softmax(node, inputs, out, opset=21):
    x = inputs[0]
    axis = attr(node, "axis", -1 if opset >= 13 else 1)
    axis %= x.ndim
    if opset < 13:  # coerced to 2-D at axis
        shape = x.shape
        x = x.reshape(math.prod(shape[:axis]), -1)
        axis = 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return ((y.reshape(shape) if opset < 13 else y),)
