"""``reorder-for-memory``: reorder independent nodes so that fewer bytes are live at once.

It evaluates a few topological orders (the current one, a just-in-time depth-first order and a
greedy list schedule, see :mod:`passes.memory.reorder`) by their lower bound, the most bytes of
intermediates live at one step, and keeps the best. The current order is among the candidates,
so the lower bound never goes up; the nodes are only relinked, never changed.

    irc compile model.onnx --passes "infer-shapes,reorder-for-memory,memory-plan"
"""

from __future__ import annotations

import dataclasses
import logging

from irlib import Model
from passes.base import Pass, PassResult
from passes.memory import MemoryPlanError, apply_order, memory_order, parse_shapes
from passes.registry import register_pass

log = logging.getLogger(__name__)


@register_pass
@dataclasses.dataclass(frozen=True)
class ReorderForMemory(Pass):
    """Reorder independent nodes to lower the peak of live memory (never raises the lower bound).

    Options: ``alignment`` (as memory-plan's), ``shapes`` (bindings of symbolic dims, ``[N=1]``),
    ``skip_dynamic`` (leave a model it cannot size unchanged instead of failing).
    """

    name = "reorder-for-memory"
    alignment: int = 64
    shapes: tuple[str, ...] = ()
    skip_dynamic: bool = False

    def run(self, model: Model, ctx) -> PassResult:
        try:
            result = memory_order(model, shapes=parse_shapes(self.shapes), alignment=self.alignment)
        except MemoryPlanError as e:
            if not self.skip_dynamic:
                raise
            log.info("reorder-for-memory skipped: %s", e)
            return PassResult(False, {"skipped": 1})
        moved = apply_order(model.graph, result.order) if result.chosen != "current" else 0
        return PassResult(moved > 0, {
            "nodes_moved": moved,
            "lower_bound_before": result.lower_bound_before,
            "lower_bound_after": result.lower_bound_after,
        })
