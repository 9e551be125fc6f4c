"""Graph analyses built on networkx: the graph as a ``networkx.MultiDiGraph``, cycles, and the
usual algorithms (topological generations, dominators) without writing them again.

>>> nxg = to_networkx(model.graph)                      # doctest: +SKIP
>>> list(networkx.topological_generations(nxg))          # doctest: +SKIP
"""

from __future__ import annotations

import networkx as nx

from irlib.graph import Graph, Node

__all__ = ["to_networkx", "find_cycle", "topological_generations", "immediate_dominators"]


def to_networkx(graph: Graph) -> nx.MultiDiGraph:
    """Nodes of ``graph`` as networkx nodes (the ``Node`` objects themselves, in graph order); an
    edge ``producer -> user`` per use, with the ``Value`` under the edge key ``value``, the input
    position under ``index`` and the reading node under ``user``. A use inside a subgraph is an
    edge to the node of ``graph`` holding that subgraph (``user`` is then the inner node).

    >>> nxg = to_networkx(g)                                     # doctest: +SKIP
    >>> [(u.op_type, v.op_type, d["index"]) for u, v, d in nxg.edges(data=True)]  # doctest: +SKIP
    [('Relu', 'Add', 0), ('Relu', 'Add', 1)]
    """
    g = nx.MultiDiGraph()
    g.add_nodes_from(graph)
    for node in graph:
        for v in node.outputs:
            for user, i in v._uses:
                top = _top(user, graph)
                if top is not None:
                    g.add_edge(node, top, value=v, index=i, user=user)
    return g


def _top(node: Node, graph: Graph) -> Node | None:
    """The node of ``graph`` that is ``node`` or holds it in a (nested) subgraph; ``None`` when
    ``node`` is not under ``graph`` (removed, or in an unrelated graph)."""
    while node is not None and node.graph is not graph:
        node = node.graph.parent_node if node.graph is not None else None
    if node is not None and node._removed:
        return None
    return node


def _describe(node: Node) -> str:
    if node.name:
        return f"{node.qualified_op} {node.name!r}"
    outs = ", ".join(f"%{v.name}" for v in node.outputs)
    return f"{node.qualified_op}(-> {outs})"


def find_cycle(graph: Graph) -> str:
    """A readable description of one cycle in ``graph`` (``""`` when it is acyclic), e.g.
    ``"Add 'a' -> Relu 'b' -> Add 'a'"``; an unnamed node shows its outputs: ``Relu(-> %y)``."""
    try:
        edges = nx.find_cycle(to_networkx(graph))
    except nx.NetworkXNoCycle:
        return ""
    return " -> ".join(_describe(u) for u, *_ in edges) + f" -> {_describe(edges[0][0])}"


def topological_generations(graph: Graph) -> list[list[Node]]:
    """Nodes grouped in waves that could run in parallel (each depends only on earlier waves)."""
    return [list(gen) for gen in nx.topological_generations(to_networkx(graph))]


def immediate_dominators(graph: Graph, start: Node) -> dict[Node, Node]:
    """``networkx.immediate_dominators`` over the node graph, from ``start``."""
    return nx.immediate_dominators(to_networkx(graph), start)
