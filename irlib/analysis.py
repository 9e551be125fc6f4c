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
    """Nodes of ``graph`` as networkx nodes (the ``Node`` objects themselves); an edge
    ``producer -> user`` per use, with the ``Value`` under the edge key ``value`` and the input
    position under ``index``. Uses inside subgraphs count as uses by the node holding them."""
    g = nx.MultiDiGraph()
    g.add_nodes_from(graph)
    for node in graph:
        for v in node.outputs:
            for user, i in v._uses:
                top = _top(user, graph)
                if top is not None:
                    g.add_edge(node, top, value=v, index=i)
    return g


def _top(node: Node, graph: Graph) -> Node | None:
    while node is not None and node.graph is not graph:
        parent = node.graph.parent_node if node.graph is not None else None
        node = parent
    return node


def find_cycle(graph: Graph) -> str:
    """A readable description of one cycle in ``graph`` (``""`` when it is acyclic)."""
    try:
        edges = nx.find_cycle(to_networkx(graph))
    except nx.NetworkXNoCycle:
        return ""
    return " -> ".join(f"{u.op_type}({u.name!r})" for u, *_ in edges) + \
        f" -> {edges[0][0].op_type}({edges[0][0].name!r})"


def topological_generations(graph: Graph) -> list[list[Node]]:
    """Nodes grouped in waves that could run in parallel (each depends only on earlier waves)."""
    return [list(gen) for gen in nx.topological_generations(to_networkx(graph))]


def immediate_dominators(graph: Graph, start: Node) -> dict[Node, Node]:
    """``networkx.immediate_dominators`` over the node graph, from ``start``."""
    return nx.immediate_dominators(to_networkx(graph), start)
