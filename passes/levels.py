"""The -O levels: which passes each level runs, in what order. One source of truth: ``irc
passes`` and docs/passes.md derive a pass's level from these pipelines.

- ``-O0``: nothing (import, verify, export).
- ``-O1``: cleanup: shape inference, then identity elimination and dead-code removal to a fixed
  point.
- ``-O2``: ``-O1`` plus fusions that keep the model portable standard ONNX.
- ``-O3``: ``-O2`` plus the target backend's own fusions (contrib ops), chosen by ``target``.
"""

from __future__ import annotations

from passes.pipeline import PipelineItem, parse_pipeline

__all__ = ["LEVELS", "level_pipeline", "level_of_pass"]

_CLEANUP = "infer-shapes,fixpoint(eliminate-identity,dce)"

#: Pipeline text per level. Targets may append their own passes at -O3 (TARGET_O3).
LEVELS: dict[int, str] = {
    0: "",
    1: _CLEANUP,
    2: _CLEANUP,
    3: _CLEANUP,
}

#: Extra -O3 passes per target backend.
TARGET_O3: dict[str, str] = {}


def level_pipeline_text(level: int, target: str | None = None) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown optimization level {level} (choose 0-3)")
    text = LEVELS[level]
    if level >= 3 and target in TARGET_O3:
        text = ",".join(t for t in (text, TARGET_O3[target]) if t)
    return text


def level_pipeline(level: int, target: str | None = None,
                   disable: tuple[str, ...] = ()) -> list[PipelineItem]:
    """The parsed pipeline of ``level`` without the passes named in ``disable``."""
    from passes.pipeline import FixedPoint

    items = parse_pipeline(level_pipeline_text(level, target))

    def drop(seq):
        out = []
        for it in seq:
            if isinstance(it, FixedPoint):
                inner = drop(it.items)
                if inner:
                    out.append(FixedPoint(inner, it.max_iterations))
            elif it.name not in disable:
                out.append(it)
        return out

    return drop(items)


def level_of_pass(name: str) -> int | None:
    """The lowest level whose default pipeline (any target) runs pass ``name``."""
    import re

    for level in sorted(LEVELS):
        texts = [LEVELS[level]] + ([*TARGET_O3.values()] if level >= 3 else [])
        for text in texts:
            if re.search(rf"(^|[,(]){re.escape(name)}($|[,){{])", text.replace(" ", "")):
                return level
    return None
