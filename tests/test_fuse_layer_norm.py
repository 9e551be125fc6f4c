"""fuse-layer-norm: the exported LayerNorm decomposition -> LayerNormalization (opset >= 17).

Numerics: ORT with its optimizations off, before and after; float32 within rtol 1e-5 / atol 1e-5
(LayerNormalization computes the variance as E[x^2] - E[x]^2, the decomposition as E[(x-m)^2]);
the float16 Cast variant within 1e-3 (one float16 rounding of the normalized value).
"""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import RewriteDriver, level_pipeline, run_passes
from passes.transforms.fuse_layer_norm import LayerNormPattern
from test_fuse_support import check_rewrite, op_counts, run_pass

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
LN_TOL = dict(rtol=1e-5, atol=1e-5)


def ln_model(*, opset=17, shape=(2, 3, 8), axes=(-1,), var_axes=None, square="pow", norm="div",
             gamma=True, beta=True, cast=None, eps_input=False, second_user=False,
             gamma_shape=None, elem=F32, gate=False, cast_back=True):
    """A LayerNorm decomposition as exporters write it; the options pick the variant."""
    np_elem = helper.tensor_dtype_to_np_dtype(elem)
    rng = np.random.default_rng(1)
    norm_shape = [shape[a] for a in axes]
    inits = {}
    nodes = []
    x = "x"
    if cast is not None:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=F32))
        x = "xf"

    def reduce_mean(inp, out, ax):
        if opset >= 18:
            name = f"{out}_axes"
            inits[name] = np.array(ax, np.int64)
            return helper.make_node("ReduceMean", [inp, name], [out])
        return helper.make_node("ReduceMean", [inp], [out], axes=list(ax))

    nodes.append(reduce_mean(x, "mean", axes))
    nodes.append(helper.make_node("Sub", [x, "mean"], ["d"]))
    if square == "pow":
        inits["two"] = np.array(2.0, np.float32)
        nodes.append(helper.make_node("Pow", ["d", "two"], ["sq"]))
    else:
        nodes.append(helper.make_node("Mul", ["d", "d"], ["sq"]))
    nodes.append(reduce_mean("sq", "var", var_axes or axes))
    if not eps_input:
        inits["eps"] = np.array(1e-5, np.float32)
    nodes.append(helper.make_node("Add", ["var", "eps"], ["ve"]))
    if norm == "pow":
        inits["mhalf"] = np.array(-0.5, np.float32)
        nodes.append(helper.make_node("Pow", ["ve", "mhalf"], ["r"]))
        nodes.append(helper.make_node("Mul", ["d", "r"], ["n"]))
    else:
        nodes.append(helper.make_node("Sqrt", ["ve"], ["std"]))
        if norm == "div":
            nodes.append(helper.make_node("Div", ["d", "std"], ["n"]))
        elif norm == "recip":
            nodes.append(helper.make_node("Reciprocal", ["std"], ["r"]))
            nodes.append(helper.make_node("Mul", ["r", "d"], ["n"]))
        else:  # 1 / std
            inits["one"] = np.array(1.0, np.float32)
            nodes.append(helper.make_node("Div", ["one", "std"], ["r"]))
            nodes.append(helper.make_node("Mul", ["d", "r"], ["n"]))
    cur = "n"
    if cast is not None and cast_back:
        nodes.append(helper.make_node("Cast", ["n"], ["nt"], to=cast))
        cur = "nt"
    out_elem = cast if cast is not None and cast_back else elem
    out_np = helper.tensor_dtype_to_np_dtype(out_elem)
    if gamma:
        inits["gamma"] = (rng.standard_normal(gamma_shape or norm_shape) + 1).astype(out_np)
        nodes.append(helper.make_node("Mul", [cur, "gamma"], ["scaled"]))
        cur = "scaled"
    if beta:
        inits["beta"] = rng.standard_normal(norm_shape).astype(out_np)
        nodes.append(helper.make_node("Add", ["beta", cur], ["biased"]))
        cur = "biased"
    inputs = [("x", cast if cast is not None else elem, list(shape))]
    if eps_input:
        inputs.append(("eps", F32, []))
    if gate:
        inputs.append(("g", out_elem, list(shape)))
        nodes.append(helper.make_node("Mul", [cur, "g"], ["gated"]))
        cur = "gated"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    outputs = [("y", out_elem, None)]
    if second_user:
        nodes.append(helper.make_node("Neg", ["var"], ["z"]))
        outputs.append(("z", F32, None))
    inits = {k: (v if v.dtype != np.float32 or k in ("gamma", "beta") else v.astype(np_elem))
             for k, v in inits.items()}
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def fused(model):
    (ln,) = [n for n in model.graph if n.op_type == "LayerNormalization"]
    return ln


