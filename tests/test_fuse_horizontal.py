"""fuse-horizontal: sibling MatMul/Gemm/Conv nodes reading one input -> one wide op + Split.

Every positive case goes through ``check_rewrite``: the IR verifies, the export passes
``onnx.checker`` (full check), ONNX Runtime with its optimizations off computes the same outputs
(fp32: rtol 1e-5, atol 1e-6; the wide product sums the same terms in the same order), and a
second run changes nothing.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from helpers import make_model, parse_ir
from passes import level_of_pass, level_pipeline, make_pass, run_passes
from passes.transforms.fuse_horizontal import FuseHorizontal
from test_fuse_support import check_rewrite, op_counts, ort_run, random_feeds, run_pass

F32 = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def split_node(model):
    (split,) = [n for n in model.graph if n.op_type == "Split"]
    return split


def qkv(widths=(8, 8, 4), biases=(None, None, None), x_shape=(2, 5, 16), opset=17,
        outputs_are_graph_outputs=True):
    """MatMul(x, W_i) [+ Add(b_i)] for each width; outputs q0, q1, ... (each through a Relu when
    ``outputs_are_graph_outputs`` is False, so the siblings' values have readers)."""
    nodes, inits, outs = [], {}, []
    d = x_shape[-1]
    for i, (n, b) in enumerate(zip(widths, biases)):
        inits[f"w{i}"] = rand(d, n)
        y = f"q{i}"
        if b is None:
            nodes.append(helper.make_node("MatMul", ["x", f"w{i}"], [y], name=f"proj{i}"))
        else:
            inits[f"b{i}"] = rand(*b)
            nodes.append(helper.make_node("MatMul", ["x", f"w{i}"], [f"mm{i}"], name=f"proj{i}"))
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [y]))
        if not outputs_are_graph_outputs:
            nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
            y = f"r{i}"
        outs.append((y, F32, None))
    return make_model(nodes, [("x", F32, list(x_shape))], outs, inits, opset=opset)


# -- MatMul siblings ------------------------------------------------------------------------------

def test_qkv_matmul_siblings_3d_input():
    model, result = check_rewrite(qkv(), "fuse-horizontal")
    assert result.stats["groups"] == 1 and result.stats["fused"] == 3
    assert op_counts(model) == {"MatMul": 1, "Split": 1}
    mm, split = model.graph.nodes
    assert mm.inputs[1].const_value.shape == (16, 20)
    assert split.attr("axis") == 2
    assert [v.name for v in split.outputs] == ["q0", "q1", "q2"]
    assert [str(v.type) for v in split.outputs] == ["f32[2,5,8]", "f32[2,5,8]", "f32[2,5,4]"]
    assert str(mm.output.type) == "f32[2,5,20]"
    # the old weights are gone, the new node remembers what it replaced
    assert {v.name for v in model.graph.initializers} == {mm.inputs[1].name, split.inputs[1].name}
    assert mm.meta["irc.rule"] == "fuse-horizontal"


def test_siblings_with_readers_keep_their_value_names():
    model, _ = check_rewrite(qkv(outputs_are_graph_outputs=False), "fuse-horizontal")
    assert op_counts(model) == {"MatMul": 1, "Split": 1, "Relu": 3}
    for i, relu in enumerate(n for n in model.graph if n.op_type == "Relu"):
        assert relu.inputs[0].name == f"q{i}" and relu.inputs[0].producer().op_type == "Split"


def test_matmul_add_siblings_concatenate_biases_with_zeros_where_missing():
    proto = qkv(biases=((8,), None, (1, 1, 4)))
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert result.stats["fused"] == 3
    assert op_counts(model) == {"MatMul": 1, "Add": 1, "Split": 1}
    add = next(n for n in model.graph if n.op_type == "Add")
    bias = add.inputs[1].const_value.numpy()
    assert bias.shape == (20,)
    np.testing.assert_array_equal(bias[8:16], np.zeros(8, np.float32))


def test_bias_that_is_not_a_row_stays_outside():
    """A [5, 8] bias varies along the sequence axis: the MatMuls fuse, that Add stays."""
    model, _ = check_rewrite(qkv(biases=((5, 8), None, None)), "fuse-horizontal")
    assert op_counts(model) == {"MatMul": 1, "Split": 1, "Add": 1}
    add = next(n for n in model.graph if n.op_type == "Add")
    assert add.inputs[0].producer().op_type == "Split"


