"""fold-constants: constant subtrees, Shape/Size of static shapes, size budgets, never-fold ops.

Every folded model is checked three ways: ``irlib.verify`` (the ``verified`` fixture),
``onnx.checker``, and its outputs against the original's under ONNX Runtime with optimizations
off. Folding float32 arithmetic uses the same IEEE operations ORT does, so the comparison is
exact unless a test says otherwise.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from helpers import IR_VERSION, make_model, parse_ir
from passes import PassManager, get_const, run_passes
from passes.transforms.fold_constants import FoldConstants, evaluate_node


def ort_run(model, feeds: dict) -> list[np.ndarray]:
    """Outputs of ``model`` (IR model or ModelProto) under ORT with graph optimizations off."""
    proto = irlib.to_onnx(model) if isinstance(model, irlib.Model) else model
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def fold(model, pipeline: str = "fold-constants"):
    """Run ``pipeline`` with verification after each pass; return the report."""
    return PassManager(pipeline).run(model)


def check_same_outputs(before: onnx.ModelProto, model: irlib.Model, feeds: dict,
                       rtol: float = 0.0, atol: float = 0.0) -> None:
    after = irlib.to_onnx(model)
    onnx.checker.check_model(after, full_check=True)
    want, got = ort_run(before, feeds), ort_run(after, feeds)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph]


# -- text in, text out ------------------------------------------------------------------------

def test_constant_subtree_becomes_an_initializer_named_after_the_value(verified):
    model = verified(parse_ir("""
        main (float[2] x) => (float[2] y) <float[2] a = {1.0, 2.0}, float[2] b = {0.5, 0.25}> {
            s = Add(a, b)
            t = Neg(s)
            y = Mul(x, t)
        }
    """))
    result = FoldConstants().run(model, None)
    run_passes(model, "dce")
    assert irlib.format_graph(model.graph) == (
        "graph main(%x: f32[2]) {\n"
        "  %t: f32[2] = const [-1.5, -2.25]\n"
        "  %y: f32[2] = Mul(%x, %t)\n"
        "  return %y\n"
        "}\n"
    )
    assert result.changed and result.stats["folded"] == 2


def test_pytorch_shape_chain_becomes_a_constant_reshape(verified):
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch.onnx emits for x.view(n, -1)."""
    proto = make_model(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"]),
        ],
        inputs=[("x", TensorProto.FLOAT, [2, 3, 4])],
        outputs=[("y", TensorProto.FLOAT, [2, 12])],
        initializers={"zero": np.array(0, np.int64), "axes0": np.array([0], np.int64),
                      "minus_one": np.array([-1], np.int64)},
    )
    model = verified(irlib.from_onnx(proto))
    fold(model, "fold-constants,dce")
    assert irlib.format_graph(model.graph) == (
        "graph main(%x: f32[2,3,4]) {\n"
        "  %target: i64[2] = const [2, -1]\n"
        "  %y: f32[2,12] = Reshape(%x, %target)\n"
        "  return %y\n"
        "}\n"
    )
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    check_same_outputs(proto, model, {"x": x})


def test_gather_of_a_static_dim_folds_when_other_dims_are_dynamic(verified):
    proto = make_model(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "one"], ["c"], axis=0),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            helper.make_node("Mul", ["n", "c"], ["y"]),
        ],
        inputs=[("x", TensorProto.FLOAT, ["N", 3])],
        outputs=[("y", TensorProto.INT64, [])],
        initializers={"zero": np.array(0, np.int64), "one": np.array(1, np.int64)},
    )
    model = verified(irlib.from_onnx(proto))
    report = fold(model, "fold-constants,dce")
    assert ops(model) == ["Shape", "Gather", "Mul"]
    assert report.passes[0].stats["shapes"] == 1
    mul = model.graph.nodes[-1]
    assert get_const(mul.inputs[1]).tolist() == 3
    check_same_outputs(proto, model, {"x": np.zeros((5, 3), np.float32)})


