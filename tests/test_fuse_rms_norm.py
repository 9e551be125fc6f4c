"""fuse-rms-norm: x / sqrt(mean(x^2) + eps) * gamma -> RMSNormalization (opset >= 23).

ONNX Runtime 1.32 runs RMSNormalization on CPU, so the fused model is checked against the
decomposition with ORT's optimizations off: float32 within rtol 1e-5 / atol 1e-5, the float16
Cast variant (LLaMA) within 1e-3.
"""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import RewriteDriver, level_pipeline, run_passes
from passes.transforms.fuse_rms_norm import RMSNormPattern
from test_fuse_support import check_rewrite, op_counts, run_pass

F32, F16, F64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE
TOL = dict(rtol=1e-5, atol=1e-5)


def rms_model(*, opset=23, shape=(2, 3, 8), axes=(-1,), square="pow", norm="recip", gamma=True,
              cast=None, eps_input=False, second_user=False, elem=F32, gamma_first=False):
    """An RMSNorm decomposition; ``cast=F16`` is the LLaMA variant (compute in float32)."""
    rng = np.random.default_rng(2)
    np_elem = helper.tensor_dtype_to_np_dtype(elem)
    work_np = np.float32 if cast is not None else np_elem
    inits, nodes, x = {}, [], "x"
    if cast is not None:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=F32))
        x = "xf"
    if square == "pow":
        inits["two"] = np.array(2.0, work_np)
        nodes.append(helper.make_node("Pow", [x, "two"], ["sq"]))
    else:
        nodes.append(helper.make_node("Mul", [x, x], ["sq"]))
    if opset >= 18:
        inits["axes"] = np.array(axes, np.int64)
        nodes.append(helper.make_node("ReduceMean", ["sq", "axes"], ["ms"]))
    else:
        nodes.append(helper.make_node("ReduceMean", ["sq"], ["ms"], axes=list(axes)))
    if not eps_input:
        inits["eps"] = np.array(1e-6, work_np)
    nodes.append(helper.make_node("Add", ["eps", "ms"], ["ve"]))
    nodes.append(helper.make_node("Sqrt", ["ve"], ["std"]))
    if norm == "recip":
        nodes.append(helper.make_node("Reciprocal", ["std"], ["r"]))
        nodes.append(helper.make_node("Mul", [x, "r"], ["n"]))
    else:
        nodes.append(helper.make_node("Div", [x, "std"], ["n"]))
    cur = "n"
    if cast is not None:
        nodes.append(helper.make_node("Cast", ["n"], ["nt"], to=cast))
        cur = "nt"
    out_elem = cast if cast is not None else elem
    if gamma:
        g_np = helper.tensor_dtype_to_np_dtype(out_elem)
        inits["gamma"] = (rng.standard_normal([shape[a] for a in axes]) + 1).astype(g_np)
        nodes.append(helper.make_node("Mul", ["gamma", cur] if gamma_first else [cur, "gamma"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [cur], ["y"]))
    inputs = [("x", cast if cast is not None else elem, list(shape))]
    if eps_input:
        inputs.append(("eps", elem, []))
    outputs = [("y", out_elem, None)]
    if second_user:
        nodes.append(helper.make_node("Neg", ["ms"], ["z"]))
        outputs.append(("z", elem, None))
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def fused(model):
    (node,) = [n for n in model.graph if n.op_type == "RMSNormalization"]
    return node


@pytest.mark.parametrize("kw", [
    dict(), dict(norm="div"), dict(square="mul"), dict(gamma_first=True), dict(gamma=False),
    dict(shape=(2, 4, 8), axes=(-2, -1)), dict(opset=24),
])
def test_fuses(kw):
    model, result = check_rewrite(rms_model(**kw), "fuse-rms-norm", **TOL)
    assert result.stats["applied:rms-norm"] == 1
    node = fused(model)
    assert node.attr("axis") == -len(kw.get("axes", (-1,))) and node.attr("stash_type") == 1
    assert node.attr("epsilon") == pytest.approx(1e-6)
    assert set(op_counts(model)) <= {"RMSNormalization", "Identity"}


def test_llama_cast_variant_float16():
    """Cast(x16, float) ... Cast(n, float16) * gamma16: the standard's definition, stash_type=1."""
    model, _ = check_rewrite(rms_model(cast=F16), "fuse-rms-norm", rtol=1e-3, atol=1e-3)
    assert op_counts(model) == {"RMSNormalization": 1}
    node = fused(model)
    assert node.inputs[0].name == "x" and node.attr("stash_type") == 1
    assert node.output.dtype is irlib.DType.FLOAT16


def test_float16_without_casts_stashes_in_float16():
    """Computed in float16 throughout: stash_type=10 says exactly that."""
    model, _ = check_rewrite(rms_model(elem=F16), "fuse-rms-norm", rtol=2e-3, atol=2e-3)
    assert fused(model).attr("stash_type") == int(irlib.DType.FLOAT16)


def test_text_in_text_out():
    proto = onnx.parser.parse_model("""
        <ir_version: 10, opset_import: ["" : 23]>
        main (float[2,4] x) => (float[2,4] y)
        <float[4] gamma = {1.0, 2.0, 3.0, 4.0}, float eps = {1e-6}, int64[1] axes = {-1}>
        {
            sq = Mul(x, x)
            ms = ReduceMean(sq, axes)
            ve = Add(ms, eps)
            std = Sqrt(ve)
            n = Div(x, std)
            y = Mul(gamma, n)
        }
    """)
    model, _ = check_rewrite(proto, "fuse-rms-norm", "dce", **TOL)
    assert irlib.format_graph(model.graph) == """\
graph main(%x: f32[2,4]) {
  %gamma: f32[4] = const [1.0, 2.0, 3.0, 4.0]
  %y: f32[2,4] = RMSNormalization(%x, %gamma) {axis=-1, epsilon=1e-06, stash_type=1}
  return %y
}
"""


@pytest.mark.parametrize("kw,reason", [
    (dict(opset=22), "not in opset 22"),
    (dict(opset=18, shape=(2, 4, 8), axes=(1,)), "not the last ones"),
    (dict(eps_input=True), "epsilon is not a constant"),
])
def test_refused(kw, reason):
    model = irlib.from_onnx(rms_model(**kw))
    run_pass(model, "infer-shapes")
    before = irlib.format_graph(model.graph)
    stats = RewriteDriver([RMSNormPattern()]).run(model)
    assert stats.rewrites == 0
    (got,) = stats.refused["rms-norm"]
    assert reason in got
    assert irlib.format_graph(model.graph) == before


def test_intermediate_with_another_user_is_left_alone():
    model = irlib.from_onnx(rms_model(second_user=True))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fuse-rms-norm").changed
    assert "RMSNormalization" not in op_counts(model)


def test_level2_opset23():
    model = irlib.from_onnx(rms_model())
    run_passes(model, level_pipeline(2))
    assert op_counts(model) == {"RMSNormalization": 1}
    assert [v.name for v in model.graph.outputs] == ["y"]


def test_level2_opset22_leaves_the_pattern():
    model = irlib.from_onnx(rms_model(opset=22))
    run_passes(model, level_pipeline(2))
    assert "RMSNormalization" not in op_counts(model) and op_counts(model)["ReduceMean"] == 1
