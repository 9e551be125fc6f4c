"""``compile_model``: what ``irc compile`` does to a model, callable from Python.

An optimization level selects a pass pipeline. Only ``-O0`` exists so far: the model is verified
and handed back unchanged (a clean load/verify/save round trip). The pipelines for ``-O1``..``-O3``
live in ``passes/`` and are plugged in here by adding their level to :data:`LEVELS`; the command
line takes its ``-O`` choices from that tuple.

>>> result = compile_model(irlib.load("examples/tiny_cnn.onnx"), 0)   # doctest: +SKIP
>>> result.nodes_before == result.nodes_after                          # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import logging
import time

import irlib
from irlib import IRError, Model

__all__ = ["LEVELS", "DEFAULT_LEVEL", "CompileError", "CompileResult", "compile_model"]

log = logging.getLogger(__name__)

#: The optimization levels ``compile_model`` accepts (``-O`` on the command line).
LEVELS: tuple[int, ...] = (0,)
DEFAULT_LEVEL = 0


class CompileError(IRError):
    """The compiler was asked for something it cannot do (an unknown level, ...)."""


@dataclasses.dataclass
class CompileResult:
    """The compiled model and what happened to it."""

    model: Model
    level: int
    nodes_before: int
    nodes_after: int
    seconds: float

    @property
    def modified(self) -> bool:
        return self.nodes_before != self.nodes_after


def compile_model(model: Model, level: int = DEFAULT_LEVEL, *, verify: bool = True) -> CompileResult:
    """Compile ``model`` at optimization ``level``; the model is changed in place and returned.

    With ``verify`` (the default) the IR is checked before anything runs, so a broken input is
    reported as such rather than as a failure of some pass. Raises :class:`CompileError` for a
    level that is not in :data:`LEVELS` and :class:`irlib.VerificationError` for a broken model.
    """
    if level not in LEVELS:
        known = ", ".join(f"-O{lv}" for lv in LEVELS)
        raise CompileError(f"optimization level {level} is not available (known: {known})")
    start = time.perf_counter()
    before = _count(model)
    if verify:
        irlib.verify(model)
    # Level 0 runs no passes. Levels 1-3 run the pipelines from passes/ here, once they exist.
    after = _count(model)
    seconds = time.perf_counter() - start
    log.info("-O%d: %d nodes -> %d nodes in %.3f s", level, before, after, seconds)
    return CompileResult(model, level, before, after, seconds)


def _count(model: Model) -> int:
    return sum(1 for _ in model.graph.all_nodes())