def test_shape_with_start_and_end_and_size(verified):
    model = verified(parse_ir("""
        <ir_version: 10, opset_import: ["" : 18]>
        main (float[N, 3, 5, 7] x) => (int64[2] s, int64[2] t, int64 n) {
            s = Shape <start = 1, end = -1> (x)
            t = Shape <start = -2> (x)
            n = Size(x)
        }
    """))
    fold(model)
    # s and t are graph outputs: they stay Constant nodes with their own names. Size needs every
    # dim and N is dynamic, so it stays.
    assert ops(model) == ["Constant", "Constant", "Size"]
    assert [get_const(v).tolist() for v in model.graph.outputs[:2]] == [[3, 5], [5, 7]]
    assert [v.name for v in model.graph.outputs] == ["s", "t", "n"]
    x = np.zeros((2, 3, 5, 7), np.float32)
    check_same_outputs(irlib.to_onnx(parse_ir("""
        <ir_version: 10, opset_import: ["" : 18]>
        main (float[N, 3, 5, 7] x) => (int64[2] s, int64[2] t, int64 n) {
            s = Shape <start = 1, end = -1> (x)
            t = Shape <start = -2> (x)
            n = Size(x)
        }
    """)), model, {"x": x})


def test_size_of_a_static_shape(verified):
    model = verified(parse_ir("""
        main (float[2, 3] x) => (float[2, 3] y) {
            n = Size(x)
            f = Cast <to = 1> (n)
            y = Add(x, f)
        }
    """))
    fold(model, "fold-constants,dce")
    assert ops(model) == ["Add"]
    assert get_const(model.graph.nodes[0].inputs[1]).tolist() == 6.0


# -- graph outputs, Constant nodes, names -----------------------------------------------------

def test_folded_graph_output_keeps_its_name_as_a_constant_node(verified):
    text = """
        main (float[2] x) => (float[2] y, float[2] z) <float[2] a = {1.0, 2.0}> {
            y = Add(a, a)
            z = Mul(x, y)
        }
    """
    model = verified(parse_ir(text))
    fold(model)
    assert ops(model) == ["Constant", "Mul"]
    y = model.graph.outputs[0]
    assert y.name == "y" and y.producer().op_type == "Constant"
    assert get_const(y).tolist() == [2.0, 4.0]
    assert model.graph.nodes[1].inputs[1] is y
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": np.array([3, 4], np.float32)})
    assert not FoldConstants().run(model, None).changed  # the output Constant stays a node


def test_constant_nodes_become_initializers_unless_disabled(verified):
    text = """
        main (float[2] x) => (float[2] y) {
            c = Constant <value = float[2] {3.0, 4.0}> ()
            y = Mul(x, c)
        }
    """
    model = verified(parse_ir(text))
    assert not FoldConstants(constants_to_initializers=False).run(model, None).changed
    result = FoldConstants().run(model, None)
    assert result.stats["constants"] == 1
    assert ops(model) == ["Mul"]
    c = model.graph.initializers[0]
    assert c.name == "c" and c.const_value.numpy().tolist() == [3.0, 4.0]
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": np.array([1, 2], np.float32)})


def test_initializer_that_is_also_an_input_is_not_a_constant(verified):
    """An input with a default can be fed at run time: folding it would freeze the default."""
    proto = make_model(
        [helper.make_node("Neg", ["w"], ["n"]), helper.make_node("Add", ["x", "n"], ["y"])],
        inputs=[("x", TensorProto.FLOAT, [2]), ("w", TensorProto.FLOAT, [2])],
        outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"w": np.array([1, 2], np.float32)},
    )
    model = verified(irlib.from_onnx(proto))
    assert not FoldConstants().run(model, None).changed


# -- what never folds -------------------------------------------------------------------------

def test_random_ops_never_fold(verified):
    model = verified(parse_ir("""
        main (float[2] x) => (float[2] y) <float[2] c = {0.0, 1.0}> {
            r = RandomNormal <shape = [2], seed = 1.0> ()
            u = RandomUniformLike <seed = 2.0> (c)
            b = Bernoulli <seed = 3.0> (c)
            s = Add(r, u)
            t = Add(s, b)
            y = Add(x, t)
        }
    """))
    assert not FoldConstants().run(model, None).changed
    assert ops(model) == ["RandomNormal", "RandomUniformLike", "Bernoulli", "Add", "Add", "Add"]


def test_ops_of_other_domains_are_not_folded(verified):
    proto = make_model(
        [helper.make_node("Gelu", ["c"], ["g"], domain="com.microsoft"),
         helper.make_node("Add", ["x", "g"], ["y"])],
        inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"c": np.array([1, 2], np.float32)}, opsets={"com.microsoft": 1},
    )
    model = verified(irlib.from_onnx(proto))
    assert not FoldConstants().run(model, None).changed


