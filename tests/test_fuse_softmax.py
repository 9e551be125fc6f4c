"""fuse-softmax: Exp(x - ReduceMax(x)) / ReduceSum(Exp(..)) over one axis -> Softmax.

Numerics against ORT with its optimizations off within rtol 1e-5 / atol 1e-6 (Softmax computes
the same max-shifted exponentials; only the order of the sum may differ).
"""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import RewriteDriver
from passes.transforms.fuse_softmax import SoftmaxDiv, SoftmaxMulReciprocal
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT


def softmax_model(*, opset=13, shape=(2, 3, 5), axis=-1, sum_axis=None, recip=False,
                  keepdims=1, second_user=False, shift=True):
    sum_axis = axis if sum_axis is None else sum_axis
    inits, nodes = {}, []

    def reduce(op, inp, out, ax):
        as_input = opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            inits[f"{out}_axes"] = np.array([ax], np.int64)
            return helper.make_node(op, [inp, f"{out}_axes"], [out], keepdims=keepdims)
        return helper.make_node(op, [inp], [out], axes=[ax], keepdims=keepdims)

    if shift:
        nodes.append(reduce("ReduceMax", "x", "mx", axis))
        nodes.append(helper.make_node("Sub", ["x", "mx"], ["d"]))
        nodes.append(helper.make_node("Exp", ["d"], ["e"]))
    else:
        nodes.append(helper.make_node("Exp", ["x"], ["e"]))
    nodes.append(reduce("ReduceSum", "e", "s", sum_axis))
    if recip:
        nodes.append(helper.make_node("Reciprocal", ["s"], ["r"]))
        nodes.append(helper.make_node("Mul", ["r", "e"], ["y"]))
    else:
        nodes.append(helper.make_node("Div", ["e", "s"], ["y"], name="softmax_div"))
    outputs = [("y", F32, None)]
    if second_user:
        nodes.append(helper.make_node("Neg", ["s"], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, [("x", F32, list(shape))], outputs, inits, opset=opset)


@pytest.mark.parametrize("kw,axis", [
    (dict(), -1), (dict(axis=1), -2), (dict(axis=0, opset=18), -3), (dict(recip=True), -1),
    (dict(opset=11), 2), (dict(opset=11, axis=2), 2), (dict(opset=17, axis=-2), -2),
])
def test_fuses(kw, axis):
    model, _ = check_rewrite(softmax_model(**kw), "fuse-softmax")
    assert op_counts(model) == {"Softmax": 1}
    (sm,) = model.graph.nodes
    assert sm.attr("axis") == axis and sm.output.name == "y"


def test_text_in_text_out():
    proto = onnx.parser.parse_model("""
        <ir_version: 10, opset_import: ["" : 18]>
        main (float[2,4] x) => (float[2,4] y)
        <int64[1] ax = {1}>
        {
            m = ReduceMax(x, ax)
            d = Sub(x, m)
            e = Exp(d)
            s = ReduceSum(e, ax)
            y = Div(e, s)
        }
    """)
    model, _ = check_rewrite(proto, "fuse-softmax", "dce")
    assert irlib.format_graph(model.graph) == """\
graph main(%x: f32[2,4]) {
  %y: f32[2,4] = Softmax(%x) {axis=-1}
  return %y
}
"""


@pytest.mark.parametrize("kw,reason", [
    (dict(opset=11, axis=1), "flattens at its axis"),
    (dict(axis=1, sum_axis=2), "different axes"),
    (dict(keepdims=0), "keepdims=0"),
])
def test_refused(kw, reason):
    model = irlib.from_onnx(softmax_model(**kw))
    run_pass(model, "infer-shapes")
    before = irlib.format_graph(model.graph)
    stats = RewriteDriver([SoftmaxDiv(), SoftmaxMulReciprocal()]).run(model)
    assert stats.rewrites == 0
    (got,) = stats.refused["softmax"]
    assert reason in got
    assert irlib.format_graph(model.graph) == before


def test_unshifted_exp_is_not_softmax():
    """Exp(x) / sum(Exp(x)) overflows where Softmax does not: left alone."""
    proto = softmax_model(shift=False)
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-softmax").changed
    x = np.full((2, 3, 5), 100.0, np.float32)
    from test_fuse_support import ort_run
    with np.errstate(all="ignore"):
        assert np.isnan(ort_run(proto, {"x": x})[0]).all()


def test_intermediate_with_another_user_is_left_alone():
    model = irlib.from_onnx(softmax_model(second_user=True))
    assert not run_pass(model, "fuse-softmax").changed
    assert "Softmax" not in op_counts(model)
