"""``compile_model``: what ``irc compile`` does to a model, callable from Python.

An optimization level selects a pass pipeline from :mod:`passes.levels` (-O0: none; -O1:
cleanup; -O2: cleanup and portable fusions; -O3: plus the target backend's fusions); an explicit
pipeline string replaces it. The pass manager verifies the IR after every pass (unless
``verify_each=False``) and returns a report with per-pass timings and node counts.

>>> result = compile_model(irlib.load("examples/tiny_cnn.onnx"), 2)   # doctest: +SKIP
>>> result.report.to_json()["output"]["nodes"]                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Sequence

import irlib
from irlib import IRError, Model
from passes import CompileReport, Instrument, PassManager, level_pipeline, parse_pipeline
from passes.pipeline import without_passes
from passes.levels import LEVELS as _LEVEL_PIPELINES

__all__ = ["LEVELS", "DEFAULT_LEVEL", "CompileError", "CompileResult", "compile_model"]

log = logging.getLogger(__name__)

#: The optimization levels ``compile_model`` accepts (``-O`` on the command line).
LEVELS: tuple[int, ...] = tuple(sorted(_LEVEL_PIPELINES))
DEFAULT_LEVEL = 2


class CompileError(IRError):
    """The compiler was asked for something it cannot do (an unknown level, ...)."""


@dataclasses.dataclass
class CompileResult:
    """The compiled model and what happened to it."""

    model: Model
    level: int | None
    report: CompileReport

    @property
    def nodes_before(self) -> int:
        return self.report.input.get("nodes", 0)

    @property
    def nodes_after(self) -> int:
        return self.report.output.get("nodes", 0)

    @property
    def seconds(self) -> float:
        return self.report.total_seconds

    @property
    def modified(self) -> bool:
        return self.report.changed


def build_pipeline(level: int | None = DEFAULT_LEVEL, passes: str | None = None,
                   disable: Sequence[str] = (), target: str | None = None):
    """The pipeline items for an explicit ``passes`` string, else for ``level``."""
    if passes is not None:
        items = parse_pipeline(passes)
        if disable:
            items = without_passes(items, disable)
        return items
    if level not in LEVELS:
        known = ", ".join(f"-O{lv}" for lv in LEVELS)
        raise CompileError(f"optimization level {level} is not available (known: {known})")
    return level_pipeline(level, target=target, disable=tuple(disable))


def compile_model(
    model: Model,
    level: int | None = DEFAULT_LEVEL,
    *,
    passes: str | None = None,
    disable: Sequence[str] = (),
    verify: bool = True,
    verify_each: bool = True,
    instruments: Iterable[Instrument] = (),
    target: str | None = None,
    reproducer_dir: str | None = None,
    input_path: str | None = None,
    max_pass_runs: int | None = None,
) -> CompileResult:
    """Compile ``model`` in place at optimization ``level`` (or with the pipeline ``passes``).

    With ``verify`` (the default) the IR is checked before anything runs, so a broken input is
    reported as such rather than as a failure of some pass. Unknown disabled pass names are an
    error (a typo must not silently keep a pass on).
    """
    from passes import get_pass

    for name in disable:
        get_pass(name)  # raises PassError with suggestions
    items = build_pipeline(level, passes, disable, target)
    if verify:
        irlib.verify(model)
    manager = PassManager(
        items, verify_each=verify_each, instruments=instruments,
        config={"target": target} if target else {}, reproducer_dir=reproducer_dir,
        input_path=input_path, max_pass_runs=max_pass_runs,
    )
    report = manager.run(model)
    if not verify_each and verify:
        problems = irlib.check(model)
        if problems:
            raise CompileError(f"the IR is invalid after the pipeline (rerun with --verify-each"
                               f" to find the pass): {problems[0]}")
    log.info("%s: %d nodes -> %d nodes in %.3f s", manager.pipeline_text or "(no passes)",
             report.input["nodes"], report.output["nodes"], report.total_seconds)
    return CompileResult(model, None if passes is not None else level, report)