@pytest.mark.parametrize("node, over", [
    ("big = ConstantOfShape <value = float[1] {1.0}> (shape)", "shape"),
    ("big = Expand(one, shape)", "shape"),
    ("big = Tile(row, reps)", "reps"),
    ("big = Range(start, limit, delta)", "limit"),
])
def test_large_by_construction_outputs_stay_over_the_budget(verified, node, over):
    """The output size is computed from the constant inputs before evaluating: 4096 floats is
    16 KiB, over a 4 KiB budget, so the node stays; under the default 1 MiB it folds."""
    row = ", ".join(["1.0"] * 64)
    text = f"""
        main (float[4096] x) => (float[4096] y)
            <int64[1] shape = {{4096}}, float[1] one = {{1.0}}, float[1, 64] row = {{{row}}},
             int64[2] reps = {{64, 1}}, float start = {{0.0}}, float limit = {{4096.0}},
             float delta = {{1.0}}> {{
            {node}
            flat = Reshape(big, shape)
            y = Add(x, flat)
        }}
    """
    model = verified(parse_ir(text))
    report = fold(model, "fold-constants{max-bytes=4096},dce")
    assert "big" in {n.output.name for n in model.graph}
    assert report.passes[0].stats["over_budget"] >= 1
    model2 = verified(parse_ir(text))
    fold(model2, "fold-constants,dce")
    assert ops(model2) == ["Add"]
    x = np.arange(4096, dtype=np.float32)
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model2, {"x": x})
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": x})


def test_generic_output_over_the_budget_stays(verified):
    model = verified(parse_ir("""
        main (float[64, 64] x) => (float[64, 64] y) <float[64, 1] a = {1.0}, float[1, 64] b = {2.0}> {
            outer = Mul(a, b)
            y = Add(x, outer)
        }
    """.replace("{1.0}", "{" + ",".join(["1.0"] * 64) + "}").replace("{2.0}", "{" + ",".join(["2.0"] * 64) + "}")))
    assert not FoldConstants(max_bytes=1024).run(model, None).changed
    assert FoldConstants(max_bytes=16384).run(model, None).changed


# -- evaluators -------------------------------------------------------------------------------

def test_multi_output_and_reference_evaluated_ops_match_onnxruntime(verified):
    """Split (two outputs), integer Div/Mod (truncation, not numpy's floor), Where, TopK."""
    proto = make_model(
        [
            helper.make_node("Split", ["v", "sizes"], ["p", "q"], axis=0),
            helper.make_node("Div", ["p", "q"], ["d"]),
            helper.make_node("Mod", ["p", "q"], ["m"]),
            helper.make_node("Greater", ["d", "m"], ["g"]),
            helper.make_node("Where", ["g", "d", "m"], ["w"]),
            helper.make_node("TopK", ["w", "k"], ["tv", "ti"]),
            helper.make_node("Add", ["tv", "ti"], ["s"]),
            helper.make_node("Add", ["x", "s"], ["y"]),
        ],
        inputs=[("x", TensorProto.INT64, [2])], outputs=[("y", TensorProto.INT64, [2])],
        initializers={"v": np.array([-7, 9, 2, -4], np.int64), "sizes": np.array([2, 2], np.int64),
                      "k": np.array([2], np.int64)},
    )
    model = verified(irlib.from_onnx(proto))
    fold(model, "fold-constants,dce")
    assert ops(model) == ["Add"]
    check_same_outputs(proto, model, {"x": np.array([10, 20], np.int64)})


def test_numpy_registry_and_reference_evaluator_agree():
    """The numpy fast paths give what the ONNX reference implementation gives."""
    from irlib import Node, Value
    from passes.transforms.fold_constants import EVALUATORS, _reference_evaluate

    rng = np.random.default_rng(3)
    cases = [
        (Node("Unsqueeze", [Value(), Value()]), [rng.standard_normal((2, 3)).astype(np.float32),
                                                 np.array([-1, 0], np.int64)]),
        (Node("Squeeze", [Value(), Value()]), [np.zeros((1, 3, 1), np.int64), np.array([2], np.int64)]),
        (Node("Concat", [Value(), Value()], {"axis": -1}), [np.ones((2, 1), np.int64), np.zeros((2, 3), np.int64)]),
        (Node("Gather", [Value(), Value()], {"axis": 1}), [np.arange(12).reshape(3, 4), np.array([[-1, 0]], np.int64)]),
        (Node("Reshape", [Value(), Value()]), [np.arange(12).reshape(3, 4), np.array([0, 2, -1], np.int64)]),
        (Node("Add", [Value(), Value()]), [rng.standard_normal((3, 1)).astype(np.float32),
                                           rng.standard_normal(4).astype(np.float32)]),
        (Node("Mul", [Value(), Value()]), [np.array([2**62], np.int64), np.array([4], np.int64)]),
        (Node("Sub", [Value(), Value()]), [np.array([1], np.uint8), np.array([2], np.uint8)]),
    ]
    for node, inputs in cases:
        fast = EVALUATORS[node.op_type](node, inputs, 17)
        ref = _reference_evaluate(node, inputs, {"": 17}, IR_VERSION)
        assert fast is not None, node.op_type
        for f, r in zip(fast, ref):
            assert f.dtype == r.dtype and f.shape == r.shape, node.op_type
            np.testing.assert_array_equal(f, r, err_msg=node.op_type)
    assert evaluate_node(Node("Div", [Value(), Value()]), [np.array([-7]), np.array([2])],
                         {"": 17})[0].tolist() == [-3]


