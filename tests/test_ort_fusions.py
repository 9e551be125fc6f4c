"""ort-* passes: ONNX Runtime -O3 fusions (com.microsoft contrib ops, com.microsoft.nchwc layout).

Each pass: the rewritten graph as text, ORT numerics with ORT's optimizations disabled (so the
contrib kernels we emit are the ones that run), negatives, idempotence (``check_rewrite`` reruns
the pass), and the -O3 wiring: only ``--target ort`` gets these ops.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import level_pipeline_text
from passes.transforms.ort_nchwc import (
    ort_nchwc_block_size, reorder_filter_oihwbibo, reorder_filter_oihwbo,
)
from test_fuse_support import check_rewrite, op_counts, ort_run, random_feeds, run_pass

F32 = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def body(model: irlib.Model) -> list[str]:
    """The node lines of the printed graph (constants and the header left out)."""
    return [line.strip() for line in irlib.format_graph(model.graph).splitlines()
            if "= const" not in line and not line.startswith(("graph", "}"))]


def domains(model: irlib.Model) -> set[str]:
    return {n.domain for n in model.graph}


# -- ort-fuse-conv-activation ----------------------------------------------------------------------

def conv_act_model(op, attrs=None, extra_inputs=(), inits=None, also_output_c=False, dtype=F32):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node(op, ["c", *extra_inputs], ["y"], **(attrs or {}))]
    outputs = [("y", dtype, [1, 4, 6, 6])] + ([("c", dtype, [1, 4, 6, 6])] if also_output_c else [])
    np_t = helper.tensor_dtype_to_np_dtype(dtype)
    init = {"w": rand(4, 3, 3, 3).astype(np_t), "b": rand(4).astype(np_t), **(inits or {})}
    return make_model(nodes, inputs=[("x", dtype, [1, 3, 6, 6])], outputs=outputs,
                      initializers=init)


@pytest.mark.parametrize("op,attrs,extra,params", [
    ("Relu", {}, (), None),
    ("Sigmoid", {}, (), None),
    ("Tanh", {}, (), None),
    ("LeakyRelu", {"alpha": 0.2}, (), [0.2]),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, (), [0.3, 0.4]),
    ("Clip", {}, ("lo", "hi"), [0.0, 1.5]),
])
def test_conv_activation_fuses_supported_activations(op, attrs, extra, params):
    inits = {"lo": np.array(0, np.float32), "hi": np.array(1.5, np.float32)}
    model, result = check_rewrite(conv_act_model(op, attrs, extra, inits),
                                  "ort-fuse-conv-activation")
    assert result.stats["applied:conv-activation"] == 1
    line = f'%y: f32[1,4,6,6] = com.microsoft.FusedConv(%x, %w, %b) {{pads=[1,1,1,1], activation="{op}"'
    assert body(model)[0].startswith(line)
    node = next(iter(model.graph))
    assert node.attr("activation_params") == (None if params is None else pytest.approx(params))
    assert model.opset("com.microsoft") == 1


def test_conv_activation_text():
    model = irlib.from_onnx(conv_act_model("Relu"))
    run_pass(model, "ort-fuse-conv-activation")
    assert body(model) == [
        '%y: f32[1,4,6,6] = com.microsoft.FusedConv(%x, %w, %b) {pads=[1,1,1,1], activation="Relu"}',
        "return %y",
    ]


def test_conv_activation_refuses_unsupported_activation_and_shared_output():
    for proto in (conv_act_model("Elu"), conv_act_model("Relu", also_output_c=True),
                  conv_act_model("Relu", dtype=TensorProto.DOUBLE)):
        model = irlib.from_onnx(proto)
        result = run_pass(model, "ort-fuse-conv-activation")
        assert not result.changed and "com.microsoft" not in domains(model)
        assert "com.microsoft" not in model.opset_imports


# -- ort-fuse-gemm-activation ----------------------------------------------------------------------

def gemm_act_model(op, attrs=None, extra=(), inits=None):
    nodes = [helper.make_node("Gemm", ["a", "w", "b"], ["g"], transB=1),
             helper.make_node(op, ["g", *extra], ["y"], **(attrs or {}))]
    return make_model(nodes, inputs=[("a", F32, [3, 5])], outputs=[("y", F32, [3, 4])],
                      initializers={"w": rand(4, 5), "b": rand(4), **(inits or {})})


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("Softsign", {}), ("LeakyRelu", {"alpha": 0.2}),
    ("Elu", {"alpha": 0.7}), ("ThresholdedRelu", {"alpha": 0.3}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
])
def test_gemm_activation(op, attrs):
    model, result = check_rewrite(gemm_act_model(op, attrs), "ort-fuse-gemm-activation")
    assert result.stats["applied:gemm-activation"] == 1
    (node,) = model.graph
    assert (node.domain, node.op_type, node.attr("activation")) == ("com.microsoft", "FusedGemm", op)
    for k, v in attrs.items():
        assert node.attr(f"activation_{k}") == pytest.approx(v)


def test_gemm_activation_text_and_clip_refused():
    model = irlib.from_onnx(gemm_act_model("Relu"))
    run_pass(model, "ort-fuse-gemm-activation")
    assert body(model)[0] == ('%y: f32[3,4] = com.microsoft.FusedGemm(%a, %w, %b) '
                              '{transB=1, activation="Relu"}')
    clip = irlib.from_onnx(gemm_act_model("Clip", extra=("lo",),
                                          inits={"lo": np.array(0, np.float32)}))
    assert not run_pass(clip, "ort-fuse-gemm-activation").changed


# -- ort-fuse-quick-gelu ---------------------------------------------------------------------------

def silu_model(alpha=None, shared_sigmoid=False):
    nodes = [helper.make_node("Sigmoid", ["x" if alpha is None else "xs"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["y"])]
    if alpha is not None:
        nodes.insert(0, helper.make_node("Mul", ["x", "a"], ["xs"]))
    outputs = [("y", F32, [2, 8])] + ([("s", F32, [2, 8])] if shared_sigmoid else [])
    return make_model(nodes, inputs=[("x", F32, [2, 8])], outputs=outputs,
                      initializers={"a": np.array(alpha or 1.0, np.float32)})


def test_quick_gelu_silu_and_scaled():
    model, result = check_rewrite(silu_model(), "ort-fuse-quick-gelu")
    assert body(model) == ["%y: f32[2,8] = com.microsoft.QuickGelu(%x) {alpha=1.0}", "return %y"]
    model, result = check_rewrite(silu_model(1.702), "ort-fuse-quick-gelu")
    assert result.stats["applied:scaled-sigmoid-to-quick-gelu"] == 1
    assert next(iter(model.graph)).attr("alpha") == pytest.approx(1.702)


def test_quick_gelu_refuses_shared_sigmoid():
    model = irlib.from_onnx(silu_model(shared_sigmoid=True))
    assert not run_pass(model, "ort-fuse-quick-gelu").changed


# -- ort-fuse-bias-gelu ----------------------------------------------------------------------------

GELU_INITS = {"s2": np.array(1.4142135, np.float32), "one": np.array(1, np.float32),
              "half": np.array(0.5, np.float32), "b": rand(8),
              "c": np.array(0.044715, np.float32), "k": np.array(0.7978846, np.float32),
              "three": np.array(3, np.float32)}


def erf_gelu(x):
    return [helper.make_node("Div", [x, "s2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["p"]), helper.make_node("Mul", [x, "p"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["y"])]


def tanh_gelu(x):
    return [helper.make_node("Pow", [x, "three"], ["x3"]),
            helper.make_node("Mul", ["x3", "c"], ["cx3"]), helper.make_node("Add", [x, "cx3"], ["u"]),
            helper.make_node("Mul", ["u", "k"], ["ku"]), helper.make_node("Tanh", ["ku"], ["t"]),
            helper.make_node("Add", ["t", "one"], ["p"]), helper.make_node("Mul", [x, "p"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["y"])]


def gelu_model(nodes, extra_outputs=(), opset=17):
    return make_model(nodes, inputs=[("x", F32, [2, 3, 8])],
                      outputs=[("y", F32, [2, 3, 8]), *extra_outputs],
                      initializers=GELU_INITS, opset=opset)


def test_bias_gelu_from_erf_decomposition():
    proto = gelu_model([helper.make_node("Add", ["x", "b"], ["h"]), *erf_gelu("h")])
    model, result = check_rewrite(proto, "ort-fuse-bias-gelu")
    assert body(model) == ["%y: f32[2,3,8] = com.microsoft.BiasGelu(%x, %b)", "return %y"]


def test_gelu_without_bias_and_with_shared_bias_sum():
    model, _ = check_rewrite(gelu_model(erf_gelu("x")), "ort-fuse-bias-gelu")
    assert body(model) == ["%y: f32[2,3,8] = com.microsoft.Gelu(%x)", "return %y"]
    # h read outside the GELU: the bias Add stays, Gelu takes h
    proto = gelu_model([helper.make_node("Add", ["x", "b"], ["h"]), *erf_gelu("h")],
                       extra_outputs=[("h", F32, [2, 3, 8])])
    model, _ = check_rewrite(proto, "ort-fuse-bias-gelu")
    assert [(n.domain, n.op_type) for n in model.graph] == [("", "Add"), ("com.microsoft", "Gelu")]


def test_fast_gelu_from_tanh_decomposition():
    proto = gelu_model([helper.make_node("Add", ["x", "b"], ["h"]), *tanh_gelu("h")])
    # FastGelu evaluates tanh with MLAS's own approximation: a few ulps apart
    model, _ = check_rewrite(proto, "ort-fuse-bias-gelu", rtol=1e-5, atol=1e-5)
    assert body(model) == ["%y: f32[2,3,8] = com.microsoft.FastGelu(%x, %b)", "return %y"]


@pytest.mark.parametrize("approx,op", [("none", "BiasGelu"), ("tanh", "FastGelu")])
def test_gelu_op_with_bias(approx, op):
    proto = gelu_model([helper.make_node("Add", ["x", "b"], ["h"]),
                        helper.make_node("Gelu", ["h"], ["y"], approximate=approx)], opset=20)
    model, _ = check_rewrite(proto, "ort-fuse-bias-gelu", rtol=1e-5, atol=1e-5)
    assert [(n.domain, n.op_type) for n in model.graph] == [("com.microsoft", op)]


def test_bias_gelu_refuses_wrong_constant():
    inits = dict(GELU_INITS, s2=np.array(1.3, np.float32))
    proto = make_model(erf_gelu("x"), inputs=[("x", F32, [2, 3, 8])],
                       outputs=[("y", F32, [2, 3, 8])], initializers=inits)
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "ort-fuse-bias-gelu").changed


# -- ort-fuse-skip-layer-norm ----------------------------------------------------------------------

def skip_ln_model(bias=False, sum_used=False, axis=-1):
    nodes = []
    x = "x"
    if bias:
        nodes.append(helper.make_node("Add", ["x", "b"], ["xb"]))
        x = "xb"
    nodes += [helper.make_node("Add", [x, "r"], ["s"]),
              helper.make_node("LayerNormalization", ["s", "g", "be"], ["y"], epsilon=1e-6,
                               axis=axis)]
    outputs = [("y", F32, [2, 3, 8])]
    if sum_used:
        nodes.append(helper.make_node("Relu", ["s"], ["z"]))
        outputs.append(("z", F32, [2, 3, 8]))
    g = rand(8) if axis == -1 else rand(3, 8)
    be = rand(8) if axis == -1 else rand(3, 8)
    return make_model(nodes, inputs=[("x", F32, [2, 3, 8]), ("r", F32, [2, 3, 8])],
                      outputs=outputs, initializers={"g": g, "be": be, "b": rand(8)})


def test_skip_layer_norm_with_bias():
    model, result = check_rewrite(skip_ln_model(bias=True), "ort-fuse-skip-layer-norm")
    assert body(model) == [
        "%y: f32[2,3,8] = com.microsoft.SkipLayerNormalization(%x, %r, %g, %be, %b) {epsilon=1e-06}",
        "return %y"]


def test_skip_layer_norm_sum_read_elsewhere_uses_fourth_output():
    model, _ = check_rewrite(skip_ln_model(sum_used=True), "ort-fuse-skip-layer-norm")
    assert body(model) == [
        "%y: f32[2,3,8], _, _, %s: f32[2,3,8] = com.microsoft.SkipLayerNormalization(%x, %r, %g, %be)"
        " {epsilon=1e-06}",
        "%z: f32[2,3,8] = Relu(%s)", "return %y, %z"]


def test_skip_layer_norm_refuses_two_axis_normalization():
    model = irlib.from_onnx(skip_ln_model(axis=-2))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "ort-fuse-skip-layer-norm").changed


# -- ort-nchwc -------------------------------------------------------------------------------------

BLOCK = ort_nchwc_block_size()
needs_nchwc = pytest.mark.skipif(BLOCK <= 1, reason="this onnxruntime build does not use NCHWc")
# NCHWc convolutions sum in another order than the NCHW kernels: fp32 rounding of sums of ~150
# products of magnitude ~1 -> rtol/atol 1e-4.
NCHWC_TOL = dict(rtol=1e-4, atol=1e-4)


def test_filter_reorders_match_mlas_layouts():
    w = np.arange(16 * 8 * 1 * 1, dtype=np.float32).reshape(16, 8, 1, 1)
    r = reorder_filter_oihwbibo(w, 8).reshape(2, 1, 1, 1, 8, 8)  # [O/B, I/B, H, W, Bi, Bo]
    assert r[1, 0, 0, 0, 3, 5] == w[8 + 5, 3, 0, 0]
    d = reorder_filter_oihwbo(np.arange(12 * 1 * 3 * 3, dtype=np.float32).reshape(12, 1, 3, 3), 8)
    assert d.shape == (16, 1, 3, 3)  # output channels padded to two blocks with zero filters
    assert d.reshape(2, 1, 3, 3, 8)[1, 0, 2, 1, 3] == 11 * 9 + 2 * 3 + 1
    assert not d.reshape(2, 1, 3, 3, 8)[1, ..., 4:].any()


def cnn_model():
    c = 2 * BLOCK
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p", "wd"], ["cd"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("Add", ["c2", "cd"], ["a"]),
             helper.make_node("Relu", ["a"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),   # 12 outputs: padded
             helper.make_node("Sigmoid", ["c3"], ["s3"]),
             helper.make_node("Conv", ["s3", "w4"], ["c4"]),         # 12 inputs: stays NCHW
             helper.make_node("GlobalAveragePool", ["r2"], ["g"])]
    inits = {"w1": rand(c, 3, 3, 3), "b1": rand(c), "w2": rand(c, c, 3, 3), "b2": rand(c),
             "wd": rand(c, 1, 3, 3), "w3": rand(12, c, 1, 1), "b3": rand(12), "w4": rand(8, 12, 1, 1)}
    return make_model(nodes, inputs=[("x", F32, [1, 3, 16, 16])],
                      outputs=[("c4", F32, None), ("g", F32, None), ("r1", F32, None)],
                      initializers=inits)


@needs_nchwc
def test_nchwc_cnn_structure_and_numerics():
    model, result = check_rewrite(cnn_model(), "ort-nchwc", **NCHWC_TOL)
    assert result.stats == {"block_size": BLOCK, "conv": 4, "pool": 2, "add": 0, "sum_fused": 1,
                            "activation_fused": 3, "elementwise": 0}
    ops = [(n.domain.replace("com.microsoft.nchwc", "nchwc"), n.op_type,
            n.attr("activation"), sum(v is not None for v in n.inputs)) for n in model.graph]
    assert ops == [
        ("nchwc", "Conv", "Relu", 3),            # first Conv reads NCHW x directly (3 < block)
        ("nchwc", "ReorderOutput", None, 1),     # r1 is a graph output
        ("nchwc", "MaxPool", None, 1),
        ("nchwc", "Conv", None, 2),              # depthwise
        ("nchwc", "Conv", "Relu", 4),            # Conv + Add(Sum input) + Relu
        ("nchwc", "Conv", "Sigmoid", 3),
        ("nchwc", "ReorderOutput", None, 1),     # 12 channels back to NCHW for the last Conv
        ("", "Conv", None, 2),
        ("nchwc", "GlobalAveragePool", None, 1),
        ("nchwc", "ReorderOutput", None, 1)]
    assert model.opset("com.microsoft.nchwc") == 1
    assert [n.attr("channels") for n in model.graph if n.op_type == "ReorderOutput"] == [c for c in (2 * BLOCK, 12, 2 * BLOCK)]


@needs_nchwc
def test_nchwc_reorders_input_and_keeps_interface():
    c = BLOCK
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("Tanh", ["x"], ["t"])]
    proto = make_model(nodes, inputs=[("x", F32, [1, c, 5, 5])],
                       outputs=[("y", F32, [1, c, 5, 5]), ("t", F32, [1, c, 5, 5])],
                       initializers={"w": rand(c, c, 3, 3)})
    model, _ = check_rewrite(proto, "ort-nchwc", **NCHWC_TOL)
    assert [n.op_type for n in model.graph] == ["ReorderInput", "Conv", "ReorderOutput", "Tanh"]
    assert [v.name for v in model.graph.outputs] == ["y", "t"]
    assert model.graph.outputs[0].shape == (1, c, 5, 5)


@needs_nchwc
def test_nchwc_refuses_channels_off_the_block():
    c = BLOCK + 2
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("MaxPool", ["y"], ["z"], kernel_shape=[2, 2])]
    proto = make_model(nodes, inputs=[("x", F32, [1, c, 4, 4])], outputs=[("z", F32, None)],
                       initializers={"w": rand(c, c, 1, 1)})
    model = irlib.from_onnx(proto)
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "ort-nchwc").changed
    assert "com.microsoft.nchwc" not in model.opset_imports


def test_nchwc_block_size_one_does_nothing():
    model = irlib.from_onnx(cnn_model())
    run_pass(model, "infer-shapes")
    from passes import PassContext, parse_pipeline

    (item,) = parse_pipeline("ort-nchwc{block-size=1}")
    result = item.run(model, PassContext(model))
    assert not result.changed and domains(model) == {""}


# -- -O3 wiring ------------------------------------------------------------------------------------

def test_o3_lists_ort_passes_only_for_ort():
    ort_text = level_pipeline_text(3, target="ort")
    for name in ("ort-fuse-conv-activation", "ort-fuse-gemm-activation", "ort-fuse-bias-gelu",
                 "ort-fuse-skip-layer-norm", "ort-fuse-quick-gelu", "ort-nchwc"):
        assert name in ort_text
        assert name not in level_pipeline_text(3) and name not in level_pipeline_text(3, "tvm")
        assert name not in level_pipeline_text(2, target="ort")


def small_net():
    """Conv+Relu, SiLU, Gemm+Relu, bias+GELU, residual+LayerNorm: something for every pass."""
    c = 16
    nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["cv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["cv"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["sg"]), helper.make_node("Mul", ["r", "sg"], ["sw"]),
             helper.make_node("GlobalAveragePool", ["sw"], ["gp"]),
             helper.make_node("Flatten", ["gp"], ["f"]),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["gm"], transB=1),
             helper.make_node("Relu", ["gm"], ["gr"]),
             helper.make_node("Reshape", ["gr", "shape"], ["h0"]),
             helper.make_node("Add", ["h0", "b"], ["h"]), *erf_gelu("h"),
             helper.make_node("Add", ["y", "h0"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "be"], ["out"])]
    inits = dict(GELU_INITS, w=rand(c, 3, 3, 3), cb=rand(c), wg=rand(48, c), bg=rand(48),
                 shape=np.array([2, 6, 8], np.int64), g=rand(8), be=rand(8))
    return make_model(nodes, inputs=[("x", F32, [2, 3, 8, 8])], outputs=[("out", F32, None)],
                      initializers=inits)


@pytest.mark.parametrize("target", [None, "tvm", "ort"])
def test_compile_o3_emits_contrib_ops_only_for_ort(tmp_path, target):
    from click.testing import CliRunner
    from irc.cli import main

    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    proto = small_net()
    onnx.save(proto, src)
    args = ["compile", str(src), "-O3", "-o", str(dst)] + (["--target", target] if target else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    ms = {(n.domain, n.op_type) for n in out.graph.node if n.domain.startswith("com.microsoft")}
    if target != "ort":
        assert not ms and all(o.domain in ("", "ai.onnx") for o in out.opset_import)
        return
    assert {("com.microsoft", "QuickGelu"), ("com.microsoft", "FusedGemm"),
            ("com.microsoft", "BiasGelu"), ("com.microsoft", "SkipLayerNormalization")} <= ms
    assert ("com.microsoft.nchwc", "Conv") in ms or ("com.microsoft", "FusedConv") in ms
    feeds = random_feeds(proto)
    for e, g in zip(ort_run(proto, feeds), ort_run(out, feeds)):
        np.testing.assert_allclose(g, e, **NCHWC_TOL)
    model = irlib.from_onnx(out)
    irlib.verify(model)
    assert op_counts(model)["Erf"] == 0
