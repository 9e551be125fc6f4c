"""fuse-gelu: the erf and tanh GELU decompositions -> Gelu (opset >= 20).

Numerics against ORT with its optimizations off: the erf form with float32-exact constants within
1e-6 (rtol and atol), the tanh form within 1e-5; ``x / 1.4142`` (a rounded sqrt 2, which the
fusion accepts) within 1e-5 absolute (the rounding itself moves the output by up to 3e-6).
"""

from __future__ import annotations

import math

import numpy as np
import onnx.parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import RewriteDriver
from passes.transforms.fuse_gelu import GeluPattern, read_polynomial
from passes.transforms.fuse_layer_norm import NoMatch
from test_fuse_support import check_rewrite, op_counts, run_pass

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16
ERF_TOL = dict(rtol=1e-6, atol=1e-6)
TANH_TOL = dict(rtol=1e-5, atol=1e-5)


class Builder:
    """Collects nodes and scalar initializers: ``b.op("Mul", "x", b.c(0.5))``."""

    def __init__(self, np_elem=np.float32):
        self.nodes, self.inits, self.np_elem, self.n = [], {}, np_elem, 0

    def c(self, value, shape=()):
        name = f"c{len(self.inits)}"
        self.inits[name] = np.full(shape, value, self.np_elem)
        return name

    def op(self, op_type, *inputs, out=None):
        self.n += 1
        out = out or f"t{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out]))
        return out


def outer(b, x, u, half, out=None):
    """0.5 * x * u grouped as ``half``: first ((x*0.5)*u), last ((x*u)*0.5), inner (x*(u*0.5)),
    div2 ((x*u)/2)."""
    if half == "first":
        return b.op("Mul", b.op("Mul", x, b.c(0.5)), u, out=out)
    if half == "last":
        return b.op("Mul", b.op("Mul", u, x), b.c(0.5), out=out)
    if half == "inner":
        return b.op("Mul", x, b.op("Mul", b.c(0.5), u), out=out)
    return b.op("Div", b.op("Mul", x, u), b.c(2.0), out=out)


def erf_gelu(b, x, *, arg="div", half="first", sqrt2=math.sqrt(2.0), out=None):
    """x * 0.5 * (1 + erf(x / sqrt 2)) with the argument as ``arg`` (div: x / sqrt 2, mul:
    0.7071 * x) and the product grouped as ``half`` (see ``outer``)."""
    a = b.op("Div", x, b.c(sqrt2)) if arg == "div" else b.op("Mul", b.c(1 / sqrt2), x)
    u = b.op("Add", b.op("Erf", a), b.c(1.0))
    return outer(b, x, u, half, out)


def tanh_gelu(b, x, *, cube="pow", inner="factored", half="first", out=None):
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) with x^3 as ``cube`` (pow, mul_a,
    mul_b) and the argument ``factored`` or ``expanded`` (sqrt(2/pi) x + 0.0356774 x^3)."""
    k = math.sqrt(2.0 / math.pi)
    if cube == "pow":
        x3 = b.op("Pow", x, b.c(3.0))
    elif cube == "mul_a":
        x3 = b.op("Mul", x, b.op("Mul", x, x))
    else:
        x3 = b.op("Mul", b.op("Mul", x, x), x)
    if inner == "factored":
        arg = b.op("Mul", b.c(k), b.op("Add", x, b.op("Mul", b.c(0.044715), x3)))
    else:
        arg = b.op("Add", b.op("Mul", x, b.c(k)), b.op("Mul", x3, b.c(0.044715 * k)))
    u = b.op("Add", b.c(1.0), b.op("Tanh", arg))
    return outer(b, x, u, half, out)


def gelu_model(form="erf", *, opset=20, shape=(2, 3, 4), elem=F32, extra_user=None, **kw):
    b = Builder(helper.tensor_dtype_to_np_dtype(elem))
    # x is computed (Relu of the input + a shift) so that it is not a graph input.
    x = b.op("Add", b.op("Sin", "inp"), b.c(0.25))
    (erf_gelu if form == "erf" else tanh_gelu)(b, x, out="y", **kw)
    outputs = [("y", elem, None)]
    if extra_user is not None:  # read an intermediate elsewhere: the fusion must not fire
        target = [n for n in b.nodes if n.op_type == extra_user][0].output[0]
        b.nodes.append(helper.make_node("Neg", [target], ["z"]))
        outputs.append(("z", elem, None))
    return make_model(b.nodes, [("inp", elem, list(shape))], outputs, b.inits, opset=opset)


def gelu_node(model):
    (g,) = [n for n in model.graph if n.op_type == "Gelu"]
    return g


@pytest.mark.parametrize("kw", [
    dict(), dict(arg="mul"), dict(half="last"), dict(half="inner"), dict(half="div2"),
    dict(arg="mul", half="last", opset=21),
])
def test_erf_form(kw):
    model, result = check_rewrite(gelu_model("erf", **kw), "fuse-gelu", **ERF_TOL)
    assert result.stats["applied:gelu"] == 1
    assert op_counts(model) == {"Sin": 1, "Add": 1, "Gelu": 1}
    g = gelu_node(model)
    assert "approximate" not in g.attributes and g.output.name == "y"


def test_erf_form_with_rounded_sqrt2():
    model, _ = check_rewrite(gelu_model("erf", sqrt2=1.4142), "fuse-gelu", rtol=0, atol=1e-5)
    assert op_counts(model)["Gelu"] == 1


@pytest.mark.parametrize("kw", [
    dict(), dict(cube="mul_a"), dict(cube="mul_b"), dict(inner="expanded"),
    dict(cube="mul_b", inner="expanded"),
])
def test_tanh_form(kw):
    model, result = check_rewrite(gelu_model("tanh", **kw), "fuse-gelu", **TANH_TOL)
    assert op_counts(model) == {"Sin": 1, "Add": 1, "Gelu": 1}
    assert gelu_node(model).attr("approximate") == "tanh"


def test_float16():
    model, _ = check_rewrite(gelu_model("erf", elem=F16), "fuse-gelu", rtol=2e-3, atol=2e-3)
    assert gelu_node(model).output.dtype is irlib.DType.FLOAT16


def test_text_in_text_out():
    proto = onnx.parser.parse_model("""
        <ir_version: 10, opset_import: ["" : 20]>
        main (float[2,3] x) => (float[2,3] y)
        <float s = {1.4142135}, float one = {1.0}, float half = {0.5}>
        {
            a = Div(x, s)
            e = Erf(a)
            u = Add(e, one)
            h = Mul(x, half)
            y = Mul(h, u)
        }
    """)
    model, _ = check_rewrite(proto, "fuse-gelu", "dce", feeds={"x": np.linspace(
        -3, 3, 6, dtype=np.float32).reshape(2, 3)}, **ERF_TOL)
    assert irlib.format_graph(model.graph) == """\