def test_folds_inside_subgraphs(verified):
    """A node of an If branch reading outer constants folds into the branch."""
    then_g = helper.make_graph(
        [helper.make_node("Add", ["a", "a"], ["two_a"]), helper.make_node("Mul", ["x", "two_a"], ["t"])],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])], "else", [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    proto = make_model(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
        inputs=[("cond", TensorProto.BOOL, []), ("x", TensorProto.FLOAT, [2])],
        outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"a": np.array([1.5, -2.0], np.float32)},
    )
    model = verified(irlib.from_onnx(proto))
    fold(model, "fold-constants,dce")
    then_graph = model.graph.nodes[0].attr("then_branch")
    assert [n.op_type for n in then_graph] == ["Mul"]
    x = np.array([2, 3], np.float32)
    for cond in (True, False):
        check_same_outputs(proto, model, {"cond": np.array(cond), "x": x})


def test_second_run_changes_nothing(verified):
    model = verified(parse_ir("""
        main (float[2, 3] x) => (float[2, 3] y, int64[2] s) <float[3] a = {1.0, 2.0, 3.0}> {
            s = Shape(x)
            b = Mul(a, a)
            c = Constant <value_float = 2.0> ()
            d = Div(b, c)
            y = Sub(x, d)
        }
    """))
    assert FoldConstants().run(model, None).changed
    second = FoldConstants().run(model, None)
    assert not second.changed and second.stats["folded"] == 0


# -- property: random elementwise chains with constant subtrees -------------------------------

_UNARY = ["Neg", "Abs", "Relu"]
_BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]


@st.composite
def elementwise_chains(draw):
    """A random DAG of elementwise float ops over one input and some constants."""
    n_consts = draw(st.integers(1, 3))
    values = ["x"] + [f"c{i}" for i in range(n_consts)]
    nodes = []
    for i in range(draw(st.integers(1, 10))):
        out = f"v{i}"
        if draw(st.booleans()):
            op = draw(st.sampled_from(_UNARY))
            nodes.append(helper.make_node(op, [draw(st.sampled_from(values))], [out]))
        else:
            op = draw(st.sampled_from(_BINARY))
            a, b = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            nodes.append(helper.make_node(op, [a, b], [out]))
        values.append(out)
    consts = {f"c{i}": draw(st.lists(st.floats(-4, 4, width=32).filter(lambda f: abs(f) > 0.25),
                                     min_size=3, max_size=3)) for i in range(n_consts)}
    outputs = [values[-1]] + ([values[-2]] if len(values) > n_consts + 2 else [])
    return nodes, consts, outputs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elementwise_chains())
def test_property_folding_keeps_outputs(chain):
    nodes, consts, outputs = chain
    proto = make_model(
        nodes, inputs=[("x", TensorProto.FLOAT, [3])],
        outputs=[(o, TensorProto.FLOAT, [3]) for o in outputs],
        initializers={k: np.array(v, np.float32) for k, v in consts.items()},
    )
    model = irlib.from_onnx(proto)
    PassManager("fold-constants,dce").run(model)  # verifies after each pass
    irlib.verify(model)
    assert [v.name for v in model.graph.outputs] == outputs
    for n in model.graph:  # nothing constant is left to fold
        assert n.op_type == "Constant" or any(get_const(v) is None for v in n.inputs)
    x = np.array([0.5, -1.25, 3.0], np.float32)
    check_same_outputs(proto, model, {"x": x}, rtol=1e-6, atol=1e-6)
    assert not FoldConstants().run(model, None).changed
