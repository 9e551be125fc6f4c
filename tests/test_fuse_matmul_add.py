"""fuse-matmul-add: MatMul (2-D input, constant 2-D weight) + Add -> Gemm."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes.transforms.fuse_matmul_add import gemm_c_fits
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# Gemm computes the same sum of products plus C as MatMul + Add (fp32: rtol 1e-5, atol 1e-6).


def matmul_add(c_shape=(5,), a_shape=(3, 4), *, swap=False, weight_input=False, opset=17,
               elem=F32, c_input=False, second_user=False):
    np_type = helper.tensor_dtype_to_np_dtype(elem)
    rng = np.random.default_rng(0)
    inits, inputs = {}, [("a", elem, list(a_shape))]
    w = rng.standard_normal((4, 5)).astype(np_type)
    if weight_input:
        inputs.append(("w", elem, [4, 5]))
    else:
        inits["w"] = w
    if c_input:
        inputs.append(("c", elem, list(c_shape)))
    else:
        inits["c"] = rng.standard_normal(c_shape).astype(np_type)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"], name="fc"),
             helper.make_node("Add", ["c", "mm"] if swap else ["mm", "c"], ["y"])]
    outputs = [("y", elem, None)]
    if second_user:
        nodes.append(helper.make_node("Relu", ["mm"], ["z"]))
        outputs.append(("z", elem, None))
    return make_model(nodes, inputs, outputs, inits, opset=opset)


@pytest.mark.parametrize("kw", [
    dict(), dict(c_shape=(1, 5)), dict(c_shape=(3, 5)), dict(c_shape=(3, 1)), dict(c_shape=()),
    dict(c_shape=(1,)), dict(swap=True), dict(c_input=True), dict(opset=9),
    dict(a_shape=("N", 4)),
])
def test_fuses_into_gemm(kw):
    model, result = check_rewrite(matmul_add(**kw), "fuse-matmul-add")
    assert result.stats["applied:matmul-add-to-gemm"] == 1
    assert op_counts(model) == {"Gemm": 1}
    gemm = model.graph.nodes[0]
    assert gemm.name == "fc" and gemm.output.name == "y"


def test_text_in_text_out():
    proto = make_model(
        [helper.make_node("MatMul", ["a", "w"], ["mm"]), helper.make_node("Add", ["mm", "c"], ["y"])],
        [("a", F32, ["N", 4])], [("y", F32, ["N", 3])],
        {"w": np.ones((4, 3), np.float32), "c": np.array([[1.0, 2.0, 3.0]], np.float32)})
    model, _ = check_rewrite(proto, "fuse-matmul-add")
    assert irlib.format_graph(model.graph) == """\
graph main(%a: f32[N,4]) {
  %w: f32[4,3] = const
  %c: f32[1,3] = const [1.0, 2.0, 3.0]
  %y: f32[N,3] = Gemm(%a, %w, %c)
  return %y
}
"""


@pytest.mark.parametrize("kw,reason", [
    (dict(a_shape=(2, 3, 4)), "not known to be 2-D"),
    (dict(weight_input=True), "not a constant"),
    (dict(c_shape=(2, 3, 5)), "grow the output"),
    (dict(c_shape=("N", 5), c_input=True, a_shape=("N", 4)), "not static"),
    (dict(c_shape=(3, 5), a_shape=("N", 4)), "rows"),
    (dict(opset=6), "opset 7"),
    (dict(elem=TensorProto.INT8), "does not take"),
    (dict(second_user=True), "outside the match"),
])
def test_refused(kw, reason):
    model = irlib.from_onnx(matmul_add(**kw))
    run_pass(model, "infer-shapes")
    result = run_pass(model, "fuse-matmul-add")
    assert not result.changed and result.stats["refused:matmul-add-to-gemm"] == 1
    assert op_counts(model)["MatMul"] == 1


def test_refusal_reasons_are_recorded():
    from passes.rewrite import RewriteDriver
    from passes.transforms.fuse_matmul_add import MatMulAddToGemm

    model = irlib.from_onnx(matmul_add(c_shape=(2, 3, 5)))
    stats = RewriteDriver([MatMulAddToGemm()]).run(model)
    (reason,) = stats.refused["matmul-add-to-gemm"]
    assert reason == "bias of rank 3 would grow the output"


def test_gemm_c_fits():
    assert gemm_c_fits((5,), 3, 5) is None and gemm_c_fits((3, 1), 3, 5) is None
    assert gemm_c_fits((4,), 3, 5) and gemm_c_fits((3, 5), "N", 5) and gemm_c_fits(None, 3, 5)