graph main(%x: f32[2,3]) {
  %y: f32[2,3] = Gelu(%x)
  return %y
}
"""


@pytest.mark.parametrize("make,reason", [
    (lambda: gelu_model("erf", opset=19), "not in opset 19"),
    (lambda: gelu_model("tanh", opset=18), "not in opset 18"),
])
def test_old_opset_is_left_alone(make, reason):
    model = irlib.from_onnx(make())
    run_pass(model, "infer-shapes")
    before = irlib.format_graph(model.graph)
    stats = RewriteDriver([GeluPattern()]).run(model)
    (got,) = stats.refused["gelu"]
    assert reason in got and stats.rewrites == 0
    assert irlib.format_graph(model.graph) == before


@pytest.mark.parametrize("user", ["Erf", "Div"])
def test_intermediate_with_another_user_is_left_alone(user):
    model = irlib.from_onnx(gelu_model("erf", extra_user=user))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fuse-gelu").changed
    assert "Gelu" not in op_counts(model)


@pytest.mark.parametrize("kw", [
    dict(sqrt2=2.0),        # erf(x / 2): not GELU
    dict(half="first", sqrt2=1.5),
])
def test_wrong_constants_are_not_matched(kw):
    model = irlib.from_onnx(gelu_model("erf", **kw))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fuse-gelu").changed


def test_wrong_half_is_not_matched():
    b = Builder()
    u = b.op("Add", b.op("Erf", b.op("Div", "x", b.c(math.sqrt(2)))), b.c(1.0))
    b.op("Mul", b.op("Mul", "x", b.c(0.25)), u, out="y")
    model = irlib.from_onnx(make_model(b.nodes, [("x", F32, [3])], [("y", F32, None)], b.inits,
                                       opset=20))
    assert not run_pass(model, "fuse-gelu").changed


def test_broadcasting_constant_is_refused():
    """A [1, 1, 1] constant on a 2-D x would make the output 3-D: not Gelu(x)."""
    b = Builder()
    u = b.op("Add", b.op("Erf", b.op("Div", "x", b.c(math.sqrt(2)))), b.c(1.0))
    b.op("Mul", b.op("Mul", "x", b.c(0.5, shape=(1, 1, 1))), u, out="y")
    model = irlib.from_onnx(make_model(b.nodes, [("x", F32, [2, 3])], [("y", F32, None)],
                                       b.inits, opset=20))
    run_pass(model, "infer-shapes")
    stats = RewriteDriver([GeluPattern()]).run(model)
    assert stats.rewrites == 0 and "bigger shape" in next(iter(stats.refused["gelu"]))


def test_read_polynomial():
    """The Erf/Tanh argument is read as algebra: 3 x^3 - x / 4 in any spelling."""
    b = Builder()
    x = b.op("Relu", "inp")
    p = b.op("Sub", b.op("Mul", b.c(3.0), b.op("Pow", x, b.c(3.0))), b.op("Div", x, b.c(4.0)))
    q = b.op("Add", b.op("Mul", x, x), "other")  # two variables: not a polynomial in one
    b.op("Identity", p, out="y")
    b.op("Identity", q, out="z")
    model = irlib.from_onnx(make_model(b.nodes, [("inp", F32, [2]), ("other", F32, [2])],
                                       ["y", "z"], b.inits, opset=20))
    y, z = (v.producer().inputs[0] for v in model.graph.outputs)
    poly, var = read_polynomial(y)
    assert poly == {3: 3.0, 1: -0.25} and var.name == x
    with pytest.raises(NoMatch):
        read_polynomial(z)


@settings(max_examples=30, deadline=None)
@given(form=st.sampled_from(["erf", "tanh"]),
       half=st.sampled_from(["first", "last", "inner", "div2"]),
       arg=st.sampled_from(["div", "mul"]), cube=st.sampled_from(["pow", "mul_a", "mul_b"]),
       inner=st.sampled_from(["factored", "expanded"]), shape=st.sampled_from([(5,), (2, 3)]))
def test_every_spelling_fuses(form, half, arg, cube, inner, shape):
    """Property: every spelling fuses into one Gelu; ORT agrees (tanh tolerance 1e-5); the
    verifier holds and a second run changes nothing (check_rewrite)."""
    kw = dict(half=half, arg=arg) if form == "erf" else dict(half=half, cube=cube, inner=inner)
    model, _ = check_rewrite(gelu_model(form, shape=shape, **kw), "fuse-gelu", **TANH_TOL)
    assert op_counts(model)["Gelu"] == 1 and model.graph.outputs[0].name == "y"
