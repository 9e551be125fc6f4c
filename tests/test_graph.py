"""The mutation API of ``Value``, ``Node`` and ``Graph``, one behaviour per test.

Every mutation keeps the use-def chains right, so each test ends by verifying the graph.
"""

from __future__ import annotations

import numpy as np
import pytest

import irlib
from irlib import DType, Graph, Node, TensorType, Use, Value
from helpers import assert_valid

F2 = TensorType(DType.FLOAT, (2,))


def graph_with_input() -> tuple[Graph, Value]:
    x = Value("x", F2)
    return Graph("g", inputs=[x]), x


def op_types(graph: Graph) -> list[str]:
    return [n.op_type for n in graph]


def branch(name: str, op: str, outer: Value) -> Graph:
    """A one-node If branch that reads ``outer``, a value of the enclosing graph."""
    n = Node(op, [outer])
    return Graph(name, nodes=[n], outputs=[n.output])


# -- building ---------------------------------------------------------------------------------

def test_build_a_graph_from_values_and_nodes():
    x = Value("x", F2)
    g = Graph("g", inputs=[x])
    relu = g.append(Node("Relu", [x]))
    neg = g.append(Node("Neg", [relu.output], name="negate"))
    g.outputs.append(neg.output)

    assert op_types(g) == ["Relu", "Neg"] and len(g) == 2
    assert relu.output.producer() is relu and relu.output.index == 0
    assert relu.output.graph is g and x.graph is g
    assert x.producer() is None and x.is_graph_input()
    assert neg.output.is_graph_output() and not relu.output.is_graph_output()
    assert neg.predecessors() == [relu] and relu.successors() == [neg]
    assert_valid(g)


def test_value_names_are_assigned_on_insertion():
    g, x = graph_with_input()
    node = Node("Relu", [x])
    assert node.output.name is None  # not in a graph yet
    g.append(node)
    assert node.output.name == "relu_0"
    named = g.append(Node("Neg", [node.output], name="Model/neg"))
    assert named.output.name == "model_neg_1"  # the node's name is the prefix
    kept = g.append(Node("Abs", [x], outputs=[Value("mine")]))
    assert kept.output.name == "mine"
    assert_valid(g)


def test_multiple_outputs_and_an_optional_output_not_produced():
    g, x = graph_with_input()
    split = g.append(Node("Split", [x], {"axis": 0}, num_outputs=2))
    a, b = split.outputs
    assert (a.index, b.index) == (0, 1) and a.name != b.name
    with pytest.raises(ValueError, match="has 2 outputs"):
        split.output
    drop = g.append(Node("Dropout", [x], outputs=[None, ""]))  # mask not produced
    assert drop.outputs[1].name == ""
    g.outputs.extend([a, drop.outputs[0]])
    assert_valid(g)


def test_a_refused_node_leaves_no_trace():
    g, x = graph_with_input()
    relu = g.append(Node("Relu", [x]))
    with pytest.raises(ValueError, match="already has a producer"):
        Node("Neg", [x], outputs=[relu.output])
    with pytest.raises(TypeError, match="not a Value"):
        Node("Add", [x, "y"])
    assert x.users() == [relu]
    assert relu.output.producer() is relu
    assert_valid(g)


def test_graph_constant_adds_an_initializer():
    g, x = graph_with_input()
    two = g.constant(np.array([2.0, 2.0], np.float32), name="two")
    mul = g.append(Node("Mul", [x, two]))
    g.outputs.append(mul.output)

    assert two in g.initializers and two.is_initializer() and two.is_constant()
    assert two.type == F2 and two.const_value.name == "two"
    assert g.constant(np.int64(3)).name == "v_1"  # unnamed constants get a fresh name
    assert_valid(g)


def test_remove_initializer():
    g, x = graph_with_input()
    unused = g.constant(np.zeros(2, np.float32))
    used = g.constant(np.ones(2, np.float32))
    g.append(Node("Add", [x, used]))
    g.remove_initializer(unused)
    assert g.initializers == [used]
    with pytest.raises(ValueError, match="still used"):
        g.remove_initializer(used)
    assert_valid(g)


