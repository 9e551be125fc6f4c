"""fuse-attention: MatMul/scale/mask/Softmax/MatMul -> Attention (opset >= 23).

ONNX Runtime 1.32 runs the standard Attention op on CPU; the fused model is checked against the
decomposition with ORT's optimizations off within rtol 1e-5 / atol 1e-5 (Attention scales Q and
K by sqrt(scale) before the product, the decomposition scales the product).
"""

from __future__ import annotations

import numpy as np
import onnx.parser
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import RewriteDriver, level_pipeline, run_passes
from passes.transforms.fuse_attention import AttentionPattern, key_perm
from test_fuse_support import check_rewrite, op_counts, random_feeds, run_pass

F32 = TensorProto.FLOAT
TOL = dict(rtol=1e-5, atol=1e-5)
B, H, S, D = 2, 3, 4, 8


def attention_model(kind="bert", *, opset=23, mask=(B, 1, 1, S), seq=S, batch=B, k_batch=None,
                    axis=-1, second_user=False):
    """Self-attention over [batch, seq, heads, d] projections (graph inputs), in the layout
    an exporter writes for ``kind``: bert (Transpose(k, [0,2,3,1]), Div by sqrt(d), additive
    mask), vit (Q multiplied by the scale first, K transposed [0,1,3,2], no mask) or sdpa (Q and
    K^T each multiplied by sqrt(scale), torch's scaled_dot_product_attention decomposition)."""
    inits, nodes = {}, []
    nodes.append(helper.make_node("Transpose", ["q_in"], ["q"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Transpose", ["v_in"], ["v"], perm=[0, 2, 1, 3]))
    scale = 1.0 / np.sqrt(D)
    if kind == "bert":
        nodes.append(helper.make_node("Transpose", ["k_in"], ["kt"], perm=[0, 2, 3, 1]))
        nodes.append(helper.make_node("MatMul", ["q", "kt"], ["qk"]))
        inits["sqrt_d"] = np.array(np.sqrt(D), np.float32)
        nodes.append(helper.make_node("Div", ["qk", "sqrt_d"], ["scores"]))
    else:
        nodes.append(helper.make_node("Transpose", ["k_in"], ["k"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Transpose", ["k"], ["kt0"], perm=[0, 1, 3, 2]))
        if kind == "vit":
            inits["scale"] = np.array(scale, np.float32)
            nodes.append(helper.make_node("Mul", ["q", "scale"], ["qs"]))
            nodes.append(helper.make_node("MatMul", ["qs", "kt0"], ["scores"]))
        else:
            inits["root_scale"] = np.array(np.sqrt(scale), np.float32)
            nodes.append(helper.make_node("Mul", ["q", "root_scale"], ["qs"]))
            nodes.append(helper.make_node("Mul", ["root_scale", "kt0"], ["kt"]))
            nodes.append(helper.make_node("MatMul", ["qs", "kt"], ["scores"]))
    probs_in = "scores"
    inputs = [("q_in", F32, [batch, seq, H, D]), ("k_in", F32, [k_batch or batch, seq, H, D]),
              ("v_in", F32, [batch, seq, H, D])]
    if mask is not None:
        inputs.append(("mask", F32, list(mask)))
        nodes.append(helper.make_node("Add", ["mask", "scores"], ["masked"]))
        probs_in = "masked"
    nodes.append(helper.make_node("Softmax", [probs_in], ["probs"], axis=axis))
    nodes.append(helper.make_node("MatMul", ["probs", "v"], ["ctx"], name="context"))
    nodes.append(helper.make_node("Transpose", ["ctx"], ["y"], perm=[0, 2, 1, 3]))
    outputs = [("y", F32, None)]
    if second_user:
        nodes.append(helper.make_node("Neg", ["probs"], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def attention_node(model):
    (node,) = [n for n in model.graph if n.op_type == "Attention"]
    return node


def test_key_perm():
    # BERT: K^T = Transpose(k', [0,2,3,1]) with k' [b, s, h, d]; K = Transpose(k', [0,2,1,3]).
    assert key_perm((0, 2, 3, 1)) == (0, 2, 1, 3)
    assert key_perm((0, 1, 3, 2)) == (0, 1, 2, 3)


@pytest.mark.parametrize("kw", [
    dict(), dict(mask=(1, 1, S, S)), dict(mask=(S, S)), dict(mask=(B, H, S, S)), dict(mask=(S,)),
    dict(mask=None), dict(kind="vit", mask=None), dict(kind="sdpa"), dict(opset=24),
])
def test_fuses(kw):
    model, result = check_rewrite(attention_model(**kw), "fuse-attention", **TOL)
    assert result.stats["applied:attention"] == 1
    node = attention_node(model)
    assert node.attr("scale") == pytest.approx(1.0 / np.sqrt(D), rel=1e-6)
    assert node.name == "context"
    assert op_counts(model)["MatMul"] == 0 and op_counts(model)["Softmax"] == 0


def test_bert_layout_and_broadcast_mask():
    """K comes from one Transpose of the projection; BERT's [B,1,1,S] mask is expanded to
    [B,1,S,S] (ORT's kernel reads the mask's last two dims as q_seq, kv_seq)."""
    model, _ = check_rewrite(attention_model(), "fuse-attention", "dce", **TOL)
    node = attention_node(model)
    k = node.inputs[1].producer()
    assert k.op_type == "Transpose" and tuple(k.attr("perm")) == (0, 2, 1, 3)
    assert k.inputs[0].name == "k_in"
    expand = node.inputs[3].producer()
    assert expand.op_type == "Expand" and expand.inputs[0].name == "mask"
    run_pass(model, "infer-shapes")
    assert expand.output.shape == (B, 1, S, S)


def test_symbolic_sequence_expands_by_shape():
    proto = attention_model(seq="S", batch="B", mask=("B", 1, 1, "S"))
    feeds = random_feeds(proto, dim=5)
    model, _ = check_rewrite(proto, "fuse-attention", "dce", feeds=feeds, **TOL)
    expand = attention_node(model).inputs[3].producer()
    assert expand.op_type == "Expand"
    assert op_counts(model)["Shape"] == 2


def test_text_in_text_out():
    proto = onnx.parser.parse_model("""
        <ir_version: 10, opset_import: ["" : 23]>
        main (float[1,2,3,4] q, float[1,2,3,4] k, float[1,2,3,4] v, float[1,1,3,3] m) => (float[1,2,3,4] y)
        <float c = {2.0}>
        {
            kt = Transpose <perm = [0, 1, 3, 2]> (k)
            qk = MatMul(q, kt)
            s = Div(qk, c)
            a = Add(s, m)
            p = Softmax <axis = -1> (a)
            y = MatMul(p, v)
        }
    """)
    model, _ = check_rewrite(proto, "fuse-attention", "dce", **TOL)
    assert irlib.format_graph(model.graph) == """\
graph main(%q: f32[1,2,3,4], %k: f32[1,2,3,4], %v: f32[1,2,3,4], %m: f32[1,1,3,3]) {
  %y: f32[1,2,3,4] = Attention(%q, %k, %v, %m) {scale=0.5}
  return %y
}
"""


@pytest.mark.parametrize("kw,reason", [
    (dict(opset=22), "not in opset 22"),
    (dict(axis=2), "not over the last axis"),
    (dict(k_batch=1), "batch or head dimensions"),
    (dict(mask=(B, 1, 2, S)), "does not broadcast"),
])
def test_refused(kw, reason):
    model = irlib.from_onnx(attention_model(**kw))
    run_pass(model, "infer-shapes")
    before = irlib.format_graph(model.graph)
    stats = RewriteDriver([AttentionPattern()]).run(model)
    assert stats.rewrites == 0
    (got,) = stats.refused["attention"]
    assert reason in got
    assert irlib.format_graph(model.graph) == before


def test_probabilities_read_elsewhere_are_left_alone():
    model = irlib.from_onnx(attention_model(second_user=True))
    run_pass(model, "infer-shapes")
    assert not run_pass(model, "fuse-attention").changed


def test_level2_opset23_and_opset22():
    fused = irlib.from_onnx(attention_model())
    run_passes(fused, level_pipeline(2))
    assert op_counts(fused)["Attention"] == 1 and [v.name for v in fused.graph.outputs] == ["y"]
    kept = irlib.from_onnx(attention_model(opset=22))
    run_passes(kept, level_pipeline(2))
    assert "Attention" not in op_counts(kept) and op_counts(kept)["Softmax"] == 1
