"""``irlib.analysis``: the graph as networkx, topological generations, cycles."""

from __future__ import annotations

import networkx as nx

import irlib
from irlib import DType, Graph, Node, TensorType, Value
from helpers import parse_ir

F2 = TensorType(DType.FLOAT, (2,))


def diamond() -> tuple[Graph, dict[str, Node]]:
    """``x -> a -> (b, c) -> d``."""
    model = parse_ir("""
        main (float[2] x) => (float[2] d) {
            a = Relu(x)
            b = Neg(a)
            c = Abs(a)
            d = Add(b, c)
        }
    """)
    g = model.graph
    return g, {n.output.name: n for n in g}


def edges(nxg) -> list[tuple[str, str, str, int]]:
    return sorted((u.output.name, v.output.name, d["value"].name, d["index"])
                  for u, v, d in nxg.edges(data=True))


def test_to_networkx_has_one_edge_per_use():
    g, n = diamond()
    nxg = irlib.to_networkx(g)
    assert list(nxg.nodes) == list(g)
    assert edges(nxg) == [("a", "b", "a", 0), ("a", "c", "a", 0),
                          ("b", "d", "b", 0), ("c", "d", "c", 1)]
    assert nxg is not g.to_networkx() and edges(g.to_networkx()) == edges(nxg)


def test_a_node_reading_a_value_twice_gives_two_edges():
    model = parse_ir("""
        main (float[2] x) => (float[2] y) {
            a = Relu(x)
            y = Mul(a, a)
        }
    """)
    assert edges(irlib.to_networkx(model.graph)) == [("a", "y", "a", 0), ("a", "y", "a", 1)]


def test_uses_inside_subgraphs_are_edges_to_the_node_holding_them():
    model = parse_ir("""
        main (bool c, float[2] x) => (float[2] y) {
            t = Relu(x)
            y = If(c) <then_branch = then_g () => (float[2] a) { a = Neg(t) },
                       else_branch = else_g () => (float[2] b) { b = Identity(x) }>
        }
    """)
    g = model.graph
    relu, if_node = g.nodes
    inner_neg = if_node.attributes["then_branch"].value.nodes[0]
    nxg = irlib.to_networkx(g)
    (u, v, data), = nxg.edges(data=True)
    assert (u, v) == (relu, if_node)
    assert data["user"] is inner_neg and data["value"] is relu.output and data["index"] == 0


def test_topological_generations_group_independent_nodes():
    g, n = diamond()
    assert irlib.topological_generations(g) == [[n["a"]], [n["b"], n["c"]], [n["d"]]]


def test_find_cycle_is_empty_on_a_dag():
    g, _ = diamond()
    assert irlib.find_cycle(g) == ""


def test_find_cycle_names_the_nodes_on_the_cycle():
    g, n = diamond()
    n["a"].replace_input_with(0, n["d"].output)  # a reads d, which depends on a
    text = irlib.find_cycle(g)
    assert text.startswith("Relu(-> %a) -> ") and text.endswith(" -> Relu(-> %a)")
    assert "Add(-> %d)" in text and len(text.split(" -> ")) == 4
    assert any("(cycle or wrong order)" in p for p in irlib.check(g))


def test_find_cycle_uses_node_names_when_there_are_some():
    x = Value("x", F2)
    g = Graph("g", inputs=[x])
    a = g.append(Node("Add", [x, x], name="first"))
    b = g.append(Node("Relu", [a.output], name="second"))
    a.replace_input_with(1, b.output)
    assert irlib.find_cycle(g) == "Add 'first' -> Relu 'second' -> Add 'first'"


def test_networkx_algorithms_work_on_the_graph():
    g, n = diamond()
    nxg = irlib.to_networkx(g)
    assert nx.is_directed_acyclic_graph(nxg)
    assert nx.immediate_dominators(nxg, n["a"])[n["d"]] is n["a"]
    assert nx.shortest_path_length(nxg, n["a"], n["d"]) == 2