def test_removing_the_initializer_of_an_input_removes_only_its_default():
    g, x = graph_with_input()
    x.const_value = irlib.Tensor(np.zeros(2, np.float32))
    g.add_initializer(x)  # an input with a default value
    g.append(Node("Relu", [x]))
    g.remove_initializer(x)  # allowed although x is read: x stays an input
    assert x.is_graph_input() and not x.is_initializer() and x.const_value is None
    assert_valid(g)


def test_a_node_output_cannot_become_a_graph_input():
    g, x = graph_with_input()
    y = g.append(Node("Relu", [x])).output
    with pytest.raises(ValueError, match="produced by a node"):
        g.add_input(y)
    assert g.inputs == [x]


# -- uses -------------------------------------------------------------------------------------

def test_uses_record_every_input_slot_and_users_the_distinct_nodes():
    g, x = graph_with_input()
    add = g.append(Node("Add", [x, x]))
    relu = g.append(Node("Relu", [x]))
    assert x.uses() == [Use(add, 0), Use(add, 1), Use(relu, 0)]
    assert x.users() == [add, relu]
    assert x.num_uses() == 3 and x.has_uses()
    assert not relu.output.has_uses()


def test_uses_is_a_snapshot_that_can_be_iterated_while_rewiring():
    g, x = graph_with_input()
    y = g.append(Node("Relu", [x])).output
    readers = [g.append(Node("Neg", [x])) for _ in range(3)]
    for use in x.uses():
        if use.node is not y.producer():
            use.node.replace_input_with(use.index, y)
    assert x.users() == [y.producer()]
    assert y.users() == readers
    assert_valid(g)


def test_replace_input_with_moves_the_use():
    g, x = graph_with_input()
    y = g.append(Node("Relu", [x])).output
    add = g.append(Node("Add", [x, x]))

    add.replace_input_with(1, y)
    assert add.inputs == (x, y)
    assert Use(add, 1) in y.uses() and Use(add, 1) not in x.uses()

    add.replace_input_with(-1, None)  # negative indices count from the end; None omits it
    assert add.inputs == (x, None) and not y.has_uses()
    with pytest.raises(IndexError):
        add.replace_input_with(2, x)
    with pytest.raises(TypeError, match="not a Value"):
        add.replace_input_with(0, "x")
    assert_valid(g)


def test_set_inputs_replaces_the_whole_list():
    g, x = graph_with_input()
    y = g.append(Node("Relu", [x])).output
    node = g.append(Node("Concat", [x, x], {"axis": 0}))

    node.set_inputs([y, x, y])
    assert node.inputs == (y, x, y)
    assert x.uses() == [Use(y.producer(), 0), Use(node, 1)]
    assert y.uses() == [Use(node, 0), Use(node, 2)]

    with pytest.raises(TypeError):
        node.set_inputs([x, 3])
    assert node.inputs == (y, x, y) and x.num_uses() == 2  # unchanged
    assert_valid(g)


def test_node_inputs_cannot_be_assigned_directly():
    g, x = graph_with_input()
    node = g.append(Node("Relu", [x]))
    with pytest.raises(AttributeError):
        node.inputs = (None,)


def test_replace_all_uses_with_rewires_every_reader():
    g, x = graph_with_input()
    old = g.append(Node("Relu", [x])).output
    new = g.append(Node("Abs", [x])).output
    a = g.append(Node("Neg", [old]))
    b = g.append(Node("Add", [old, old]))

    old.replace_all_uses_with(new)
    assert not old.has_uses()
    assert new.uses() == [Use(a, 0), Use(b, 0), Use(b, 1)]
    assert_valid(g)


def test_replace_all_uses_with_refuses_a_graph_output_unless_asked():
    g, x = graph_with_input()
    old = g.append(Node("Relu", [x])).output
    new = g.append(Node("Abs", [x])).output
    reader = g.append(Node("Neg", [old]))
    g.outputs.append(old)

    with pytest.raises(ValueError, match="replace_graph_outputs=True"):
        old.replace_all_uses_with(new)
    assert reader.inputs == (old,) and g.outputs == [old]  # nothing changed
    assert_valid(g)


def test_replace_all_uses_with_a_graph_output_moves_the_name():
    g, x = graph_with_input()
    old = g.append(Node("Relu", [x], outputs=[Value("y")])).output
    new = g.append(Node("Abs", [x])).output
    g.outputs.append(old)

    old.replace_all_uses_with(new, replace_graph_outputs=True)
    assert g.outputs == [new]
    assert new.name == "y"  # the model's interface keeps its names
    assert old.name != "y" and old.name.startswith("y_replaced")
    assert new.type == F2 or new.type is None
    g.remove(old.producer())
    assert_valid(g)


