"""The shortcuts irlib's import and export take for speed give the same results as the long way.

The importer builds nodes without ``Node.__init__``, shares the decoded values of identical
number/string attributes, links nodes without ``Graph.append`` and pauses the garbage collector;
the exporter hands back the serialized ``AttributeProto`` of an attribute nobody touched and
copies one ``TypeProto`` per type object. Each test below changes what a shortcut relies on and
checks that the export follows the change.
"""

from __future__ import annotations

import gc

import onnx
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import assert_valid, make_model
from irlib import Attribute, DType, IRLoadError, Node, TensorType


def _two_transposes():
    return make_model(
        [helper.make_node("Transpose", ["x"], ["t"], name="a", perm=[1, 0]),
         helper.make_node("Transpose", ["t"], ["y"], name="b", perm=[1, 0]),
         helper.make_node("LeakyRelu", ["y"], ["z"], name="c", alpha=0.5)],
        inputs=[("x", TensorProto.FLOAT, [2, 3])],
        outputs=[("z", TensorProto.FLOAT, [2, 3])],
    )


def _attr(proto: onnx.ModelProto, node: str, name: str) -> onnx.AttributeProto:
    n = next(n for n in proto.graph.node if n.name == node)
    return next(a for a in n.attribute if a.name == name)


def test_identical_attributes_share_their_value_but_not_the_attribute():
    model = irlib.from_onnx(_two_transposes())
    a, b = (n.attributes["perm"] for n in model.graph if n.op_type == "Transpose")
    assert a is not b and a.value == (1, 0) and a.type is irlib.AttrType.INTS
    a.value = (0, 1)
    assert b.value == (1, 0)


@pytest.mark.parametrize("change, expected", [
    (lambda a: setattr(a, "value", (0, 1)), {"perm": [0, 1]}),
    (lambda a: setattr(a, "name", "permutation"), {"permutation": [1, 0]}),
    (lambda a: setattr(a, "doc_string", "swapped"), {"perm": [1, 0]}),
])
def test_an_attribute_changed_in_place_is_exported_as_changed(change, expected):
    model = irlib.from_onnx(_two_transposes())
    node = next(n for n in model.graph if n.name == "a")
    attr = node.attributes.pop("perm")
    change(attr)
    node.attributes[attr.name] = attr
    proto = irlib.to_onnx(model)
    (ap,) = next(n for n in proto.graph.node if n.name == "a").attribute
    assert {ap.name: list(ap.ints)} == expected
    assert ap.doc_string == attr.doc_string
    assert list(_attr(proto, "b", "perm").ints) == [1, 0]  # its twin is untouched


def test_a_float_attribute_set_to_minus_zero_keeps_its_sign():
    model = irlib.from_onnx(make_model(
        [helper.make_node("LeakyRelu", ["x"], ["y"], name="c", alpha=0.0)],
        inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])]))
    node = next(iter(model.graph))
    node.attributes["alpha"].value = -0.0
    alpha = _attr(irlib.to_onnx(model), "c", "alpha").f
    assert alpha == 0.0 and str(alpha) == "-0.0"


def test_set_attr_replaces_an_imported_attribute():
    model = irlib.from_onnx(_two_transposes())
    node = next(n for n in model.graph if n.name == "c")
    node.set_attr(Attribute("alpha", irlib.AttrType.FLOAT, 0.25))
    assert _attr(irlib.to_onnx(model), "c", "alpha").f == 0.25


def test_imported_nodes_behave_like_constructed_ones():
    model = assert_valid(irlib.from_onnx(_two_transposes()))
    a, b, c = model.graph
    assert a.graph is model.graph and b.inputs == (a.output,) and a.output.users() == [b]
    assert a.output.producer() is a and a.output.index == 0 and a.output.name == "t"
    # the graph keeps working: an inserted node gets a fresh name, rewiring keeps use lists
    relu = Node("Relu", [a.output])
    model.graph.insert_after(a, relu)
    b.replace_input_with(0, relu.output)
    assert a.output.users() == [relu] and relu.output.users() == [b]
    assert relu.output.name not in {"x", "t", "y", "z"}
    assert [n.op_type for n in model.graph] == ["Transpose", "Relu", "Transpose", "LeakyRelu"]
    assert_valid(model)


def test_imported_nodes_and_values_have_every_slot_set():
    model = irlib.from_onnx(_two_transposes())
    for node in model.graph:
        assert [s for s in Node.__slots__ if not hasattr(node, s)] == []
        for v in node.outputs:
            assert [s for s in irlib.Value.__slots__ if not hasattr(v, s)] == []
        for a in node.attributes.values():
            assert [s for s in Attribute.__slots__ if not hasattr(a, s)] == []


def test_an_imported_model_out_of_order_is_sorted():
    proto = make_model(
        [helper.make_node("Neg", ["t"], ["y"], name="second"),
         helper.make_node("Relu", ["x"], ["t"], name="first")],
        inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])])
    model = assert_valid(irlib.from_onnx(proto))
    assert [n.name for n in model.graph] == ["first", "second"]


def test_a_cycle_is_still_refused():
    proto = make_model(
        [helper.make_node("Neg", ["t"], ["u"], name="a"),
         helper.make_node("Relu", ["u"], ["t"], name="b"),
         helper.make_node("Identity", ["x"], ["y"], name="c")],
        inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])])
    with pytest.raises(IRLoadError, match="cycle"):
        irlib.from_onnx(proto)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_restored_after_import_and_export(enabled):
    good = _two_transposes()
    bad = make_model([helper.make_node("Relu", ["nowhere"], ["y"])],
                     inputs=[("x", TensorProto.FLOAT, [2])],
                     outputs=[("y", TensorProto.FLOAT, [2])])
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        model = irlib.from_onnx(good)
        assert gc.isenabled() is enabled
        irlib.to_onnx(model)
        assert gc.isenabled() is enabled
        with pytest.raises(IRLoadError, match="undefined value"):
            irlib.from_onnx(bad)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_values_sharing_a_type_object_export_their_own_names_and_denotations():
    model = irlib.from_onnx(_two_transposes())
    a, b, _ = model.graph
    shared = TensorType(DType.FLOAT, (3, 2))
    a.output.type = shared
    b.output.type = TensorType(DType.FLOAT, (3, 2), dim_denotations=("DATA_BATCH", ""))
    infos = {vi.name: vi for vi in irlib.to_onnx(model).graph.value_info}
    assert [d.dim_value for d in infos["t"].type.tensor_type.shape.dim] == [3, 2]
    assert [d.denotation for d in infos["t"].type.tensor_type.shape.dim] == ["", ""]
    assert [d.denotation for d in infos["y"].type.tensor_type.shape.dim] == ["DATA_BATCH", ""]
