"""The onnx-graphsurgeon bridge: ``irlib.to_graphsurgeon`` and ``irlib.from_graphsurgeon``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import irlib

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.onnx"


def run(model: irlib.Model, feeds: dict) -> list[np.ndarray]:
    data = irlib.to_onnx(model).SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_round_trip_example_is_lossless():
    model = irlib.load(EXAMPLE)
    graph = irlib.to_graphsurgeon(model)
    assert isinstance(graph, gs.Graph)
    assert len(graph.nodes) == len(model.graph)
    assert graph.opset == 17 and graph.ir_version == 8

    back = irlib.from_graphsurgeon(graph)
    irlib.verify(back)
    assert irlib.format_model(back) == irlib.format_model(model)

    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run(back, {"x": x})[0], run(model, {"x": x})[0])


def test_edit_in_graphsurgeon_then_import():
    """Remove the Identity and the Dropout with graphsurgeon's API; ORT gives the same logits."""
    model = irlib.load(EXAMPLE)
    graph = irlib.to_graphsurgeon(model)
    for node in [n for n in graph.nodes if n.op in ("Identity", "Dropout")]:
        src, dst = node.inputs[0], node.outputs[0]
        for consumer in list(dst.outputs):
            consumer.inputs[consumer.inputs.index(dst)] = src
        node.outputs.clear()
    graph.cleanup()

    edited = irlib.from_graphsurgeon(graph)
    irlib.verify(edited)
    ops = [n.op_type for n in edited.graph]
    assert "Identity" not in ops and "Dropout" not in ops
    assert len(ops) == len(model.graph) - 2

    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(run(edited, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-6,
                               atol=1e-6)


def test_subgraphs_survive():
    then = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                            [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    g = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els)],
        "main", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one"),
                     numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = irlib.from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                                              ir_version=8))
    back = irlib.from_graphsurgeon(irlib.to_graphsurgeon(model))
    irlib.verify(back)
    assert sum(1 for _ in back.graph.all_nodes()) == 5
    # the inner Add still reads the outer graph's x: the use is recorded across the boundary
    x_value = back.graph.inputs[0]
    assert sorted(u.node.op_type for u in x_value.uses()) == ["Add", "Neg", "ReduceSum"]
    for x in (np.array([1, 2, 3], np.float32), np.array([-1, -2, -3], np.float32)):
        np.testing.assert_array_equal(run(back, {"x": x})[0], run(model, {"x": x})[0])


def test_graph_built_in_graphsurgeon():
    """A graph made from scratch (no IR version, nodes out of order) becomes a sorted, valid IR."""
    x = gs.Variable("x", dtype=np.float32, shape=(2, 3))
    h = gs.Variable("h", dtype=np.float32, shape=(2, 3))
    y = gs.Variable("y", dtype=np.float32, shape=(2, 3))
    w = gs.Constant("w", np.full((2, 3), 0.5, np.float32))
    relu = gs.Node("Relu", name="relu", inputs=[h], outputs=[y])
    mul = gs.Node("Mul", name="mul", inputs=[x, w], outputs=[h])
    graph = gs.Graph(nodes=[relu, mul], inputs=[x], outputs=[y], opset=17)

    model = irlib.from_graphsurgeon(graph)
    irlib.verify(model)
    assert [n.op_type for n in model.graph] == ["Mul", "Relu"]
    assert model.ir_version >= irlib.DEFAULT_IR_VERSION
    xv = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    np.testing.assert_array_equal(run(model, {"x": xv})[0], np.maximum(xv * 0.5, 0))


def test_from_graphsurgeon_refuses_a_dangling_use():
    x = gs.Variable("x", dtype=np.float32, shape=(2,))
    ghost = gs.Variable("ghost", dtype=np.float32, shape=(2,))
    y = gs.Variable("y", dtype=np.float32, shape=(2,))
    graph = gs.Graph(nodes=[gs.Node("Add", name="add", inputs=[x, ghost], outputs=[y])],
                     inputs=[x], outputs=[y], opset=17)
    with pytest.raises(irlib.IRLoadError, match="undefined value 'ghost'"):
        irlib.from_graphsurgeon(graph)


def test_from_graphsurgeon_wants_a_graph():
    with pytest.raises(TypeError, match="onnx_graphsurgeon.Graph"):
        irlib.from_graphsurgeon(onnx.ModelProto())
