"""Property tests: random graphs built and edited through the IR API stay well formed.

A random DAG (single- and multi-output ops, constants, If nodes whose branches read outer values)
goes through a random sequence of edits: inserting nodes, rewiring inputs to earlier values,
``replace_all_uses_with``, removing dead nodes, shuffling with ``move_*`` then ``sort()``. After
each edit the use lists must match the inputs recomputed from scratch and ``irlib.check`` must
find nothing; at the end, export to ONNX and import again must give the same graph.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import irlib
from irlib import DType, Graph, Model, Node, TensorType, Value
from helpers import OPSET, assert_same_structure

F2 = TensorType(DType.FLOAT, (2,))
F = TensorType(DType.FLOAT, ("N",))  # node outputs (ONNX wants graph outputs to have a shape)
#: (op, number of inputs, number of outputs, attributes)
OPS = [
    ("Relu", 1, 1, {}),
    ("Neg", 1, 1, {}),
    ("Add", 2, 1, {}),
    ("Mul", 2, 1, {}),
    ("Sum", 3, 1, {}),
    ("Split", 1, 2, {"axis": 0}),
    ("If", 1, 1, {}),  # branches built by new_node
]
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def available(g: Graph, before: Node | None = None) -> list[Value]:
    """The values a node placed right before ``before`` (or at the end) may read."""
    values = list(g.inputs) + g.initializers
    for n in g:
        if n is before:
            break
        values.extend(n.outputs)
    return values


def new_node(data, g: Graph, pool: list[Value]) -> Node:
    op, arity, n_out, attrs = data.draw(st.sampled_from(OPS))
    inputs = [data.draw(st.sampled_from(pool)) for _ in range(arity)]
    if op != "If":
        return Node(op, inputs, attrs, outputs=[Value(type=F) for _ in range(n_out)])
    branches = {}
    for name, inner_op in (("then_branch", "Neg"), ("else_branch", "Identity")):
        # reads an outer value
        inner = Node(inner_op, [data.draw(st.sampled_from(pool))], outputs=[Value(type=F)])
        branches[name] = Graph(name, nodes=[inner], outputs=[inner.output])
    return Node("If", inputs, branches, outputs=[Value(type=F)])


def build(data) -> Graph:
    g = Graph("main")
    for i in range(data.draw(st.integers(1, 3))):
        g.add_input(Value(f"in{i}", F2))
    if data.draw(st.booleans()):
        g.constant(np.array([1.0, 2.0], np.float32), name="c")
    for _ in range(data.draw(st.integers(1, 10))):
        g.append(new_node(data, g, available(g)))
    outs = [v for n in g for v in n.outputs]
    g.outputs.extend(data.draw(st.lists(st.sampled_from(outs), min_size=1, max_size=3,
                                        unique_by=id)))
    return g


def check_use_lists(g: Graph) -> None:
    """Every value's uses are exactly the input slots that read it (recomputed from scratch)."""
    expected = defaultdict(set)
    for n in g.all_nodes():
        for i, v in enumerate(n.inputs):
            if v is not None:
                expected[id(v)].add((n, i))
    for sub in g.all_graphs():
        for v in sub.values():
            assert set(v.uses()) == expected[id(v)], v


def check(g: Graph) -> None:
    check_use_lists(g)
    assert irlib.check(Model(g, opset_imports={"": OPSET})) == []


# -- the edits --------------------------------------------------------------------------------

def insert(data, g: Graph) -> None:
    anchor = data.draw(st.sampled_from(g.nodes))
    node = new_node(data, g, available(g, anchor))
    g.insert_before(anchor, node)


def rewire(data, g: Graph) -> None:
    node = data.draw(st.sampled_from(g.nodes))
    if not node.inputs:
        return
    i = data.draw(st.integers(0, len(node.inputs) - 1))
    node.replace_input_with(i, data.draw(st.sampled_from(available(g, node))))


def replace_all_uses(data, g: Graph) -> None:
    node = data.draw(st.sampled_from(g.nodes))
    old = data.draw(st.sampled_from(node.outputs))
    new = data.draw(st.sampled_from(available(g, node)))  # defined before all of old's users
    taken = new.is_graph_input() or new.is_initializer() or new.is_graph_output()
    if old.is_graph_output() and taken:
        event("replace_all_uses refused")
        before = (list(g.outputs), old.uses())
        with pytest.raises(ValueError):
            old.replace_all_uses_with(new, replace_graph_outputs=True)
        assert (list(g.outputs), old.uses()) == before  # refused before changing anything
        return
    name, was_output = old.name, old.is_graph_output()
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    assert not old.has_uses()
    if was_output:
        assert new in g.outputs and old not in g.outputs and new.name == name


def holder(node: Node, g: Graph) -> Node:
    """The node of ``g`` that is ``node`` or holds it in a subgraph."""
    while node.graph is not g:
        node = node.graph.parent_node
    return node


def remove_dead(data, g: Graph) -> None:
    dead = [n for n in g if not any(v.has_uses() or v.is_graph_output() for v in n.outputs)]
    needed = [n for n in g if any(
        v.is_graph_output() or any(holder(u, g) not in dead and holder(u, g) is not n
                                   for u in v.users())
        for v in n.outputs)]
    if needed and data.draw(st.booleans()):
        event("remove refused")
        before = g.nodes
        with pytest.raises(ValueError):
            g.remove([*dead, data.draw(st.sampled_from(needed))])
        assert g.nodes == before  # all or nothing
    if dead:
        g.remove(data.draw(st.lists(st.sampled_from(dead), min_size=1, unique=True)))


def shuffle_and_sort(data, g: Graph) -> None:
    for _ in range(data.draw(st.integers(1, 4))):
        node, anchor = data.draw(st.sampled_from(g.nodes)), data.draw(st.sampled_from(g.nodes))
        if data.draw(st.booleans()):
            g.move_before(anchor, node)
        else:
            g.move_after(anchor, node)
    before = g.nodes
    g.sort()
    assert g.is_sorted() and set(g.nodes) == set(before) and len(g) == len(before)


EDITS = [insert, rewire, replace_all_uses, remove_dead, shuffle_and_sort]


# -- the properties ---------------------------------------------------------------------------

@SETTINGS
@given(st.data())
def test_random_graphs_stay_well_formed_under_random_edits(data):
    g = build(data)
    check(g)
    for _ in range(data.draw(st.integers(0, 12))):
        if len(g) == 0:
            break
        edit = data.draw(st.sampled_from(EDITS))
        event(edit.__name__)
        edit(data, g)
        check(g)


@SETTINGS
@given(st.data())
def test_export_and_import_give_the_same_graph(data):
    g = build(data)
    for _ in range(data.draw(st.integers(0, 6))):
        if len(g) == 0:
            break
        data.draw(st.sampled_from(EDITS))(data, g)
    model = Model(g, opset_imports={"": OPSET})
    proto = irlib.to_onnx(model)
    onnx.checker.check_model(proto)  # an independent judge of SSA form, order and op arity
    again = irlib.from_onnx(proto)
    assert irlib.check(again) == []
    assert_same_structure(g, again.graph)
    assert [v.name for v in again.graph.values()] == [v.name for v in g.values()]


@SETTINGS
@given(st.data())
def test_sort_keeps_a_valid_order_unchanged(data):
    g = build(data)
    before = g.nodes
    g.sort()
    assert g.nodes == before
