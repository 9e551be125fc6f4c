"""Elementwise ops: unary math, activations, broadcasting binary ops, comparisons, Clip, Where,
variadic Sum/Max/Min/Mean, Cast, Identity, Dropout.

Relax's binary ops broadcast like numpy, as ONNX does (opset 7 and later). Where Relax has no op
(HardSigmoid, HardSwish, Elu, Selu, ...), the converter spells out ONNX's formula.
"""

from __future__ import annotations

from backends.tvm._env import relax
from backends.tvm.converters._common import scalar
from backends.tvm.converters._registry import converter
from irlib import DType, Node

_UNARY = {
    "Relu": "nn.relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log",
    "Sqrt": "sqrt", "Abs": "abs", "Neg": "negative", "Floor": "floor", "Ceil": "ceil",
    "Erf": "erf", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos",
    "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh",
    "Atanh": "atanh", "Sign": "sign", "Not": "logical_not", "IsNaN": "isnan",
}


def _op(path: str):
    f = relax.op
    for part in path.split("."):
        f = getattr(f, part)
    return f


def _unary(path: str):
    def convert(cx, node: Node):
        return _op(path)(cx.arg(node, 0))

    return convert


for _name, _path in _UNARY.items():
    converter(_name)(_unary(_path))


@converter("Identity", "Dropout", notes="Dropout: inference (the mask output is all true)")
def identity(cx, node: Node):
    x = cx.arg(node, 0)
    if node.op_type == "Dropout" and len(node.outputs) > 1:
        return [x, relax.op.ones_like(x, "bool")]
    return x


@converter("Reciprocal")
def reciprocal(cx, node: Node):
    x = cx.arg(node, 0)
    return relax.op.divide(scalar(cx, 1, x), x)


def _round_half_even(cx, x):
    # ONNX Round rounds halves to even; floor(x + 0.5) rounds them up, so fix the odd ones.
    half, one, two = scalar(cx, 0.5, x), scalar(cx, 1, x), scalar(cx, 2, x)
    r = cx.emit(relax.op.floor(relax.op.add(x, half)))
    tie = relax.op.equal(relax.op.subtract(r, x), half)
    odd = relax.op.equal(relax.op.floor_mod(r, two), one)
    return relax.op.where(relax.op.logical_and(tie, odd), relax.op.subtract(r, one), r)


@converter("Round", notes="halves to even, as ONNX")
def round_(cx, node: Node):
    return _round_half_even(cx, cx.arg(node, 0))


@converter("IsInf", notes="detect_negative/detect_positive honoured")
def isinf(cx, node: Node):
    x = cx.arg(node, 0)
    neg, pos = node.attr("detect_negative", 1), node.attr("detect_positive", 1)
    inf = relax.op.isinf(x)
    if neg and pos:
        return inf
    zero = scalar(cx, 0, x)
    side = relax.op.greater(x, zero) if pos else relax.op.less(x, zero)
    return relax.op.logical_and(inf, side) if (neg or pos) else relax.op.zeros_like(inf)


# -- activations with parameters ----------------------------------------------------------
@converter("LeakyRelu")
def leaky_relu(cx, node: Node):
    return relax.op.nn.leakyrelu(cx.arg(node, 0), float(node.attr("alpha", 0.01)))


@converter("PRelu", notes="slope broadcast as ONNX (unidirectional)")
def prelu(cx, node: Node):
    x, slope = cx.arg(node, 0), cx.arg(node, 1)
    zero = scalar(cx, 0, x)
    return relax.op.where(relax.op.less(x, zero), relax.op.multiply(x, slope), x)


@converter("Elu")
def elu(cx, node: Node):
    x = cx.arg(node, 0)
    alpha = scalar(cx, float(node.attr("alpha", 1.0)), x)
    neg = relax.op.multiply(alpha, relax.op.subtract(relax.op.exp(x), scalar(cx, 1, x)))
    return relax.op.where(relax.op.greater(x, scalar(cx, 0, x)), x, neg)


