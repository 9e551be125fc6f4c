"""Analyses: facts about a model that passes read (use counts, shapes, liveness ...).

An analysis is a class with a ``compute(model)`` class method. Passes ask for one through
``ctx.analysis(UseCounts)``; the :class:`AnalysisManager` computes it on first request and caches
it until a transform reports a change, unless that transform lists the analysis in ``preserves``.

>>> am = AnalysisManager(model)                     # doctest: +SKIP
>>> am.get(UseCounts)[value]                         # doctest: +SKIP
"""

from __future__ import annotations

import collections
import logging
from typing import ClassVar, Iterable

from irlib import Model

__all__ = ["Analysis", "AnalysisManager", "UseCounts", "OpHistogram"]

log = logging.getLogger(__name__)


class Analysis:
    """Base class: subclasses set ``name`` and implement ``compute``."""

    name: ClassVar[str] = ""

    @classmethod
    def compute(cls, model: Model):  # pragma: no cover - abstract
        raise NotImplementedError(f"analysis {cls.name!r} does not implement compute()")


class AnalysisManager:
    """Caches analysis results for one model; counts computations (``computed``)."""

    def __init__(self, model: Model):
        self.model = model
        self._cache: dict[type, object] = {}
        self.computed: collections.Counter = collections.Counter()

    def get(self, analysis: type[Analysis]):
        if analysis not in self._cache:
            log.debug("computing analysis %s", analysis.name or analysis.__name__)
            self._cache[analysis] = analysis.compute(self.model)
            self.computed[analysis] += 1
        return self._cache[analysis]

    def invalidate(self, preserved: Iterable[type] = ()) -> None:
        keep = set(preserved)
        self._cache = {k: v for k, v in self._cache.items() if k in keep}

    def is_cached(self, analysis: type[Analysis]) -> bool:
        return analysis in self._cache


class UseCounts(Analysis):
    """Number of uses of every value of the model (by value identity)."""

    name = "use-counts"

    @classmethod
    def compute(cls, model: Model) -> dict:
        return {v: v.num_uses() for g in model.graph.all_graphs() for v in g.values()}


class OpHistogram(Analysis):
    """``{op: count}`` over every node, subgraphs included."""

    name = "op-histogram"

    @classmethod
    def compute(cls, model: Model) -> dict[str, int]:
        return dict(collections.Counter(n.qualified_op for n in model.graph.all_nodes()))