@pytest.mark.parametrize("kind", ["graph input", "initializer", "graph output"])
def test_replace_all_uses_with_refuses_a_replacement_that_is_part_of_the_interface(kind):
    g, x = graph_with_input()
    old = g.append(Node("Relu", [x])).output
    other = g.append(Node("Abs", [x])).output
    g.outputs.append(old)
    replacement = {
        "graph input": x,
        "initializer": g.constant(np.zeros(2, np.float32)),
        "graph output": other,
    }[kind]
    if kind == "graph output":
        g.outputs.append(other)
    with pytest.raises(ValueError, match="already an input, initializer or output"):
        old.replace_all_uses_with(replacement, replace_graph_outputs=True)
    assert old in g.outputs and old.name == "relu_0"
    assert_valid(g)


def test_replace_all_uses_with_refuses_an_output_that_is_also_an_input():
    g, x = graph_with_input()
    g.outputs.append(x)  # a pass-through
    y = g.append(Node("Relu", [x])).output
    with pytest.raises(ValueError, match="also a graph input"):
        x.replace_all_uses_with(y, replace_graph_outputs=True)
    assert g.outputs == [x] and y.producer().inputs == (x,)


# -- inserting, removing, moving ----------------------------------------------------------------

def test_insert_before_and_after_an_anchor():
    g, x = graph_with_input()
    mid = g.append(Node("Relu", [x]))
    g.insert_before(mid, [Node("A", [x]), Node("B", [x])])
    g.insert_after(mid, Node("C", [x]))
    g.insert_after(mid, [Node("D", [x]), Node("E", [x])])
    assert op_types(g) == ["A", "B", "Relu", "D", "E", "C"]
    assert op_types(reversed(g)) == ["C", "E", "D", "Relu", "B", "A"]
    g.extend([Node("F", [x])])
    assert op_types(g)[-1] == "F" and len(g) == 7
    assert_valid(g)


def test_inserting_is_all_or_nothing():
    g, x = graph_with_input()
    anchor = g.append(Node("Relu", [x]))
    fresh = Node("Neg", [x])
    with pytest.raises(ValueError, match="already belongs to a graph"):
        g.insert_after(anchor, [fresh, anchor])
    with pytest.raises(ValueError, match="listed twice"):
        g.insert_before(anchor, [fresh, fresh])
    other, y = graph_with_input()
    stranger = other.append(Node("Abs", [y]))
    with pytest.raises(ValueError, match="not in this graph"):
        g.insert_before(stranger, fresh)
    assert op_types(g) == ["Relu"] and fresh.graph is None
    g.append(fresh)
    assert_valid(g)


def test_remove_disconnects_the_inputs():
    g, x = graph_with_input()
    relu = g.append(Node("Relu", [x]))
    g.remove(relu)
    assert len(g) == 0 and relu.graph is None
    assert not x.has_uses()
    assert relu.inputs == (x,)  # kept, so the node can be inserted again
    assert_valid(g)


def test_safe_remove_refuses_outputs_still_used_or_graph_outputs():
    g, x = graph_with_input()
    relu = g.append(Node("Relu", [x]))
    neg = g.append(Node("Neg", [relu.output]))
    g.outputs.append(neg.output)

    with pytest.raises(ValueError, match="still used by Neg"):
        g.remove(relu)
    with pytest.raises(ValueError, match="is a graph output"):
        g.remove(neg)
    assert op_types(g) == ["Relu", "Neg"]
    g.remove(relu, safe=False)  # the caller takes responsibility: Neg now reads a dangling value
    assert len(irlib.check(g)) == 1


def test_remove_is_all_or_nothing():
    g, x = graph_with_input()
    dead = g.append(Node("Abs", [x]))
    relu = g.append(Node("Relu", [x]))
    g.append(Node("Neg", [relu.output]))
    with pytest.raises(ValueError, match="still used"):
        g.remove([dead, relu])
    assert op_types(g) == ["Abs", "Relu", "Neg"] and x.users() == [dead, relu]
    assert_valid(g)