def test_one_dimensional_input():
    model, _ = check_rewrite(qkv(x_shape=(16,), biases=((8,), None, ())), "fuse-horizontal")
    assert op_counts(model) == {"MatMul": 1, "Add": 1, "Split": 1}
    assert split_node(model).attr("axis") == 0


# -- Gemm siblings --------------------------------------------------------------------------------

def gemms(trans_b=(0, 0, 0), alpha=(1.0, 1.0, 1.0), beta=(1.0, 1.0, 1.0),
          c_shapes=((6,), None, (1, 3)), widths=(6, 5, 3), opset=17):
    nodes, inits, outs = [], {}, []
    for i, (tb, a, b, cs, n) in enumerate(zip(trans_b, alpha, beta, c_shapes, widths)):
        inits[f"w{i}"] = rand(n, 8) if tb else rand(8, n)
        ins = ["x", f"w{i}"]
        if cs is not None:
            inits[f"c{i}"] = rand(*cs)
            ins.append(f"c{i}")
        nodes.append(helper.make_node("Gemm", ins, [f"y{i}"], transB=tb, alpha=a, beta=b))
        outs.append((f"y{i}", F32, None))
    return make_model(nodes, [("x", F32, [4, 8])], outs, inits, opset=opset)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_siblings(trans_b):
    proto = gemms(trans_b=(trans_b,) * 3, alpha=(0.5,) * 3, beta=(2.0,) * 3)
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert result.stats["fused"] == 3
    assert op_counts(model) == {"Gemm": 1, "Split": 1}
    gemm = model.graph.nodes[0]
    assert gemm.inputs[1].const_value.shape == ((14, 8) if trans_b else (8, 14))
    assert gemm.inputs[2].const_value.shape == (14,)
    assert gemm.attr("transB") == trans_b and gemm.attr("alpha") == 0.5
    assert split_node(model).attr("axis") == 1


