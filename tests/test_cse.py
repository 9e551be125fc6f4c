"""cse: equal nodes merge (op, domain, attributes, inputs), equal initializers are shared."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from helpers import make_model, parse_ir
from passes import PassManager
from passes.transforms.cse import CommonSubexpressionElimination


def ort_run(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def check_same_outputs(before: onnx.ModelProto, model: irlib.Model, feeds: dict) -> None:
    """CSE only rewires readers: outputs must be bit-identical."""
    after = irlib.to_onnx(model)
    onnx.checker.check_model(after, full_check=True)
    for w, g in zip(ort_run(before, feeds), ort_run(after, feeds), strict=True):
        assert w.dtype == g.dtype
        np.testing.assert_array_equal(g, w)


def cse(model, **options):
    return CommonSubexpressionElimination(**options).run(model, None)


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph]


def test_duplicate_chain_merges_in_one_sweep(verified):
    text = """
        main (float[2, 3] x) => (float[2, 3] y) {
            a1 = Relu(x)
            b1 = Sigmoid(a1)
            a2 = Relu(x)
            b2 = Sigmoid(a2)
            y = Add(b1, b2)
        }
    """
    model = verified(parse_ir(text))
    result = cse(model)
    assert irlib.format_graph(model.graph) == (
        "graph main(%x: f32[2,3]) {\n"
        "  %a1 = Relu(%x)\n"
        "  %b1 = Sigmoid(%a1)\n"
        "  %y: f32[2,3] = Add(%b1, %b1)\n"
        "  return %y\n"
        "}\n"
    )
    assert result.stats == {"nodes_merged": 2, "initializers_merged": 0}
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": x})
    assert not cse(model).changed


def test_attributes_and_input_order_matter(verified):
    model = verified(parse_ir("""
        main (float[4, 4] x, float[4, 4] z) => (float[4, 4] y) {
            t1 = Transpose <perm = [1, 0]> (x)
            t2 = Transpose <perm = [0, 1]> (x)
            s1 = Sub(x, z)
            s2 = Sub(z, x)
            m1 = Mul(x, z)
            m2 = Mul(z, x)
            a = Add(t1, t2)
            b = Add(s1, s2)
            c = Add(m1, m2)
            d = Add(a, b)
            y = Add(d, c)
        }
    """))
    result = cse(model)
    # Only Mul(x, z) / Mul(z, x) merge: different perms differ, Sub does not commute.
    assert result.stats["nodes_merged"] == 1
    assert ops(model).count("Transpose") == 2 and ops(model).count("Sub") == 2
    assert ops(model).count("Mul") == 1


def test_random_ops_and_subgraph_nodes_are_kept(verified):
    then_g = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    proto = make_model(
        [
            helper.make_node("RandomUniformLike", ["x"], ["r1"]),
            helper.make_node("RandomUniformLike", ["x"], ["r2"]),
            helper.make_node("If", ["c"], ["i1"], then_branch=then_g, else_branch=then_g),
            helper.make_node("If", ["c"], ["i2"], then_branch=then_g, else_branch=then_g),
            helper.make_node("Sum", ["r1", "r2", "i1", "i2"], ["y"]),
        ],
        inputs=[("x", TensorProto.FLOAT, [2]), ("c", TensorProto.BOOL, [])],
        outputs=[("y", TensorProto.FLOAT, [2])],
    )
    model = verified(irlib.from_onnx(proto))
    assert not cse(model).changed
    assert ops(model) == ["RandomUniformLike", "RandomUniformLike", "If", "If", "Sum"]


def test_equal_initializers_are_shared_exactly(verified):
    proto = make_model(
        [
            helper.make_node("Add", ["x", "a"], ["p"]),
            helper.make_node("Add", ["x", "b"], ["q"]),
            helper.make_node("Add", ["x", "zero"], ["r"]),
            helper.make_node("Add", ["x", "negzero"], ["s"]),
            helper.make_node("Sum", ["p", "q", "r", "s"], ["y"]),
        ],
        inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"a": np.array([1, 2], np.float32), "b": np.array([1, 2], np.float32),
                      "zero": np.array([0, 0], np.float32),
                      "negzero": np.array([-0.0, 0], np.float32)},
    )
    model = verified(irlib.from_onnx(proto))
    result = cse(model)
    # a and b merge, then Add(x, a) and Add(x, b) are the same node; 0.0 and -0.0 stay apart.
    assert result.stats == {"nodes_merged": 1, "initializers_merged": 1}
    assert [v.name for v in model.graph.initializers] == ["a", "zero", "negzero"]
    check_same_outputs(proto, model, {"x": np.array([-0.0, 3], np.float32)})


def test_initializers_of_other_shapes_or_types_or_inputs_stay(verified):
    proto = make_model(
        [helper.make_node("Concat", ["a", "b", "c", "d"], ["y"], axis=0)],
        inputs=[("d", TensorProto.INT64, [2])], outputs=[("y", TensorProto.INT64, [8])],
        initializers=[
            onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "a"),
            onnx.numpy_helper.from_array(np.array([[1, 2]], np.int64).reshape(2), "b"),
            onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "c"),
            onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "d"),  # input default
        ],
    )
    model = verified(irlib.from_onnx(proto))
    result = cse(model)
    assert result.stats["initializers_merged"] == 2  # b and c into a; d is overridable
    concat = model.graph.nodes[0]
    assert [v.name for v in concat.inputs] == ["a", "a", "a", "d"]
    check_same_outputs(proto, model, {"d": np.array([7, 8], np.int64)})


def test_constant_nodes_with_equal_values_merge_and_int_floats_do_not(verified):
    model = verified(parse_ir("""
        main (float[2] x) => (float[2] y) {
            c1 = Constant <value = float[2] {1.0, 2.0}> ()
            c2 = Constant <value = float[2] {1.0, 2.0}> ()
            c3 = Constant <value = double[2] {1.0, 2.0}> ()
            d = Cast <to = 1> (c3)
            a = Add(x, c1)
            b = Add(x, c2)
            e = Add(a, b)
            y = Add(e, d)
        }
    """))
    result = cse(model)
    assert result.stats["nodes_merged"] == 2  # c2 into c1, then Add(x, c2) into Add(x, c1)
    assert ops(model) == ["Constant", "Constant", "Cast", "Add", "Add", "Add"]


def test_graph_outputs_keep_their_names(verified):
    text = """
        main (float[2] x) => (float[2] y, float[2] z, float[2] w) {
            y = Relu(x)
            t = Relu(x)
            z = Neg(t)
            w = Relu(x)
        }
    """
    model = verified(parse_ir(text))
    cse(model)
    # t merges into y; w is another output name for the same value: an Identity keeps it.
    assert [v.name for v in model.graph.outputs] == ["y", "z", "w"]
    assert ops(model) == ["Relu", "Neg", "Identity"]
    assert model.graph.outputs[2].producer().inputs[0] is model.graph.outputs[0]
    assert not cse(model).changed
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": np.array([-1, 2], np.float32)})


def test_output_of_a_duplicate_moves_to_the_kept_value(verified):
    text = """
        main (float[2] x) => (float[2] y, float[2] z) {
            t = Relu(x)
            y = Neg(t)
            z = Relu(x)
        }
    """
    model = verified(parse_ir(text))
    cse(model)
    assert ops(model) == ["Relu", "Neg"]
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert model.graph.outputs[1] is model.graph.nodes[1].inputs[0]
    check_same_outputs(irlib.to_onnx(parse_ir(text)), model, {"x": np.array([-1, 2], np.float32)})


def test_inside_subgraph(verified):
    body = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n1"]), helper.make_node("Neg", ["x"], ["n2"]),
         helper.make_node("Add", ["n1", "n2"], ["t"])],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    proto = make_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)],
        inputs=[("x", TensorProto.FLOAT, [2]), ("c", TensorProto.BOOL, [])],
        outputs=[("y", TensorProto.FLOAT, [2])],
    )
    model = verified(irlib.from_onnx(proto))
    assert cse(model).stats["nodes_merged"] == 2  # once in each branch
    for cond in (True, False):
        check_same_outputs(proto, model, {"x": np.array([1, -2], np.float32), "c": np.array(cond)})


# -- property: random DAGs with repeated subexpressions ----------------------------------------

@st.composite
def dags_with_repeats(draw):
    ops_ = ["Relu", "Neg", "Add", "Mul", "Sub"]
    values = ["x", "z"]
    nodes = []
    for i in range(draw(st.integers(2, 14))):
        op = draw(st.sampled_from(ops_))
        arity = 1 if op in ("Relu", "Neg") else 2
        ins = [draw(st.sampled_from(values)) for _ in range(arity)]
        nodes.append(helper.make_node(op, ins, [f"v{i}"]))
        values.append(f"v{i}")
        if draw(st.booleans()):  # repeat it, maybe with swapped operands
            if arity == 2 and draw(st.booleans()):
                ins = ins[::-1]
            nodes.append(helper.make_node(op, ins, [f"w{i}"]))
            values.append(f"w{i}")
    n_out = draw(st.integers(1, 3))
    return nodes, list(dict.fromkeys(values[-n_out:]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags_with_repeats())
def test_property_cse_keeps_outputs_and_is_idempotent(dag):
    nodes, outputs = dag
    proto = make_model(nodes, inputs=[("x", TensorProto.FLOAT, [3]), ("z", TensorProto.FLOAT, [3])],
                       outputs=[(o, TensorProto.FLOAT, [3]) for o in outputs])
    model = irlib.from_onnx(proto)
    PassManager("cse,dce").run(model)  # verified after each pass
    assert [v.name for v in model.graph.outputs] == outputs
    keys = [(n.op_type, tuple(id(v) for v in n.inputs)) for n in model.graph
            if n.op_type != "Identity"]
    assert len(keys) == len(set(keys))  # no two nodes left computing the same thing
    feeds = {"x": np.array([0.5, -1.5, 2.0], np.float32), "z": np.array([3.0, 0.25, -2.0], np.float32)}
    check_same_outputs(proto, model, feeds)
    assert not cse(model).changed
