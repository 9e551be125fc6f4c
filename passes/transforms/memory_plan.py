"""The ``memory-plan`` analysis: plan the arena of the model's intermediates and report it.

    irc compile model.onnx --passes "infer-shapes,memory-plan{strategy=best-fit}"

It adds a ``memory`` section to the compile report (naive, lower bound and peak bytes, in-place
count, the strategy chosen and every strategy's peak) and keeps the plan itself in
``model.meta["memory_plan"]``, where the command line
finds it to write ``--plan-out plan.json``. See docs/memory.md.
"""

from __future__ import annotations

import dataclasses
import logging

from irlib import Model
from passes.base import Pass, PassKind, PassResult
from passes.memory import MemoryPlanError, parse_shapes, plan_memory
from passes.registry import register_pass

log = logging.getLogger(__name__)


@register_pass
@dataclasses.dataclass(frozen=True)
class MemoryPlanPass(Pass):
    """Plan one arena for all intermediate tensors (views, in-place reuse, best offset strategy).

    Options: ``strategy`` (auto, greedy-size, greedy-breadth, best-fit, greedy-repair), ``alignment`` (bytes, a
    power of two), ``shapes`` (bindings of symbolic dims, ``[N=1,T=8]``), ``skip_dynamic``
    (a model it cannot size is reported as skipped instead of failing the pipeline, for -O levels).
    """

    name = "memory-plan"
    kind = PassKind.ANALYSIS
    strategy: str = "auto"
    alignment: int = 64
    shapes: tuple[str, ...] = ()
    skip_dynamic: bool = False

    def run(self, model: Model, ctx) -> PassResult:
        try:
            plan = plan_memory(model, strategy=self.strategy, alignment=self.alignment,
                               shapes=parse_shapes(self.shapes))
        except MemoryPlanError as e:
            if not self.skip_dynamic:
                raise
            log.info("memory plan skipped: %s", e)
            ctx.add_report_section("memory", {"skipped": str(e)})
            return PassResult(False, {"skipped": 1})
        model.meta["memory_plan"] = plan
        ctx.add_report_section("memory", plan.summary())
        return PassResult(False, {
            "tensors": len(plan.tensors), "peak_bytes": plan.arena_bytes,
            "lower_bound_bytes": plan.lower_bound_bytes, "naive_bytes": plan.naive_bytes,
            "inplace_count": plan.inplace_count,
        })
