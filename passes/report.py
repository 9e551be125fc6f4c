"""The compile report: per pass, its time, node counts and whether it changed the model.

``CompileReport.to_json()`` has the keys other tools read::

    {"pipeline": str,
     "passes": [{"name", "seconds", "nodes_before", "nodes_after", "changed", "stats", ...}],
     "input": {"nodes", "op_histogram"}, "output": {"nodes", "op_histogram"},
     "total_seconds": float, ...sections added by passes and backends ("memory", "backend")}
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from irlib import Model

__all__ = ["PassRecord", "CompileReport", "summarize"]


def summarize(model: Model) -> dict[str, Any]:
    """Node count (subgraphs included) and op histogram of ``model``."""
    hist = collections.Counter(n.qualified_op for n in model.graph.all_nodes())
    return {"nodes": sum(hist.values()), "op_histogram": dict(sorted(hist.items()))}


@dataclasses.dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    iteration: int | None = None  # inside a fixpoint group: which round

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name, "seconds": round(self.seconds, 6),
            "nodes_before": self.nodes_before, "nodes_after": self.nodes_after,
            "changed": self.changed, "stats": self.stats,
        }
        if self.iteration is not None:
            out["iteration"] = self.iteration
        return out


@dataclasses.dataclass
class CompileReport:
    pipeline: str = ""
    passes: list[PassRecord] = dataclasses.field(default_factory=list)
    input: dict[str, Any] = dataclasses.field(default_factory=dict)
    output: dict[str, Any] = dataclasses.field(default_factory=dict)
    total_seconds: float = 0.0
    sections: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.passes)

    def to_json(self) -> dict[str, Any]:
        out = {
            "pipeline": self.pipeline,
            "passes": [r.to_json() for r in self.passes],
            "input": self.input,
            "output": self.output,
            "total_seconds": round(self.total_seconds, 6),
        }
        out.update(self.sections)
        return out