@converter("Selu")
def selu(cx, node: Node):
    x = cx.arg(node, 0)
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    neg = relax.op.multiply(scalar(cx, alpha, x),
                            relax.op.subtract(relax.op.exp(x), scalar(cx, 1, x)))
    inner = relax.op.where(relax.op.greater(x, scalar(cx, 0, x)), x, neg)
    return relax.op.multiply(scalar(cx, gamma, x), inner)


@converter("Celu")
def celu(cx, node: Node):
    x = cx.arg(node, 0)
    alpha = float(node.attr("alpha", 1.0))
    a = scalar(cx, alpha, x)
    neg = relax.op.multiply(a, relax.op.subtract(relax.op.exp(relax.op.divide(x, a)),
                                                 scalar(cx, 1, x)))
    return relax.op.add(relax.op.maximum(x, scalar(cx, 0, x)),
                        relax.op.minimum(scalar(cx, 0, x), neg))


@converter("HardSigmoid")
def hard_sigmoid(cx, node: Node):
    x = cx.arg(node, 0)
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    y = relax.op.add(relax.op.multiply(x, scalar(cx, alpha, x)), scalar(cx, beta, x))
    return relax.op.minimum(relax.op.maximum(y, scalar(cx, 0, x)), scalar(cx, 1, x))


@converter("HardSwish")
def hard_swish(cx, node: Node):
    x = cx.arg(node, 0)
    y = relax.op.add(relax.op.multiply(x, scalar(cx, 1.0 / 6.0, x)), scalar(cx, 0.5, x))
    gate = relax.op.minimum(relax.op.maximum(y, scalar(cx, 0, x)), scalar(cx, 1, x))
    return relax.op.multiply(x, gate)


@converter("Softplus")
def softplus(cx, node: Node):
    x = cx.arg(node, 0)
    # log(1 + exp(x)) computed as max(x, 0) + log(1 + exp(-|x|)), which never overflows
    return relax.op.add(relax.op.maximum(x, scalar(cx, 0, x)),
                        relax.op.log(relax.op.add(scalar(cx, 1, x),
                                                  relax.op.exp(relax.op.negative(
                                                      relax.op.abs(x))))))


@converter("Softsign")
def softsign(cx, node: Node):
    x = cx.arg(node, 0)
    return relax.op.divide(x, relax.op.add(scalar(cx, 1, x), relax.op.abs(x)))


@converter("Mish")
def mish(cx, node: Node):
    x = cx.arg(node, 0)
    sp = relax.op.add(relax.op.maximum(x, scalar(cx, 0, x)),
                      relax.op.log(relax.op.add(scalar(cx, 1, x),
                                                relax.op.exp(relax.op.negative(relax.op.abs(x))))))
    return relax.op.multiply(x, relax.op.tanh(sp))


@converter("Gelu", notes="approximate=none (erf) or tanh")
def gelu(cx, node: Node):
    x = cx.arg(node, 0)
    if node.attr("approximate", "none") == "tanh":
        return relax.op.nn.gelu_tanh(x)
    return relax.op.nn.gelu(x)


@converter("ThresholdedRelu")
def thresholded_relu(cx, node: Node):
    x = cx.arg(node, 0)
    alpha = scalar(cx, float(node.attr("alpha", 1.0)), x)
    return relax.op.where(relax.op.greater(x, alpha), x, scalar(cx, 0, x))


@converter("Clip", notes="min/max as attributes (opset < 11) or inputs")
def clip(cx, node: Node):
    x = cx.arg(node, 0)
    if cx.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
        lo = None if lo is None else scalar(cx, lo, x)
        hi = None if hi is None else scalar(cx, hi, x)
    else:
        lo, hi = cx.arg(node, 1), cx.arg(node, 2)
    y = x
    if lo is not None:
        y = relax.op.maximum(y, lo)
    if hi is not None:
        y = relax.op.minimum(y, hi)
    return y


