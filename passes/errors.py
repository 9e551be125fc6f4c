"""Exceptions of the pass infrastructure; each message is one line."""

from __future__ import annotations

__all__ = ["PassError", "PipelineSyntaxError", "PassFailure", "ConvergenceError"]


class PassError(Exception):
    """Bad pass name, bad option, registry clash: a usage problem, reported before running."""


class PipelineSyntaxError(PassError):
    """A pipeline string that does not parse; the message points at the offending column."""


class ConvergenceError(Exception):
    """A fixed-point group or a rewrite driver kept changing the model past its bound."""


class PassFailure(Exception):
    """A pass raised, or left the IR invalid. Names the pass, the passes before it and, when one
    was written, the reproducer folder."""

    def __init__(self, message: str, pass_name: str, before: list[str],
                 reproducer: str | None = None, cause: BaseException | None = None):
        self.pass_name = pass_name
        self.before = list(before)
        self.reproducer = reproducer
        self.cause = cause
        super().__init__(message)