def test_remove_a_chain_at_once_even_listed_twice():
    g, x = graph_with_input()
    a = g.append(Node("Relu", [x]))
    b = g.append(Node("Neg", [a.output]))
    g.remove([b, a, b])  # users and producers together: nothing outside reads them
    assert len(g) == 0 and list(g) == [] and not x.has_uses()
    assert_valid(g)


def test_nodes_can_be_removed_while_iterating():
    g, x = graph_with_input()
    y = x
    for _ in range(3):
        y = g.append(Node("Identity", [y])).output
        y = g.append(Node("Relu", [y])).output
    g.outputs.append(y)

    for node in g:
        if node.op_type == "Identity":
            node.output.replace_all_uses_with(node.inputs[0])
            g.remove(node)
    assert op_types(g) == ["Relu"] * 3
    assert_valid(g)


def test_removing_the_next_node_while_iterating_skips_it():
    g, x = graph_with_input()
    nodes = [g.append(Node(op, [x])) for op in ("A", "B", "C", "D")]
    seen = []
    for node in g:
        seen.append(node.op_type)
        if node.op_type == "A":
            g.remove([nodes[1], nodes[2]])
    assert seen == ["A", "D"]


def test_a_removed_node_can_be_inserted_again():
    g, x = graph_with_input()
    relu = g.append(Node("Relu", [x]))
    g.remove(relu)
    g.append(relu)
    assert x.uses() == [Use(relu, 0)] and relu.graph is g
    assert relu.output.name == "relu_0"  # keeps its name
    assert_valid(g)


def test_move_before_and_after_keep_the_edges():
    g, x = graph_with_input()
    a, b, c = (g.append(Node(op, [x])) for op in "ABC")
    g.move_before(a, c)
    assert op_types(g) == ["C", "A", "B"]
    g.move_after(b, c)
    assert op_types(g) == ["A", "B", "C"]
    g.move_after(b, b)  # moving a node next to itself changes nothing
    assert op_types(g) == ["A", "B", "C"]
    assert x.users() == [a, b, c]
    other, y = graph_with_input()
    stranger = other.append(Node("Z", [y]))
    with pytest.raises(ValueError, match="not in this graph"):
        g.move_before(stranger, a)
    assert op_types(g) == ["A", "B", "C"] and op_types(other) == ["Z"]
    assert_valid(g)


# -- order ------------------------------------------------------------------------------------

def test_sort_is_stable():
    g, x = graph_with_input()
    a = g.append(Node("A", [x]))
    b = g.append(Node("B", [a.output]))
    c = g.append(Node("C", [x]))
    d = g.append(Node("D", [x]))
    g.move_before(a, b)  # B now comes before its producer
    assert op_types(g) == ["B", "A", "C", "D"] and not g.is_sorted()
    assert irlib.check(g)  # the verifier sees the wrong order

    g.sort()
    # B waits for A; the independent C and D keep their places after them.
    assert op_types(g) == ["A", "B", "C", "D"] and g.is_sorted()
    g.move_before(a, d)
    g.sort()
    assert op_types(g) == ["D", "A", "B", "C"]  # already a valid order: unchanged
    assert_valid(g)


def test_sort_sees_the_values_a_subgraph_captures():
    g, x = graph_with_input()
    cond = g.append(Node("Less", [x, x])).output
    late = Node("Relu", [x])
    if_node = g.append(Node("If", [cond], {
        "then_branch": branch("then", "Neg", late.output),
        "else_branch": branch("else", "Abs", x),
    }))
    g.append(late)  # produced after the If whose branch reads it
    g.outputs.append(if_node.output)
    assert not g.is_sorted()
    g.sort()
    assert op_types(g) == ["Less", "Relu", "If"]
    assert_valid(g)


def test_sort_names_a_cycle():
    g, x = graph_with_input()
    a = g.append(Node("Add", [x, x], name="a"))
    b = g.append(Node("Relu", [a.output], name="b"))
    a.replace_input_with(1, b.output)
    with pytest.raises(ValueError, match=r"cycle: .*Add 'a' -> Relu 'b' -> Add 'a'"):
        g.sort()
    assert op_types(g) == ["Add", "Relu"]  # left as it was


