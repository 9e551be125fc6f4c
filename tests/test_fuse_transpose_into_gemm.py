"""fold-transpose-into-gemm: Transpose of a Gemm/2-D MatMul operand -> transA/transB."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# Gemm reads the same elements in the same order whatever the flags: fp32 rtol 1e-5, atol 1e-6.


def gemm_with_transposes(ta=True, tb=False, trans_a=0, trans_b=0, perm=(1, 0), bias=True,
                         op="Gemm", opset=17, shared=False):
    rng = np.random.default_rng(0)
    m, k, n = 3, 4, 5
    a_shape = [k, m] if trans_a else [m, k]
    b_shape = [n, k] if trans_b else [k, n]
    if ta:
        a_shape = a_shape[::-1] if perm == (1, 0) else a_shape
    if tb:
        b_shape = b_shape[::-1] if perm == (1, 0) else b_shape
    inits = {"b": rng.standard_normal(b_shape).astype(np.float32)}
    nodes, a_name, b_name = [], "a", "b"
    if ta:
        nodes.append(helper.make_node("Transpose", ["a"], ["at"], perm=list(perm)))
        a_name = "at"
    if tb:
        nodes.append(helper.make_node("Transpose", ["b"], ["bt"], perm=list(perm)))
        b_name = "bt"
    ins = [a_name, b_name]
    attrs = {}
    if op == "Gemm":
        attrs = dict(transA=trans_a, transB=trans_b, alpha=0.5)
        if bias:
            inits["c"] = rng.standard_normal(n).astype(np.float32)
            ins.append("c")
    nodes.append(helper.make_node(op, ins, ["y"], name="g", **attrs))
    outputs = [("y", F32, None)]
    if shared:
        nodes.append(helper.make_node("Relu", [a_name], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, [("a", F32, a_shape)], outputs, inits, opset=opset)


@pytest.mark.parametrize("kw", [
    dict(), dict(ta=False, tb=True), dict(tb=True), dict(trans_a=1), dict(tb=True, trans_b=1),
    dict(bias=False), dict(perm=(0, 1)),
])
def test_gemm_transposes_fold(kw):
    model, result = check_rewrite(gemm_with_transposes(**kw), "fold-transpose-into-gemm")
    assert op_counts(model) == {"Gemm": 1}
    gemm = model.graph.nodes[0]
    swap = kw.get("perm", (1, 0)) == (1, 0)
    assert gemm.attr("transA") == kw.get("trans_a", 0) ^ (kw.get("ta", True) and swap)
    assert gemm.attr("alpha") == 0.5


@pytest.mark.parametrize("kw", [dict(), dict(ta=False, tb=True), dict(tb=True)])
def test_matmul_transposes_become_gemm(kw):
    model, _ = check_rewrite(gemm_with_transposes(op="MatMul", **kw), "fold-transpose-into-gemm")
    assert op_counts(model) == {"Gemm": 1}


def test_matmul_before_opset_11_is_kept():
    model = irlib.from_onnx(gemm_with_transposes(op="MatMul", opset=10))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fold-transpose-into-gemm").changed


def test_shared_transpose_is_kept():
    model = irlib.from_onnx(gemm_with_transposes(shared=True))
    result = run_pass(model, "fold-transpose-into-gemm")
    assert not result.changed and op_counts(model)["Transpose"] == 1


def test_text_in_text_out():
    model, _ = check_rewrite(gemm_with_transposes(tb=True, bias=False), "fold-transpose-into-gemm")
    assert irlib.format_graph(model.graph) == """\
graph main(%a: f32[4,3]) {
  %b: f32[5,4] = const
  %y: f32[3,5] = Gemm(%a, %b) {alpha=0.5, transA=1, transB=1}
  return %y
}
"""
