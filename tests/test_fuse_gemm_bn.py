"""fuse-gemm-bn: BatchNormalization after MatMul/Gemm with constant weights -> folded weights."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# fp32 tolerance: the fold rounds B * s once (see test_fuse_conv_bn.TOL): rtol 1e-5, atol 1e-5.
TOL = dict(rtol=1e-5, atol=1e-5)


def _bn_params(rng, n):
    return {"scale": rng.uniform(0.5, 2, n).astype(np.float32),
            "beta": rng.standard_normal(n).astype(np.float32),
            "mean": rng.standard_normal(n).astype(np.float32),
            "var": rng.uniform(0.1, 2, n).astype(np.float32)}


def matmul_bn(opset=17, a_shape=(3, 4), n=5, a_input_rank_known=True, seed=0):
    rng = np.random.default_rng(seed)
    inits = {"w": rng.standard_normal((a_shape[-1], n)).astype(np.float32), **_bn_params(rng, n)}
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"], name="fc"),
             helper.make_node("BatchNormalization", ["mm", "scale", "beta", "mean", "var"], ["y"])]
    a = ("a", F32, list(a_shape)) if a_input_rank_known else ("a", F32, None)
    return make_model(nodes, [a], [("y", F32, None)], inits, opset=opset)


def gemm_bn(trans_a=0, trans_b=0, c_shape=(5,), alpha=1.0, beta=1.0, seed=0, c_input=False):
    rng = np.random.default_rng(seed)
    m, k, n = 3, 4, 5
    inits = {"w": rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32),
             **_bn_params(rng, n)}
    ins = ["a", "w"]
    inputs = [("a", F32, [k, m] if trans_a else [m, k])]
    if c_shape is not None:
        ins.append("c")
        if c_input:
            inputs.append(("c", F32, list(c_shape)))
        else:
            inits["c"] = rng.standard_normal(c_shape).astype(np.float32)
    nodes = [helper.make_node("Gemm", ins, ["g"], name="gemm", transA=trans_a, transB=trans_b,
                              alpha=alpha, beta=beta),
             helper.make_node("BatchNormalization", ["g", "scale", "beta", "mean", "var"], ["y"])]
    return make_model(nodes, inputs, [("y", F32, [m, n])], inits)


def test_matmul_bn_becomes_one_gemm():
    model, result = check_rewrite(matmul_bn(), "fuse-gemm-bn", **TOL)
    assert result.stats["applied:matmul-bn"] == 1
    assert op_counts(model) == {"Gemm": 1}
    assert model.graph.nodes[0].name == "fc"


def test_matmul_bn_before_opset_7_is_refused():
    """Neither Gemm nor Add broadcast the shift without broadcast=1 before opset 7."""
    proto = matmul_bn(opset=6)
    proto.graph.node[1].attribute.append(helper.make_attribute("is_test", 1))
    model = irlib.from_onnx(proto)
    result = run_pass(model, "fuse-gemm-bn")
    assert not result.changed and result.stats["refused:matmul-bn"] == 1


def test_matmul_bn_becomes_matmul_add_when_gemm_lacks_the_dtype(monkeypatch):
    """Where the opset's Gemm does not take the dtype, the fold still happens, as MatMul + Add."""
    from passes.transforms import fuse_gemm_bn

    monkeypatch.setattr(fuse_gemm_bn, "op_accepts", lambda *a, **k: False)
    model, _ = check_rewrite(matmul_bn(), "fuse-gemm-bn", **TOL)
    assert op_counts(model) == {"MatMul": 1, "Add": 1}


def test_text_in_text_out():
    """B = [[1, 2]], BN s = [2, 0.5] (scale [2, 1], var [1, 4], eps 0), t = beta - mean*s."""
    inits = {"w": np.array([[1.0, 2.0]], np.float32), "scale": np.array([2.0, 1.0], np.float32),
             "beta": np.array([1.0, 0.0], np.float32), "mean": np.array([1.0, 2.0], np.float32),
             "var": np.array([1.0, 4.0], np.float32)}
    proto = make_model(
        [helper.make_node("MatMul", ["a", "w"], ["mm"]),
         helper.make_node("BatchNormalization", ["mm", "scale", "beta", "mean", "var"], ["y"],
                          epsilon=0.0)],
        [("a", F32, ["N", 1])], [("y", F32, ["N", 2])], inits)
    model, _ = check_rewrite(proto, "fuse-gemm-bn", **TOL)
    run_pass(model, "dce")
    w, c = model.graph.nodes[0].inputs[1:]
    assert irlib.format_graph(model.graph) == f"""\
graph main(%a: f32[N,1]) {{
  %{w.name}: f32[1,2] = const [2.0, 1.0]
  %{c.name}: f32[2] = const [-1.0, -1.0]
  %y: f32[N,2] = Gemm(%a, %{w.name}, %{c.name})
  return %y
}}
"""


@pytest.mark.parametrize("kw", [
    dict(),
    dict(trans_b=1),
    dict(trans_a=1, trans_b=1, alpha=0.5, beta=2.0),
    dict(c_shape=None),
    dict(c_shape=(1, 5)),
    dict(c_shape=(3, 1), beta=-1.0),
    dict(c_shape=(3, 5)),
    dict(c_shape=()),
])
def test_gemm_bn_variants(kw):
    model, result = check_rewrite(gemm_bn(**kw), "fuse-gemm-bn", **TOL)
    assert result.stats["applied:gemm-bn"] == 1
    assert op_counts(model) == {"Gemm": 1}
    gemm = model.graph.nodes[0]
    assert gemm.attr("beta") is None  # C' already carries beta
    assert gemm.attr("transA") == kw.get("trans_a", 0)


def test_gemm_with_runtime_bias_is_not_folded():
    model = irlib.from_onnx(gemm_bn(c_input=True))
    result = run_pass(model, "fuse-gemm-bn")
    assert not result.changed and result.stats["refused:gemm-bn"] == 1


def test_matmul_of_unknown_rank_is_not_folded():
    """BN's channel axis is 1: for a 3-D MatMul that is not B's column axis."""
    model = irlib.from_onnx(matmul_bn(a_input_rank_known=False))
    assert not run_pass(model, "fuse-gemm-bn").changed


def test_matmul_3d_is_not_folded():
    proto = matmul_bn(a_shape=(2, 5, 4), n=5)
    model = irlib.from_onnx(proto)
    run_pass(model, "infer-shapes")
    result = run_pass(model, "fuse-gemm-bn")
    assert not result.changed and op_counts(model)["BatchNormalization"] == 1


def test_matmul_with_second_user_is_not_folded():
    proto = matmul_bn()
    proto.graph.node.append(helper.make_node("Relu", ["mm"], ["z"]))
    proto.graph.output.append(helper.make_tensor_value_info("z", F32, None))
    model = irlib.from_onnx(proto)
    result = run_pass(model, "fuse-gemm-bn")
    assert not result.changed and result.stats["refused:matmul-bn"] == 1


def test_non_constant_bn_params_are_not_folded():
    proto = matmul_bn()
    var = next(t for t in proto.graph.initializer if t.name == "var")
    proto.graph.initializer.remove(var)
    proto.graph.input.append(helper.make_tensor_value_info("var", F32, [5]))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-gemm-bn").changed
