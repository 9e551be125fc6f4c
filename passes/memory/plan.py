"""``MemoryPlan``: where every intermediate tensor lives in one arena, and the figures that say how
good the placement is.

>>> plan = plan_memory(model, strategy="auto", alignment=64)        # doctest: +SKIP
>>> plan.arena_bytes, plan.lower_bound_bytes, plan.strategy          # doctest: +SKIP
>>> json.dump(plan.to_json(), open("plan.json", "w"))                # doctest: +SKIP

The JSON form is a contract other tools read (see docs/memory.md)::

    {"alignment": 64, "arena_bytes": N, "order": [node names in execution order],
     "tensors": [{"name", "offset", "size", "first", "last", ...}]}

``first``/``last`` are positions in ``order``; tensors that share memory on purpose (a view and
its input, an in-place output and the input it overwrote) have the same ``buffer`` number.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Mapping

from irlib import Graph, Model, Value
from passes.memory.liveness import (
    Liveness, MemoryPlanError, align, compute_liveness,
)
from passes.memory.strategies import STRATEGIES, arena_size

__all__ = ["MemoryPlan", "PlannedTensor", "check_plan", "plan_memory"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PlannedTensor:
    """One tensor of the plan. ``value`` is the IR value (not in the JSON)."""

    name: str
    offset: int
    size: int
    first: int
    last: int
    buffer: int
    alias_of: str | None = None
    inplace_of: str | None = None
    value: Value | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        d = {"name": self.name, "offset": self.offset, "size": self.size, "first": self.first,
             "last": self.last, "buffer": self.buffer}
        if self.alias_of is not None:
            d["alias_of"] = self.alias_of
        if self.inplace_of is not None:
            d["inplace_of"] = self.inplace_of
        return d


@dataclasses.dataclass
class MemoryPlan:
    """An arena layout for one execution order, and its figures.

    ``naive_bytes``: every intermediate in its own buffer; ``lower_bound_bytes``: the most bytes
    live at one step of this order (no placement does better); ``arena_bytes``: the arena this
    plan needs (its peak). ``peaks``: the arena each strategy reached.
    """

    alignment: int
    arena_bytes: int
    order: list[str]
    tensors: list[PlannedTensor]
    strategy: str
    naive_bytes: int
    lower_bound_bytes: int
    inplace_count: int
    alias_count: int
    peaks: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def peak_over_lower_bound(self) -> float:
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0

    @property
    def naive_over_peak(self) -> float:
        return self.naive_bytes / self.arena_bytes if self.arena_bytes else 1.0

    def by_value(self) -> dict[Value, PlannedTensor]:
        """Planned tensors keyed by IR value (for executors holding the same model)."""
        return {t.value: t for t in self.tensors if t.value is not None}

    def summary(self) -> dict:
        """The figures, as the ``memory`` report section and ``irc plan --json`` show them."""
        return {
            "naive_bytes": self.naive_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "peak_bytes": self.arena_bytes,
            "peak_over_lower_bound": round(self.peak_over_lower_bound, 4),
            "naive_over_peak": round(self.naive_over_peak, 4),
            "inplace_count": self.inplace_count,
            "alias_count": self.alias_count,
            "strategy": self.strategy,
            "alignment": self.alignment,
            "tensors": len(self.tensors),
            "peaks": dict(self.peaks),
            "planning_seconds": round(self.seconds, 6),
        }

    def to_json(self) -> dict:
        return {
            "alignment": self.alignment,
            "arena_bytes": self.arena_bytes,
            "order": list(self.order),
            "tensors": [t.to_json() for t in self.tensors],
            "strategy": self.strategy,
            "naive_bytes": self.naive_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "inplace_count": self.inplace_count,
        }

    @classmethod
    def from_json(cls, data: Mapping, model: Model | Graph | None = None) -> MemoryPlan:
        """Read a plan back; with ``model``, tensors are matched to the main graph's node outputs
        by name (names are the JSON's only link to the model)."""
        values: dict[str, Value] = {}
        if model is not None:
            graph = model.graph if isinstance(model, Model) else model
            values = {v.name: v for n in graph for v in n.outputs if v.name}
        tensors = []
        for t in data["tensors"]:
            tensors.append(PlannedTensor(
                t["name"], int(t["offset"]), int(t["size"]), int(t["first"]), int(t["last"]),
                int(t.get("buffer", -1)), t.get("alias_of"), t.get("inplace_of"),
                values.get(t["name"])))
            if model is not None and tensors[-1].value is None:
                raise MemoryPlanError(f"plan tensor {t['name']!r} is not a node output of the model")
        return cls(int(data["alignment"]), int(data["arena_bytes"]), list(data["order"]), tensors,
                   data.get("strategy", ""), int(data.get("naive_bytes", 0)),
                   int(data.get("lower_bound_bytes", 0)), int(data.get("inplace_count", 0)), 0)


def plan_memory(model: Model | Graph, *, strategy: str = "auto", alignment: int = 64,
                shapes: Mapping[str, int] | None = None, liveness: Liveness | None = None) -> MemoryPlan:
    """Plan the arena of ``model``'s main graph in its current node order.

    ``strategy`` is one of :data:`~passes.memory.strategies.STRATEGIES` or ``"auto"`` (all of
    them, the smallest arena wins; ties go to the first in that table). Types must be static
    (run ``infer-shapes`` first); ``shapes`` binds symbolic dims.
    """
    if strategy != "auto" and strategy not in STRATEGIES:
        known = ", ".join(["auto", *STRATEGIES])
        raise MemoryPlanError(f"unknown memory strategy {strategy!r} (choose from {known})")
    start = time.perf_counter()
    live = liveness or compute_liveness(model, shapes=shapes, alignment=alignment)
    names = [strategy] if strategy != "auto" else list(STRATEGIES)
    peaks: dict[str, int] = {}
    best_name, best_offsets = None, None
    for name in names:
        offsets = STRATEGIES[name](live.buffers)
        peaks[name] = align(arena_size(live.buffers, offsets), live.alignment)
        if best_name is None or peaks[name] < peaks[best_name]:
            best_name, best_offsets = name, offsets
    tensors = [
        PlannedTensor(t.name, best_offsets[t.buffer], t.size, t.first, t.last, t.buffer,
                      t.alias_of, t.inplace_of, t.value)
        for t in live.tensors
    ]
    plan = MemoryPlan(live.alignment, peaks[best_name], live.names, tensors, best_name,
                      live.naive_bytes, live.lower_bound_bytes, live.inplace_count,
                      live.alias_count, peaks, time.perf_counter() - start)
    log.info("memory plan: %d tensors, arena %d bytes (lower bound %d, naive %d) by %s",
             len(tensors), plan.arena_bytes, plan.lower_bound_bytes, plan.naive_bytes, best_name)
    return plan


def check_plan(plan: MemoryPlan) -> list[str]:
    """Problems of ``plan``: two tensors of different buffers live at one step whose bytes
    overlap, or misaligned offsets, or tensors past the arena's end (empty: the plan is sound)."""
    problems = []
    items = sorted(plan.tensors, key=lambda t: t.first)
    for t in items:
        if t.offset % plan.alignment:
            problems.append(f"tensor {t.name!r} at offset {t.offset} is not {plan.alignment}-aligned")
        if t.offset + t.size > plan.arena_bytes:
            problems.append(f"tensor {t.name!r} ends at {t.offset + t.size}, past the arena ({plan.arena_bytes})")
    active: list[PlannedTensor] = []
    for t in items:
        active = [a for a in active if a.last >= t.first]
        for a in active:
            if a.buffer == t.buffer and a.buffer >= 0 or not a.size or not t.size:
                continue
            if a.offset < t.offset + t.size and t.offset < a.offset + a.size:
                problems.append(
                    f"tensors {a.name!r} [{a.first},{a.last}] and {t.name!r} [{t.first},{t.last}]"
                    f" are live together and overlap at bytes {max(a.offset, t.offset)}.."
                    f"{min(a.offset + a.size, t.offset + t.size)}")
        active.append(t)
    return problems
