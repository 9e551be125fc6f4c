"""The worklist driver: applies a set of patterns until none fires.

Every node (subgraphs included) is visited once; after a rewrite only what it touched goes back
on the worklist (the new nodes, the readers of replaced values, the producers of erased nodes'
inputs and the other readers of those inputs), so the cost is proportional to the graph plus the
rewrites, not graph x rewrites.
Patterns are indexed by the op type they fire on. A bound on the number of rewrites (by default
10 per node, plus 1000) turns a non-terminating rule set into a :class:`ConvergenceError` naming
the rules that kept firing.

Statistics per rule: ``applied``, ``refused`` (with the reasons), so ``irc`` can report which rule
did what and why a fusion did not happen.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Iterable

from irlib import Graph, Model, Node
from passes.errors import ConvergenceError
from passes.rewrite.rewriter import PatternRewriter
from passes.rewrite.rule import RewritePattern

__all__ = ["RewriteDriver", "DriverStats", "apply_patterns"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DriverStats:
    applied: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    refused: dict[str, collections.Counter] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    inserted: int = 0
    removed: int = 0
    visits: int = 0

    @property
    def rewrites(self) -> int:
        return sum(self.applied.values())

    def as_counts(self) -> dict[str, int]:
        out = {"rewrites": self.rewrites, "inserted": self.inserted, "removed": self.removed}
        out.update({f"applied:{k}": v for k, v in sorted(self.applied.items())})
        return out


class RewriteDriver:
    def __init__(self, patterns: Iterable[RewritePattern], max_rewrites: int | None = None):
        self.patterns = [p() if isinstance(p, type) else p for p in patterns]
        self.max_rewrites = max_rewrites
        self._by_op: dict[str, list[RewritePattern]] = collections.defaultdict(list)
        self._any: list[RewritePattern] = []
        for p in self.patterns:
            if p.root_ops is None:
                self._any.append(p)
            else:
                for op in p.root_ops:
                    self._by_op[op].append(p)

    def _candidates(self, node: Node) -> list[RewritePattern]:
        specific = self._by_op.get(node.op_type, ())
        if not self._any:
            return list(specific)
        return list(specific) + self._any

    def run(self, model: Model | Graph) -> DriverStats:
        graph = model.graph if isinstance(model, Model) else model
        stats = DriverStats()
        rewriter = PatternRewriter(model if isinstance(model, Model) else None, graph)
        worklist: collections.deque[Node] = collections.deque(graph.all_nodes())
        queued = set(worklist)
        limit = self.max_rewrites if self.max_rewrites is not None else 10 * len(queued) + 1000
        while worklist:
            node = worklist.popleft()
            queued.discard(node)
            if node.graph is None:
                continue
            stats.visits += 1
            for pattern in self._candidates(node):
                rewriter.begin(pattern.name, node.graph)
                rewriter.touched = []
                try:
                    outcome = pattern.match_and_rewrite(node, rewriter)
                except Exception:
                    rewriter.abort()
                    raise
                if outcome is True:
                    stats.applied[pattern.name] += 1
                    if stats.rewrites > limit:
                        top = ", ".join(f"{k} x{v}" for k, v in stats.applied.most_common(3))
                        raise ConvergenceError(
                            f"rewrite patterns did not converge after {limit} rewrites ({top})")
                    for t in rewriter.touched:
                        if t.graph is not None and t not in queued:
                            worklist.append(t)
                            queued.add(t)
                            for g in t.subgraphs():
                                for inner in g.all_nodes():
                                    if inner not in queued:
                                        worklist.append(inner)
                                        queued.add(inner)
                    if node.graph is not None and node not in queued:
                        worklist.append(node)
                        queued.add(node)
                    break
                rewriter.abort()
                if outcome:  # a reason string: the pattern matched but refused
                    stats.refused[pattern.name][outcome] += 1
        stats.inserted, stats.removed = rewriter.inserted, rewriter.removed
        if stats.rewrites:
            log.debug("rewrites: %s", dict(stats.applied))
        return stats


def apply_patterns(model: Model | Graph, patterns: Iterable[RewritePattern],
                   max_rewrites: int | None = None) -> DriverStats:
    """Run ``patterns`` to a fixed point over ``model`` with the worklist driver."""
    return RewriteDriver(patterns, max_rewrites).run(model)