# -- binary -------------------------------------------------------------------------------
_BINARY = {
    "Add": "add", "Sub": "subtract", "Mul": "multiply", "Equal": "equal", "Less": "less",
    "Greater": "greater", "LessOrEqual": "less_equal", "GreaterOrEqual": "greater_equal",
    "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor",
    "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}


def _binary(path: str):
    def convert(cx, node: Node):
        return _op(path)(cx.arg(node, 0), cx.arg(node, 1))

    return convert


for _name, _path in _BINARY.items():
    converter(_name)(_binary(_path))


def _is_int(cx, e) -> bool:
    d = cx.dtype(e)
    return d.startswith("int") or d.startswith("uint")


@converter("Div", notes="integer division truncates toward zero, as ONNX")
def div(cx, node: Node):
    a, b = cx.arg(node, 0), cx.arg(node, 1)
    if _is_int(cx, a):  # C semantics: truncate; floor_divide rounds toward -inf
        q = relax.op.floor_divide(a, b)
        r = relax.op.subtract(a, relax.op.multiply(q, b))
        zero = scalar(cx, 0, a)
        fix = relax.op.logical_and(relax.op.not_equal(r, zero),
                                   relax.op.logical_xor(relax.op.less(a, zero),
                                                        relax.op.less(b, zero)))
        return relax.op.where(fix, relax.op.add(q, scalar(cx, 1, a)), q)
    return relax.op.divide(a, b)


@converter("Mod", notes="fmod=0: sign of the divisor; fmod=1: sign of the dividend")
def mod(cx, node: Node):
    a, b = cx.arg(node, 0), cx.arg(node, 1)
    if node.attr("fmod", 0):
        return relax.op.mod(a, b)
    return relax.op.floor_mod(a, b)


@converter("Pow", notes="exponent cast to the base's type")
def pow_(cx, node: Node):
    a, b = cx.arg(node, 0), cx.arg(node, 1)
    exp = cx.const(node, 1)
    if exp is not None and exp.size == 1 and float(exp.reshape(())) == 2.0:
        return relax.op.multiply(a, a)  # exact, and what ORT computes for x^2
    if cx.dtype(b) != cx.dtype(a):
        b = relax.op.astype(b, cx.dtype(a))
    return relax.op.power(a, b)


@converter("Max", "Min", "Sum", "Mean", notes="variadic, broadcasting")
def variadic(cx, node: Node):
    args = [a for a in cx.args(node) if a is not None]
    f = {"Max": relax.op.maximum, "Min": relax.op.minimum, "Sum": relax.op.add,
         "Mean": relax.op.add}[node.op_type]
    y = args[0]
    for a in args[1:]:
        y = cx.emit(f(y, a))
    if node.op_type == "Mean" and len(args) > 1:
        y = relax.op.divide(y, scalar(cx, len(args), y))
    return y


@converter("Where")
def where(cx, node: Node):
    return relax.op.where(cx.arg(node, 0), cx.arg(node, 1), cx.arg(node, 2))


# -- types --------------------------------------------------------------------------------
def _cast_check(node: Node) -> bool | str:
    from backends.tvm.lowering import TVM_DTYPES

    to = node.attr("to")
    if to is None or DType(to) not in TVM_DTYPES:
        return f"Cast: to={DType(to).name.lower() if to is not None else '?'} is not supported"
    return True


@converter("Cast", check=_cast_check, notes="to bool: x != 0")
def cast(cx, node: Node):
    from backends.tvm.lowering import TVM_DTYPES

    x = cx.arg(node, 0)
    to = TVM_DTYPES[DType(node.attr("to"))]
    if to == "bool" and cx.dtype(x) != "bool":
        return relax.op.not_equal(x, scalar(cx, 0, x))
    return relax.op.astype(x, to)


@converter("CastLike")
def cast_like(cx, node: Node):
    x, like = cx.arg(node, 0), cx.arg(node, 1)
    to = cx.dtype(like)
    if to == "bool" and cx.dtype(x) != "bool":
        return relax.op.not_equal(x, scalar(cx, 0, x))
    return relax.op.astype(x, to)
