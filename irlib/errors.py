"""Exceptions raised by irlib. Each message is one line that names the problem."""

from __future__ import annotations

__all__ = ["IRError", "IRLoadError", "VerificationError"]


class IRError(Exception):
    """Base class of irlib's errors."""


class IRLoadError(IRError):
    """A model could not be read or converted into the IR (bad file, bad references ...)."""


class VerificationError(IRError):
    """The IR breaks an invariant. ``problems`` lists every finding; the message shows the first."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")
