"""``irlib.verify`` / ``irlib.check``: one test per invariant.

The public API keeps these invariants, so each test breaks the IR on purpose, mostly by poking
private fields, and checks that the message names the node and the problem.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from irlib import Attribute, AttrType, DType, Graph, Model, Node, Tensor, TensorType, Value
from helpers import assert_valid, make_model

F2 = TensorType(DType.FLOAT, (2,))


def small_graph() -> tuple[Graph, Value, Node, Node]:
    """``x -> Relu 'r' -> t -> Neg 'n' -> y``."""
    x = Value("x", F2)
    g = Graph("g", inputs=[x])
    r = g.append(Node("Relu", [x], name="r", outputs=["t"]))
    n = g.append(Node("Neg", [r.output], name="n", outputs=["y"]))
    g.outputs.append(n.output)
    return g, x, r, n


def only_problem(g) -> str:
    problems = irlib.check(g)
    assert len(problems) == 1, problems
    return problems[0]


def test_a_well_formed_model_passes():
    proto = make_model(
        [helper.make_node("Add", ["x", "w"], ["t"], name="add"),
         helper.make_node("Relu", ["t"], ["y"], name="relu")],
        inputs=[("x", TensorProto.FLOAT, [2])],
        outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"w": np.ones(2, np.float32)},
    )
    model = irlib.from_onnx(proto)
    assert irlib.check(model) == []
    irlib.verify(model)
    assert_valid(model)


def test_check_returns_every_problem_and_verify_raises_with_all_of_them():
    g, x, r, n = small_graph()
    r.output._name = None                # 1: a value with no name
    n._inputs = (x,)                     # 2: Neg reads x without recording the use ...
    g.outputs.append("y")                # 3: an output that is not a Value
    problems = irlib.check(g)
    assert len(problems) == 4, problems  # ... 2b: and r's output records a use that is not there
    with pytest.raises(irlib.VerificationError) as err:
        irlib.verify(g)
    assert err.value.problems == problems
    assert "(and 3 more)" in str(err.value)


# -- SSA and names ----------------------------------------------------------------------------

def test_a_value_without_a_name():
    g, _, r, _ = small_graph()
    r.output._name = None
    assert only_problem(g) == "graph 'g': output of Relu node 'r' has no name"


def test_a_name_used_twice_in_a_graph():
    g, _, r, n = small_graph()
    n.output.name = r.output.name
    assert only_problem(g) == (
        "graph 'g': value name 't' is used twice (output of Relu node 'r'"
        " and output of Neg node 'n')")


def test_a_subgraph_name_that_shadows_an_outer_name():
    g, x, r, n = small_graph()
    inner = Node("Abs", [x], name="inner")
    body = Graph("body", nodes=[inner], outputs=[inner.output])
    holder = Node("If", [r.output], {"then_branch": body, "else_branch": Graph(
        "else", outputs=[x])}, name="if")
    g.append(holder)
    inner.output.name = "t"
    assert only_problem(g) == (
        "graph 'body': value name 't' (output of Abs node 'inner') shadows the output"
        " of Relu node 'r' of an enclosing graph")


def test_a_graph_input_that_a_node_also_produces():
    g, x, r, _ = small_graph()
    g.inputs.append(r.output)
    problems = irlib.check(g)
    assert "graph 'g': input 't' is also produced by Relu node 'r'" in problems


def test_a_graph_input_that_does_not_point_back():
    g, x, _, _ = small_graph()
    x._graph = None
    assert only_problem(g) == "graph 'g': input 'x' does not point back to its graph"


def test_an_initializer_that_does_not_point_back():
    g, _, _, _ = small_graph()
    w = g.constant(np.ones(2, np.float32), name="w")
    w._graph = Graph("elsewhere")
    assert only_problem(g) == "graph 'g': initializer 'w' does not point back to its graph"


# -- constants --------------------------------------------------------------------------------

def test_an_initializer_without_a_tensor():
    g, _, _, _ = small_graph()
    w = g.constant(np.ones(2, np.float32), name="w")
    w.const_value = [1.0, 1.0]
    assert only_problem(g) == "graph 'g': initializer 'w' holds list, not a Tensor"


@pytest.mark.parametrize("declared, message", [
    (TensorType(DType.INT64, (2,)), "is declared i64 but holds f32 data"),
    (TensorType(DType.FLOAT, (2, 1)), "is declared with rank 2 but holds a rank-1 tensor"),
    (TensorType(DType.FLOAT, (3,)), "is declared f32[3] but holds shape [2]"),
])
def test_an_initializer_whose_type_disagrees_with_its_data(declared, message):
    g, _, _, _ = small_graph()
    w = g.constant(np.ones(2, np.float32), name="w")
    w.type = declared
    assert only_problem(g) == f"graph 'g': initializer 'w' {message}"


def test_an_initializer_with_a_symbolic_dimension_is_fine():
    g, _, _, _ = small_graph()
    w = g.constant(np.ones(2, np.float32), name="w")
    w.type = TensorType(DType.FLOAT, ("N",))
    assert irlib.check(g) == []


# -- the node list ----------------------------------------------------------------------------

def test_a_broken_back_link_in_the_node_list():
    g, _, r, n = small_graph()
    n._prev = g._root
    assert only_problem(g) == "graph 'g': Neg node 'n': the node list is broken (its back link is wrong)"


def test_a_node_list_that_loops():
    g, _, r, n = small_graph()
    n._next = r  # the list never ends: the verifier must not loop forever
    problems = irlib.check(g)
    assert "graph 'g': Relu node 'r' appears twice in the node list" in problems


def test_a_removed_node_still_linked():
    g, _, r, n = small_graph()
    n._removed = True
    problems = irlib.check(g)
    assert "graph 'g': Neg node 'n' was removed but is still in the node list" in problems
    assert "graph 'g': node count 2 does not match the 1 nodes in the list" in problems


def test_a_node_that_does_not_point_back_to_its_graph():
    g, _, _, n = small_graph()
    n.graph = Graph("other")
    assert only_problem(g) == "graph 'g': Neg node 'n' does not point back to its graph"


def test_a_wrong_node_count():
    g, _, _, _ = small_graph()
    g._len = 5
    assert only_problem(g) == "graph 'g': node count 5 does not match the 2 nodes in the list"


# -- inputs and use-def chains ----------------------------------------------------------------

def test_an_input_that_is_not_a_value():
    g, _, _, n = small_graph()
    n._inputs = n._inputs + ("x",)
    assert only_problem(g) == "graph 'g': Neg node 'n': input 1 is str, not a Value"


def test_an_input_whose_use_is_not_recorded():
    g, x, r, _ = small_graph()
    x._uses.clear()
    assert only_problem(g) == "graph 'g': Relu node 'r': input 0 ('x') does not record this use"


def test_a_recorded_use_that_is_not_real():
    g, x, r, n = small_graph()
    x._uses[(n, 0)] = None  # n reads relu_0, not x
    assert only_problem(g) == (
        "graph 'g': value 'x' records a use as input 0 of Neg node 'n', which reads something else")


def test_a_use_by_a_node_that_is_not_in_a_graph():
    g, x, _, _ = small_graph()
    Node("Abs", [x], name="stray")  # built, never inserted: its use of x stays recorded
    assert only_problem(g) == (
        "graph 'g': value 'x' records a use by Abs node 'stray', which is not in a graph"
        " (removed or never inserted)")


def test_an_input_used_before_it_is_defined():
    g, _, r, n = small_graph()
    g.move_before(r, n)
    assert only_problem(g) == (
        "graph 'g': Neg node 'n': input 0 ('t') is used before it is defined by"
        " Relu node 'r' (cycle or wrong order)")


def test_an_input_defined_nowhere_visible():
    g, _, _, n = small_graph()
    other = Graph("other", inputs=[Value("z", F2)])
    n.replace_input_with(0, other.inputs[0])
    assert only_problem(g) == (
        "graph 'g': Neg node 'n': input 0 ('z') is not defined in this graph or an enclosing one")


def test_a_subgraph_reading_an_outer_value_defined_after_it():
    g, x, r, n = small_graph()
    inner = Node("Abs", [n.output], name="inner")
    body = Graph("body", nodes=[inner], outputs=[inner.output])
    g.insert_before(n, Node("If", [r.output], {"then_branch": body, "else_branch": body},
                            name="if"))
    problems = irlib.check(g)
    assert problems == 2 * [  # the body is both branches
        "graph 'body': Abs node 'inner': input 0 ('y') is not defined in this graph"
        " or an enclosing one"]


def test_reading_an_optional_output_that_is_not_produced():
    g, x, _, n = small_graph()
    drop = Node("Dropout", [x], outputs=[None, ""], name="drop")
    g.insert_before(n, drop)
    n.replace_input_with(0, drop.outputs[1])
    problems = irlib.check(g)
    assert "graph 'g': Neg node 'n': input 0 reads an optional output that is not produced" in problems
    assert "graph 'g': Dropout node 'drop': output 1 has no name but is read" in problems


def test_an_output_that_does_not_point_back_to_its_producer():
    g, _, r, _ = small_graph()
    r.output._index = 3
    assert only_problem(g) == (
        "graph 'g': Relu node 'r': output 0 ('t') does not point back to its producer")


def test_an_unnamed_node_is_told_by_its_output():
    g, x, r, _ = small_graph()
    r.name = ""
    x._uses.clear()
    assert only_problem(g) == "graph 'g': Relu node -> %t: input 0 ('x') does not record this use"


# -- graph outputs ----------------------------------------------------------------------------

def test_a_graph_output_that_is_not_defined():
    g, _, _, _ = small_graph()
    g.outputs.append(Value("ghost", F2))
    assert only_problem(g) == "graph 'g': output 1 ('ghost') is not defined"


def test_a_graph_output_that_is_not_a_value():
    g, _, _, _ = small_graph()
    g.outputs.append("y")
    assert only_problem(g) == "graph 'g': output 1 is str, not a Value"


# -- attributes and domains -------------------------------------------------------------------

def test_an_attribute_that_is_not_an_attribute():
    g, _, r, _ = small_graph()
    r.attributes["alpha"] = 0.5
    assert only_problem(g) == "graph 'g': Relu node 'r': attribute 'alpha' is float, not an Attribute"


def test_an_attribute_stored_under_another_name():
    g, _, r, _ = small_graph()
    r.attributes["alpha"] = Attribute("beta", AttrType.FLOAT, 0.5)
    assert only_problem(g) == "graph 'g': Relu node 'r': attribute stored as 'alpha' is named 'beta'"


def test_an_attribute_without_a_type():
    g, _, r, _ = small_graph()
    r.attributes["alpha"] = Attribute("alpha", AttrType.UNDEFINED, None)
    assert only_problem(g) == "graph 'g': Relu node 'r': attribute 'alpha' has no type"


@pytest.mark.parametrize("attr_type, value", [
    (AttrType.INT, True),
    (AttrType.INT, 1.5),
    (AttrType.FLOAT, "x"),
    (AttrType.INTS, (1, 2.0)),
    (AttrType.TENSOR, np.ones(2)),
    (AttrType.GRAPHS, (1,)),
])
def test_an_attribute_value_that_does_not_match_its_type(attr_type, value):
    g, _, r, _ = small_graph()
    r.attributes["a"] = Attribute("a", attr_type, value)
    assert only_problem(g).startswith(
        f"graph 'g': Relu node 'r': attribute 'a' is declared {attr_type.name} but holds")


def test_a_subgraph_that_does_not_point_back_to_its_node():
    g, x, r, _ = small_graph()
    body = Graph("body", outputs=[x])
    holder = g.append(Node("If", [r.output], {"then_branch": body, "else_branch": body}, name="if"))
    body.parent_node = None
    problems = irlib.check(g)
    assert "graph 'g': If node 'if': subgraph 'body' of attribute 'then_branch' does not point" \
           " back to its node" in problems
    assert holder.attr("then_branch") is body


def test_a_domain_the_model_does_not_import():
    g, _, r, _ = small_graph()
    r.domain = "com.example"
    model = Model(g, opset_imports={"": 17})
    assert only_problem(model) == (
        "graph 'g': com.example.Relu node 'r' uses domain 'com.example', which the model does not import")
    model.opset_imports["com.example"] = 1
    assert irlib.check(model) == []
    assert irlib.check(g) == []  # a bare graph has no imports to check against


def test_ai_onnx_and_the_empty_domain_are_the_same():
    g, _, r, _ = small_graph()
    r.domain = "ai.onnx"
    assert irlib.check(Model(g, opset_imports={"": 17})) == []


def test_a_tensor_attribute_is_checked():
    g, _, r, _ = small_graph()
    r.set_attr("value", Tensor(np.ones(2, np.float32)))
    assert irlib.check(g) == []