def test_gemm_and_2d_matmul_siblings_share_one_gemm():
    """After fuse-matmul-add the projections with a bias are Gemm, one without stays MatMul."""
    nodes = [helper.make_node("Gemm", ["x", "wq", "bq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["mv"]),
             helper.make_node("Add", ["bv", "mv"], ["v"])]
    inits = {"wq": rand(8, 4), "bq": rand(4), "wk": rand(8, 4), "wv": rand(8, 4), "bv": rand(4)}
    proto = make_model(nodes, [("x", F32, [3, 8])],
                       [("q", F32, None), ("k", F32, None), ("v", F32, None)], inits)
    model, _ = check_rewrite(proto, "fuse-horizontal")
    assert op_counts(model) == {"Gemm": 1, "Split": 1}
    np.testing.assert_array_equal(model.graph.nodes[0].inputs[2].const_value.numpy()[4:8], 0)


def test_2d_matmul_siblings_stay_matmul():
    model, _ = check_rewrite(qkv(x_shape=(3, 16)), "fuse-horizontal")
    assert op_counts(model) == {"MatMul": 1, "Split": 1}
    assert split_node(model).attr("axis") == 1


# -- Conv siblings (Inception) --------------------------------------------------------------------

def inception(out_channels=(4, 6, 2), with_bias=(True, False, True), strides=((1, 1),) * 3,
              kernel=1, pads=None):
    """Parallel Conv branches, each through a Relu, concatenated on channels (when their
    spatial sizes agree; otherwise each branch is a graph output)."""
    nodes, inits = [], {}
    for i, (m, b, s) in enumerate(zip(out_channels, with_bias, strides)):
        inits[f"w{i}"] = rand(m, 8, kernel, kernel)
        ins = ["x", f"w{i}"]
        if b:
            inits[f"b{i}"] = rand(m)
            ins.append(f"b{i}")
        attrs = {"strides": list(s), "kernel_shape": [kernel, kernel]}
        if pads is not None:
            attrs["pads"] = pads
        nodes.append(helper.make_node("Conv", ins, [f"c{i}"], name=f"branch{i}", **attrs))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
    branches = [f"r{i}" for i in range(len(out_channels))]
    if len(set(strides)) == 1:
        nodes.append(helper.make_node("Concat", branches, ["y"], axis=1))
        branches = ["y"]
    return make_model(nodes, [("x", F32, [1, 8, 6, 6])], [(b, F32, None) for b in branches],
                      inits)


@pytest.mark.parametrize("with_bias", [(True, False, True), (False, False, False),
                                       (True, True, True)])
def test_inception_1x1_convs(with_bias):
    model, result = check_rewrite(inception(with_bias=with_bias), "fuse-horizontal")
    assert result.stats["fused"] == 3
    assert op_counts(model) == {"Conv": 1, "Split": 1, "Relu": 3, "Concat": 1}
    conv = model.graph.nodes[0]
    assert conv.name == "branch0_horizontal"
    assert conv.inputs[1].const_value.shape == (12, 8, 1, 1)
    assert (len(conv.inputs) == 3) == any(with_bias)
    assert split_node(model).attr("axis") == 1
    assert str(conv.output.type) == "f32[1,12,6,6]"


def test_3x3_convs_with_equal_pads():
    model, _ = check_rewrite(inception(kernel=3, pads=[1, 1, 1, 1]), "fuse-horizontal")
    assert op_counts(model)["Conv"] == 1


# -- refused --------------------------------------------------------------------------------------

def test_different_attributes_are_not_fused():
    model, result = check_rewrite(inception(strides=((1, 1), (2, 2), (1, 1))), "fuse-horizontal")
    # branches 0 and 2 share strides: they fuse; branch 1 stays
    assert op_counts(model)["Conv"] == 2 and result.stats["fused"] == 2
    model, result = check_rewrite(gemms(trans_b=(0, 1, 1), c_shapes=(None,) * 3),
                                  "fuse-horizontal")
    assert op_counts(model) == {"Gemm": 2, "Split": 1} and result.stats["fused"] == 2
    model, result = check_rewrite(gemms(alpha=(1.0, 0.5, 2.0)), "fuse-horizontal")
    assert not result.changed and op_counts(model) == {"Gemm": 3}


def test_non_constant_weights_are_not_fused():
    """Weights computed at run time (and weights that are plain graph inputs) are not fused."""
    nodes = [helper.make_node("Relu", ["wa"], ["w0"]),
             helper.make_node("MatMul", ["x", "w0"], ["y0"]),
             helper.make_node("MatMul", ["x", "wb"], ["y1"])]
    proto = make_model(nodes, [("x", F32, [3, 4]), ("wa", F32, [4, 2]), ("wb", F32, [4, 2])],
                       [("y0", F32, None), ("y1", F32, None)])
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert not result.changed and op_counts(model) == {"Relu": 1, "MatMul": 2}


def test_weight_that_is_a_graph_input_with_a_default_stays_apart():
    """An initializer listed as an input can be overridden at run time: not a constant. The two
    other siblings still fuse."""
    proto = qkv()
    w2 = proto.graph.initializer[2]
    proto.graph.input.append(helper.make_tensor_value_info(w2.name, F32, list(w2.dims)))
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert result.stats["fused"] == 2
    assert op_counts(model) == {"MatMul": 2, "Split": 1}
    lone = next(n for n in model.graph if n.op_type == "MatMul" and n.output.name == "q2")
    assert lone.inputs[1].is_graph_input()
    feeds = random_feeds(proto) | {w2.name: rand(16, 4)}  # overriding the default still works
    for e, g in zip(ort_run(proto, feeds), ort_run(irlib.to_onnx(model), feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_single_user_is_not_fused():
    model, result = check_rewrite(qkv(widths=(8,), biases=(None,)), "fuse-horizontal")
    assert not result.changed and op_counts(model) == {"MatMul": 1}


def test_siblings_of_different_dtypes_are_not_fused():
    """Grouping keys on the weight dtype: a float16 weight never joins float32 ones (checked on
    the IR: ONNX MatMul needs one dtype, so no valid model has such siblings)."""
    x = irlib.Value("x", irlib.TensorType(irlib.DType.FLOAT, (3, 4)))
    g = irlib.Graph("main", inputs=[x])
    for dtype in (np.float32, np.float16):
        g.outputs.append(g.append(irlib.Node("MatMul", [x, g.constant(rand(4, 2, dtype=dtype))]))
                         .output)
    model = irlib.Model(g, opset_imports={"": 17})
    irlib.verify(model)
    result = run_pass(model, "fuse-horizontal")
    assert not result.changed and op_counts(model) == {"MatMul": 2}


def test_max_bytes_and_min_width_options():
    model = irlib.from_onnx(qkv())
    run_pass(model, "infer-shapes")
    big = (16 * 20 * 4)  # bytes of the concatenated weight
    assert not FuseHorizontal(max_bytes=big - 1).run(model, None).changed
    assert not FuseHorizontal(min_width=21).run(model, None).changed
    result = FuseHorizontal(max_width=19).run(model, None)
    assert not result.changed and result.stats["refused:max-width"] == 1
    result = make_pass("fuse-horizontal", {"max-bytes": "1280", "min-width": "20"}).run(
        model, None)
    assert result.stats["groups"] == 1


# -- text in, text out; Split forms; idempotence --------------------------------------------------

def test_text_in_text_out():
    model = parse_ir("""
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2, 2] x) => (float[2, 2] q, float[2, 1] k) {
            wq = Constant <value = float[2, 2] {1, 2, 3, 4}> ()
            wk = Constant <value = float[2, 1] {7, 8}> ()
            bk = Constant <value = float[1] {0.5}> ()
            q = MatMul(x, wq)
            mk = MatMul(x, wk)
            k = Add(mk, bk)
        }
    """)
    run_pass(model, "infer-shapes")
    result = run_pass(model, "fuse-horizontal")
    assert result.stats == {"groups": 1, "fused": 2, "inserted": 3, "removed": 3}
    run_pass(model, "dce")  # the Constant nodes of the old weights
    text = irlib.format_graph(model.graph)
    assert text == """\
graph main(%x: f32[2,2]) {
  %fuse_horizontal_c_0: f32[2,3] = const [1.0, 2.0, 7.0, 3.0, 4.0, 8.0]
  %fuse_horizontal_c_1: f32[3] = const [0.0, 0.0, 0.5]
  %fuse_horizontal_c_2: i64[2] = const [2, 1]
  %matmul_3: f32[2,3] = MatMul(%x, %fuse_horizontal_c_0)
  %add_4: f32[2,3] = Add(%matmul_3, %fuse_horizontal_c_1)
  %q: f32[2,2], %k: f32[2,1] = Split(%add_4, %fuse_horizontal_c_2) {axis=1}
  return %q, %k
}
"""


@pytest.mark.parametrize("opset,as_input", [(11, False), (12, False), (13, True), (18, True)])
def test_split_sizes_attribute_before_opset_13_input_from_13(opset, as_input):
    model, _ = check_rewrite(qkv(opset=opset), "fuse-horizontal")
    split = split_node(model)
    if as_input:
        assert "split" not in split.attributes
        np.testing.assert_array_equal(split.inputs[1].const_value.numpy(), [8, 8, 4])
    else:
        assert len(split.inputs) == 1 and tuple(split.attr("split")) == (8, 8, 4)


def test_idempotent_and_chained_groups():
    """x -> {A, B}, A -> {C, D}: the second group reads a Split output after the first fusion;
    both fuse in one run, and a second run finds nothing."""
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["a"]),
             helper.make_node("MatMul", ["x", "wb"], ["b"]),
             helper.make_node("MatMul", ["a", "wc"], ["c"]),
             helper.make_node("MatMul", ["a", "wd"], ["d"])]
    inits = {"wa": rand(4, 6), "wb": rand(4, 3), "wc": rand(6, 2), "wd": rand(6, 5)}
    proto = make_model(nodes, [("x", F32, [2, 3, 4])],
                       [("b", F32, None), ("c", F32, None), ("d", F32, None)], inits)
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert result.stats["groups"] == 2
    assert op_counts(model) == {"MatMul": 2, "Split": 2}
    assert not run_pass(model, "fuse-horizontal").changed


def test_siblings_inside_a_subgraph():
    """Siblings in an If branch reading an outer value fuse inside that branch."""
    w = [onnx.numpy_helper.from_array(rand(4, n), f"bw{n}") for n in (2, 3)]
    then = helper.make_graph(
        [helper.make_node("MatMul", ["x", "bw2"], ["t0"]),
         helper.make_node("MatMul", ["x", "bw3"], ["t1"]),
         helper.make_node("Concat", ["t0", "t1"], ["t"], axis=1)],
        "then", [], [helper.make_tensor_value_info("t", F32, [3, 5])], initializer=w)
    other = helper.make_graph([helper.make_node("MatMul", ["x", "ew"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", F32, [3, 5])],
                              initializer=[onnx.numpy_helper.from_array(rand(4, 5), "ew")])
    proto = make_model([helper.make_node("If", ["cond"], ["y"], then_branch=then,
                                         else_branch=other)],
                       [("cond", TensorProto.BOOL, []), ("x", F32, [3, 4])], [("y", F32, None)])
    feeds = {"cond": np.array(True), "x": rand(3, 4)}
    model, result = check_rewrite(proto, "fuse-horizontal", feeds=feeds)
    assert result.stats["groups"] == 1
    body = model.graph.nodes[0].attributes["then_branch"].value
    assert [n.op_type for n in body] == ["MatMul", "Split", "Concat"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_random_sibling_groups(data):
    """Any mix of MatMul siblings (rank 1-3 input, widths 1-5, row biases of any spelling or
    none, some read by another node): verifier and checker hold, ORT agrees, outputs keep their
    names, a second run changes nothing."""
    rank = data.draw(st.integers(1, 3), "rank")
    n = data.draw(st.integers(2, 4), "siblings")
    widths = data.draw(st.lists(st.integers(1, 5), min_size=n, max_size=n), "widths")
    bias_shapes = [None, (), (1,), "w", "1w"][:2 + rank]
    biases = []
    for w in widths:
        b = data.draw(st.sampled_from(bias_shapes), "bias")
        biases.append(b if b in (None, (), (1,)) else ((w,) if b == "w" else (1, w)))
    x_shape = (3, 2, 4)[3 - rank:]
    proto = qkv(widths=widths, biases=biases, x_shape=x_shape,
                outputs_are_graph_outputs=data.draw(st.booleans(), "graph outputs"))
    model, result = check_rewrite(proto, "fuse-horizontal")
    assert result.stats["fused"] == n
    assert [v.name for v in model.graph.outputs] == [o.name for o in proto.graph.output]


# -- with the -O2 pipeline -----------------------------------------------------------------------

def attention_projections(x_shape):
    """Q/K/V projections with biases (K without one, as in Whisper) on 2-D or 3-D activations."""
    d = x_shape[-1]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["mq"]),
             helper.make_node("Add", ["mq", "bq"], ["q"]),
             helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["mv"]),
             helper.make_node("Add", ["mv", "bv"], ["v"]),
             helper.make_node("Mul", ["q", "k"], ["qk"]),
             helper.make_node("Add", ["qk", "v"], ["y"])]
    inits = {"wq": rand(d, 8), "bq": rand(8), "wk": rand(d, 8), "wv": rand(d, 8), "bv": rand(8)}
    return make_model(nodes, [("x", F32, list(x_shape))], [("y", F32, None)], inits)


def test_not_in_the_default_levels():
    """Measured not to pay on ORT's CPU kernels (see the pass's module docstring): opt-in only."""
    assert level_of_pass("fuse-horizontal") is None
    model = irlib.from_onnx(attention_projections((2, 4, 16)))
    run_passes(model, level_pipeline(3))
    assert "Split" not in op_counts(model)


@pytest.mark.parametrize("x_shape,expected", [
    # 2-D: fuse-matmul-add made Q and V Gemm, K stayed MatMul; one Gemm takes all three
    ((4, 16), {"Gemm": 1, "Split": 1, "Mul": 1, "Add": 1}),
    # 3-D: MatMul + Add siblings (K's bias is zeros in the concatenated one)
    ((2, 4, 16), {"MatMul": 1, "Split": 1, "Mul": 1, "Add": 2}),
])
def test_after_o2_fuses_projections(x_shape, expected):
    """Opting in after -O2 (``irc compile --passes``): the vertical fusions ran first."""
    proto = attention_projections(x_shape)
    model = irlib.from_onnx(proto)
    run_passes(model, level_pipeline(2))
    report = run_passes(model, "fuse-horizontal,dce")
    irlib.verify(model)
    out = irlib.to_onnx(model)
    onnx.checker.check_model(out, full_check=True)
    assert op_counts(model) == expected
    assert report.passes[0].stats["groups"] == 1
    feeds = random_feeds(proto)
    for e, g in zip(ort_run(proto, feeds), ort_run(out, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
