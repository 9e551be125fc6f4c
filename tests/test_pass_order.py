"""The -O2 order does not defeat the recognition fusions.

Each test compiles a small model with the whole -O2 pipeline and checks which ops remain, that
the graph outputs keep their names, and (where ORT runs the result) that the outputs agree with
the original under ORT with its optimizations off (rtol 1e-5, atol 1e-5).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import level_pipeline, run_passes
from test_fuse_support import op_counts, ort_run, random_feeds

F32 = TensorProto.FLOAT


def compile_o2(proto):
    model = irlib.from_onnx(proto)
    run_passes(model, level_pipeline(2))
    irlib.verify(model)
    out = irlib.to_onnx(model)
    onnx.checker.check_model(out, full_check=True)
    return model, out


def assert_same_outputs(proto, out, seed=0):
    feeds = random_feeds(proto, seed)
    for e, g in zip(ort_run(proto, feeds), ort_run(out, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def gelu_nodes(x, out):
    return [
        helper.make_node("Div", [x, "sqrt2"], ["g_a"]),
        helper.make_node("Erf", ["g_a"], ["g_e"]),
        helper.make_node("Add", ["g_e", "one"], ["g_u"]),
        helper.make_node("Mul", [x, "half"], ["g_h"]),
        helper.make_node("Mul", ["g_h", "g_u"], [out]),
    ]


GELU_CONSTS = {"sqrt2": np.array(math.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
               "half": np.array(0.5, np.float32)}


def test_gelu_ending_in_identity_before_the_graph_output():
    """Mul -> Identity -> output: identity elimination makes the Mul write the graph output;
    the Gelu must still replace it and take the output's name (ORT's FastGelu fusion misses
    exactly this case)."""
    nodes = [helper.make_node("Sin", ["x"], ["s"])] + gelu_nodes("s", "gelu_out") + [
        helper.make_node("Identity", ["gelu_out"], ["y"])]
    proto = make_model(nodes, [("x", F32, [2, 6])], [("y", F32, [2, 6])], GELU_CONSTS, opset=20)
    model, out = compile_o2(proto)
    assert op_counts(model) == {"Sin": 1, "Gelu": 1}
    (y,) = model.graph.outputs
    assert y.name == "y" and y.producer().op_type == "Gelu"
    assert [o.name for o in out.graph.output] == ["y"]
    assert_same_outputs(proto, out)


def test_layer_norm_at_opset_23_is_not_split_into_sub_and_rms_norm():
    """At opset 23 the tail of a LayerNorm is also an RMSNorm of x - mean; layer-norm runs first
    so the whole decomposition becomes one LayerNormalization."""
    nodes = [
        helper.make_node("ReduceMean", ["x", "ax"], ["mean"]),
        helper.make_node("Sub", ["x", "mean"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "ax"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["std"]),
        helper.make_node("Div", ["d", "std"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["scaled"]),
        helper.make_node("Add", ["scaled", "beta"], ["y"]),
    ]
    rng = np.random.default_rng(0)
    inits = {"ax": np.array([-1], np.int64), "two": np.array(2.0, np.float32),
             "eps": np.array(1e-5, np.float32),
             "gamma": rng.standard_normal(8).astype(np.float32),
             "beta": rng.standard_normal(8).astype(np.float32)}
    proto = make_model(nodes, [("x", F32, [2, 3, 8])], [("y", F32, [2, 3, 8])], inits, opset=23)
    model, out = compile_o2(proto)
    assert op_counts(model) == {"LayerNormalization": 1}
    assert_same_outputs(proto, out)


def test_mlp_block_gemm_layer_norm_gelu():
    """MatMul + bias -> LayerNorm -> MatMul + bias -> Gelu on 2-D activations: the bias Adds
    become Gemm, LayerNorm keeps its beta, Gelu reads the Gemm output."""
    rng = np.random.default_rng(1)

    def mean(inp, out, opset):  # ReduceMean takes its axes as an input from opset 18
        if opset >= 18:
            return helper.make_node("ReduceMean", [inp, "ax"], [out])
        return helper.make_node("ReduceMean", [inp], [out], axes=[-1])

    def nodes(opset):
        return [
            helper.make_node("MatMul", ["x", "w1"], ["h1"]),
            helper.make_node("Add", ["h1", "b1"], ["h"]),
            mean("h", "mean", opset),
            helper.make_node("Sub", ["h", "mean"], ["d"]),
            helper.make_node("Mul", ["d", "d"], ["sq"]),
            mean("sq", "var", opset),
            helper.make_node("Add", ["var", "eps"], ["ve"]),
            helper.make_node("Sqrt", ["ve"], ["std"]),
            helper.make_node("Div", ["d", "std"], ["n"]),
            helper.make_node("Mul", ["n", "gamma"], ["scaled"]),
            helper.make_node("Add", ["scaled", "beta"], ["ln"]),
            helper.make_node("MatMul", ["ln", "w2"], ["h2"]),
            helper.make_node("Add", ["h2", "b2"], ["z"]),
        ] + gelu_nodes("z", "y")
    inits = {"w1": rng.standard_normal((4, 8)).astype(np.float32),
             "b1": rng.standard_normal(8).astype(np.float32),
             "eps": np.array(1e-5, np.float32),
             "gamma": rng.standard_normal(8).astype(np.float32),
             "beta": rng.standard_normal(8).astype(np.float32),
             "w2": rng.standard_normal((8, 6)).astype(np.float32),
             "b2": rng.standard_normal(6).astype(np.float32), "ax": np.array([-1], np.int64),
             **GELU_CONSTS}
    # opset 17: LayerNormalization exists, Gelu does not (that needs 20) ...
    proto17 = make_model(nodes(17), [("x", F32, [3, 4])], [("y", F32, [3, 6])], inits, opset=17)
    model, out = compile_o2(proto17)
    assert op_counts(model) == {"Gemm": 2, "LayerNormalization": 1, "Erf": 1, "Div": 1,
                                "Add": 1, "Mul": 2}
    assert_same_outputs(proto17, out)
    # ... at opset 20 both are fused
    proto20 = make_model(nodes(20), [("x", F32, [3, 4])], [("y", F32, [3, 6])], inits, opset=20)
    model, out = compile_o2(proto20)
    assert op_counts(model) == {"Gemm": 2, "LayerNormalization": 1, "Gelu": 1}
    assert model.graph.outputs[0].name == "y"
    assert_same_outputs(proto20, out)


def test_decomposed_softmax_inside_attention():
    """softmax runs before attention: a written-out Softmax inside attention ends as one
    Attention node at opset 23."""
    B, H, S, D = 1, 2, 3, 4
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]),
        helper.make_node("Mul", ["qk", "scale"], ["s"]),
        helper.make_node("ReduceMax", ["s", "ax"], ["m"]),
        helper.make_node("Sub", ["s", "m"], ["sd"]),
        helper.make_node("Exp", ["sd"], ["e"]),
        helper.make_node("ReduceSum", ["e", "ax"], ["tot"]),
        helper.make_node("Div", ["e", "tot"], ["p"]),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    inits = {"scale": np.array(0.5, np.float32), "ax": np.array([-1], np.int64)}
    shape = [B, H, S, D]
    proto = make_model(nodes, [("q", F32, shape), ("k", F32, shape), ("v", F32, shape)],
                       [("y", F32, shape)], inits, opset=23)
    model, out = compile_o2(proto)
    assert op_counts(model) == {"Attention": 1}
    assert_same_outputs(proto, out)
