"""Execution orders that keep less memory live at once.

A graph's node list is one topological order among many; in branchy models (Inception, DenseNet,
U-Net) the order decides how many tensors are live together. :func:`memory_order` builds a few
candidate orders and keeps the one with the smallest lower bound (the most bytes live at one
step, see :func:`passes.memory.liveness.lower_bound`); the current order is a candidate, so the
result is never worse than the input.

Candidates:

- ``current``: the order as given;
- ``just-in-time``: a depth-first walk from the graph's sinks that emits each node right after
  what it needs, so a weight computed at run time (``ConstantOfShape``) is made just before its
  reader and a branch is finished before the next one starts;
- ``greedy``: list scheduling that runs, among the ready nodes, the one that grows the live
  bytes the least (outputs it allocates minus inputs it is the last reader of).
"""

from __future__ import annotations

import heapq
import logging
from typing import Mapping

from irlib import Graph, Model, Node, Value
from passes.memory.liveness import MemoryPlanError, compute_liveness, tensor_nbytes

__all__ = ["MemoryOrder", "memory_order", "apply_order"]

log = logging.getLogger(__name__)


class MemoryOrder:
    """The chosen order with the lower bounds before and after, per candidate."""

    def __init__(self, order: list[Node], chosen: str, before: int, after: int,
                 candidates: dict[str, int]):
        self.order = order
        self.chosen = chosen
        self.lower_bound_before = before
        self.lower_bound_after = after
        self.candidates = candidates


def _deps_and_users(graph: Graph, nodes: list[Node]):
    """For each node of ``graph``: the nodes it depends on and the nodes depending on it
    (through its inputs or values its subgraphs read)."""
    index = {n: i for i, n in enumerate(nodes)}
    deps: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        seen = set()
        vals = [v for v in n.inputs if v is not None]
        for g in n.subgraphs():
            for inner in g.all_nodes():
                vals.extend(v for v in inner.inputs if v is not None)
        for v in vals:
            p = v.producer()
            j = index.get(p) if p is not None else None
            if j is not None and j != i and j not in seen:
                seen.add(j)
                deps[i].append(j)
    users: list[list[int]] = [[] for _ in nodes]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    return deps, users


def _just_in_time(nodes: list[Node], deps: list[list[int]], users: list[list[int]]) -> list[int]:
    done = [False] * len(nodes)
    out: list[int] = []
    roots = [i for i in range(len(nodes)) if not users[i]]
    for r in roots:
        if done[r]:
            continue
        stack = [(r, 0)]
        while stack:
            i, k = stack.pop()
            if done[i]:
                continue
            if k < len(deps[i]):
                stack.append((i, k + 1))
                j = deps[i][k]
                if not done[j]:
                    stack.append((j, 0))
                continue
            done[i] = True
            out.append(i)
    return out


def _greedy(nodes: list[Node], deps, users, sizes: dict[Value, int],
            outputs: set[int]) -> list[int]:
    n = len(nodes)
    # Each input value: how many distinct reader nodes have not run yet.
    readers: dict[Value, list[int]] = {}
    for i, node in enumerate(nodes):
        for v in dict.fromkeys(x for x in node.inputs if x is not None):
            if v in sizes:
                readers.setdefault(v, []).append(i)
    remaining = {v: len(r) for v, r in readers.items()}
    out_bytes = [sum(sizes.get(v, 0) for v in node.outputs) for node in nodes]
    ins = [[v for v in dict.fromkeys(x for x in node.inputs if x is not None) if v in sizes
            and id(v) not in outputs] for node in nodes]

    def delta(i: int) -> int:
        return out_bytes[i] - sum(sizes[v] for v in ins[i] if remaining[v] == 1)

    pending = [len(d) for d in deps]
    scheduled = [False] * n
    heap = [(delta(i), i) for i in range(n) if pending[i] == 0]
    heapq.heapify(heap)
    out: list[int] = []
    while heap:
        key, i = heapq.heappop(heap)
        if scheduled[i] or key != delta(i):
            continue
        scheduled[i] = True
        out.append(i)
        for v in ins[i]:
            remaining[v] -= 1
            if remaining[v] == 1:  # its last reader now frees it: a better key
                for j in readers[v]:
                    if not scheduled[j] and pending[j] == 0:
                        heapq.heappush(heap, (delta(j), j))
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(heap, (delta(j), j))
    return out


def memory_order(model: Model | Graph, *, shapes: Mapping[str, int] | None = None,
                 alignment: int = 64) -> MemoryOrder:
    """The candidate order of ``model``'s main graph with the smallest lower bound."""
    graph = model.graph if isinstance(model, Model) else model
    nodes = list(graph)
    deps, users = _deps_and_users(graph, nodes)
    sizes: dict[Value, int] = {}
    for node in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        for v in node.outputs:
            if v.name:
                try:
                    sizes[v] = tensor_nbytes(v, shapes)
                except MemoryPlanError:
                    if v.has_uses() or v.is_graph_output():
                        raise
    outputs = {id(v) for v in graph.outputs}
    candidates = {
        "just-in-time": _just_in_time(nodes, deps, users),
        "greedy": _greedy(nodes, deps, users, sizes, outputs),
    }
    before = compute_liveness(graph, shapes=shapes, alignment=alignment).lower_bound_bytes
    bounds = {"current": before}
    best_name, best = "current", nodes
    for name, idx in candidates.items():
        if len(idx) != len(nodes):  # a cycle: not a valid order (the verifier reports it)
            log.warning("reorder candidate %s skipped: the graph is not acyclic", name)
            continue
        order = [nodes[i] for i in idx]
        bounds[name] = lb = compute_liveness(
            graph, shapes=shapes, alignment=alignment, order=order).lower_bound_bytes
        if lb < bounds[best_name]:
            best_name, best = name, order
    return MemoryOrder(best, best_name, before, bounds[best_name], bounds)


def apply_order(graph: Graph, order: list[Node]) -> int:
    """Relink ``graph``'s nodes in ``order`` (a permutation of them); returns how many nodes
    changed position."""
    current = list(graph)
    moved = sum(a is not b for a, b in zip(current, order))
    if not moved:
        return 0
    first = current[0]
    graph.move_before(first, order[0])
    prev = order[0]
    for n in order[1:]:
        graph.move_after(prev, n)
        prev = n
    return moved