def test_sort_refuses_a_node_reading_its_own_output():
    g, x = graph_with_input()
    n = g.append(Node("Add", [x, x], name="self_loop"))
    n.replace_input_with(1, n.output)
    with pytest.raises(ValueError, match="cycle: Add 'self_loop' -> Add 'self_loop'"):
        g.sort()


# -- names ------------------------------------------------------------------------------------

def test_fresh_name_is_unique_in_the_whole_model():
    g, x = graph_with_input()
    cond = g.append(Node("Less", [x, x])).output
    then = branch("then", "Neg", x)
    g.append(Node("If", [cond], {"then_branch": then, "else_branch": branch("else", "Abs", x)}))
    taken = {v.name for sub in g.all_graphs() for v in sub.values()}

    names = [g.fresh_name("neg") for _ in range(5)] + [then.fresh_name("neg") for _ in range(5)]
    assert len(set(names)) == 10 and not taken & set(names)

    renamed = g.append(Node("Relu", [x])).output
    renamed.name = "relu_20"  # a rename is recorded: it is never handed out again
    assert "relu_20" not in {g.fresh_name("relu") for _ in range(30)}


def test_an_attached_subgraph_gets_names_unique_in_the_model():
    g, x = graph_with_input()
    outer = g.append(Node("Neg", [x])).output
    assert outer.name == "neg_0"
    body = branch("then", "Neg", x)  # built alone: its value is also named "neg_0"
    assert body.nodes[0].output.name == "neg_0"

    g.append(Node("If", [outer], {"then_branch": body, "else_branch": branch("else", "Abs", x)}))
    inner = body.nodes[0].output
    assert inner.name != "neg_0"
    names = [v.name for sub in g.all_graphs() for v in sub.values()]
    assert len(names) == len(set(names))
    assert_valid(g)


# -- subgraphs --------------------------------------------------------------------------------

def if_graph() -> tuple[Graph, Value, Node, Node]:
    """``y = If(cond) {then: Neg(x), else: Abs(x)}``, the branches reading the outer ``x``."""
    g, x = graph_with_input()
    cond = g.append(Node("Less", [x, x])).output
    then, els = branch("then", "Neg", x), branch("else", "Abs", x)
    if_node = g.append(Node("If", [cond], {"then_branch": then, "else_branch": els}))
    g.outputs.append(if_node.output)
    return g, x, if_node, then.nodes[0]


def test_uses_from_a_subgraph_are_visible_on_the_outer_value():
    g, x, if_node, inner_neg = if_graph()
    assert inner_neg in x.users()
    assert inner_neg.graph.parent_node is if_node
    assert list(g.all_graphs())[1:] == list(if_node.subgraphs())
    assert [n.op_type for n in g.all_nodes()] == ["Less", "If", "Neg", "Abs"]
    assert_valid(g)


def test_replace_all_uses_with_reaches_into_subgraphs():
    g, x, if_node, inner_neg = if_graph()
    z = g.add_input(Value("z", F2))
    x.replace_all_uses_with(z)
    assert not x.has_uses() and inner_neg.inputs == (z,)
    assert inner_neg in z.users()
    assert_valid(g)


def test_removing_the_node_holding_a_subgraph_drops_the_subgraph_uses():
    g, x, if_node, inner_neg = if_graph()
    g.outputs.clear()
    g.remove(if_node)
    assert x.users() == [g.nodes[0]]  # only Less reads x now
    g.append(if_node)  # and inserting it again brings them back
    assert inner_neg in x.users()
    assert_valid(g)


def test_safe_remove_sees_uses_from_subgraphs():
    g, x, if_node, _ = if_graph()
    producer = Node("Relu", [x])
    g.insert_before(if_node, producer)
    if_node.attributes["then_branch"].value.nodes[0].replace_input_with(0, producer.output)
    with pytest.raises(ValueError, match="still used by Neg"):
        g.remove(producer)
    assert_valid(g)


def test_replacing_a_subgraph_attribute_detaches_the_old_subgraph():
    g, x, if_node, inner_neg = if_graph()
    if_node.set_attr("then_branch", branch("then2", "Sqrt", x))
    assert inner_neg not in x.users()
    assert "Sqrt" in [n.op_type for n in x.users()]
    removed = if_node.remove_attr("else_branch")
    assert removed.value.parent_node is None
    assert [n.op_type for n in x.users()] == ["Less", "Sqrt"]