@pytest.mark.parametrize("kw", [
    dict(),
    dict(opset=18),
    dict(opset=20, square="mul"),
    dict(norm="recip"),
    dict(norm="pow"),
    dict(norm="div1", square="mul"),
    dict(gamma=False),
    dict(beta=False),
    dict(gamma=False, beta=False),
    dict(shape=(2, 4, 8), axes=(1, 2)),
    dict(shape=(2, 4, 8), axes=(-2, -1), opset=18),
    dict(gamma_shape=(1, 1, 8)),
])
def test_fuses(kw):
    model, result = check_rewrite(ln_model(**kw), "fuse-layer-norm", **LN_TOL)
    assert result.stats["applied:layer-norm"] == 1
    assert set(op_counts(model)) == {"LayerNormalization", "Identity"}
    ln = fused(model)
    k = len(kw.get("axes", (-1,)))
    assert ln.attr("axis") == -k and ln.attr("stash_type") == 1
    assert ln.attr("epsilon") == pytest.approx(1e-5)
    assert len(ln.inputs) == (3 if kw.get("beta", True) else 2)


LN_TEXT = """
<ir_version: 10, opset_import: ["" : 17]>
main (float[2,4] x) => (float[2,4] y)
<float[4] beta = {0.0, 1.0, 2.0, 3.0}, float eps = {1e-5}, float two = {2.0}>
{
    mean = ReduceMean <axes = [-1]> (x)
    d = Sub(x, mean)
    sq = Pow(d, two)
    var = ReduceMean <axes = [-1]> (sq)
    ve = Add(var, eps)
    std = Sqrt(ve)
    n = Div(d, std)
    y = Add(n, beta)
}
"""


def test_text_in_text_out():
    model, _ = check_rewrite(onnx.parser.parse_model(LN_TEXT), "fuse-layer-norm", "dce", **LN_TOL)
    assert irlib.format_graph(model.graph) == """\
graph main(%x: f32[2,4]) {
  %beta: f32[4] = const [0.0, 1.0, 2.0, 3.0]
  %layer_norm_c_0: f32[4] = const [1.0, 1.0, 1.0, 1.0]
  %y: f32[2,4] = LayerNormalization(%x, %layer_norm_c_0, %beta) {axis=-1, epsilon=1e-05, stash_type=1}
  return %y
}
"""


def test_cast_variant_float16_is_absorbed():
    """Cast(x16 -> f32), normalize, Cast(-> f16), gamma/beta in f16: the standard's own
    definition with stash_type=1 (float32)."""
    model, _ = check_rewrite(ln_model(cast=F16), "fuse-layer-norm", rtol=1e-3, atol=1e-3)
    assert set(op_counts(model)) == {"LayerNormalization", "Identity"}
    ln = fused(model)
    assert ln.inputs[0].name == "x" and ln.attr("stash_type") == 1
    assert ln.output.dtype is irlib.DType.FLOAT16


def test_cast_variant_bfloat16_structure():
    # ORT's CPU provider has no bfloat16 ReduceMean, so only the rewrite itself is checked here.
    model = irlib.from_onnx(ln_model(cast=BF16))
    run_pass(model, "infer-shapes")
    assert run_pass(model, "fuse-layer-norm").changed
    run_pass(model, "dce")
    irlib.verify(model)
    assert set(op_counts(model)) == {"LayerNormalization", "Identity"}
    assert fused(model).inputs[0].dtype is irlib.DType.BFLOAT16


def test_cast_without_cast_back_keeps_the_cast():
    """No Cast back: normalization, gamma and beta run in float32, so the fused node reads the
    float32 value and the Cast stays."""
    model, _ = check_rewrite(ln_model(cast=F16, cast_back=False), "fuse-layer-norm", **LN_TOL)
    assert set(op_counts(model)) == {"Cast", "LayerNormalization", "Identity"}
    assert fused(model).inputs[0].producer().op_type == "Cast"


@pytest.mark.parametrize("kw,reason", [
    (dict(opset=16), "not in opset 16"),
    (dict(shape=(2, 4, 8), axes=(1,)), "not the last ones"),
    (dict(shape=(2, 4, 8), axes=(-1,), var_axes=(-2, -1)), "different axes"),
    (dict(eps_input=True), "epsilon is not a constant"),
    (dict(elem=TensorProto.DOUBLE), "stage one computes in DOUBLE"),
])
def test_refused(kw, reason):
    model = irlib.from_onnx(ln_model(**kw))
    run_pass(model, "infer-shapes")
    before = irlib.format_graph(model.graph)
    stats = RewriteDriver([LayerNormPattern()]).run(model)
    assert stats.rewrites == 0
    (got,) = stats.refused["layer-norm"]
    assert reason in got
    assert irlib.format_graph(model.graph) == before


def test_intermediate_with_another_user_is_left_alone():
    model = irlib.from_onnx(ln_model(second_user=True))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fuse-layer-norm").changed
    assert "LayerNormalization" not in op_counts(model)


def test_gate_of_activation_shape_stays_outside():
    """Mul by a value of x's shape is not gamma: the fusion stops before it."""
    model, _ = check_rewrite(ln_model(gate=True, gamma=False, beta=False), "fuse-layer-norm",
                             **LN_TOL)
    ln = fused(model)
    assert ln.output.users()[0].op_type == "Mul"


def test_level2_fuses_before_add_bias_fusions():
    """-O2 end to end: the whole decomposition, gamma and beta included, becomes one node and
    the output keeps its name."""
    proto = ln_model(opset=18)
    model = irlib.from_onnx(proto)
    run_passes(model, level_pipeline(2))
    assert op_counts(model) == {"LayerNormalization": 1}
    assert [v.name for v in model.graph.outputs] == ["y"]
