"""The TVM backend: a registered entry that reports honestly whether it could run here.

Lowering an IR model through TVM (Relax) to a shared library is a later issue: until it lands,
``compile`` raises a one-line :class:`~backends.base.BackendError`, and ``is_available`` says so
even where apache-tvm is installed. ``tvm`` is never imported: availability is probed with
``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping

from backends.base import Backend, BackendError, Executable
from irlib import Model

__all__ = ["TVMBackend"]


class TVMBackend(Backend):
    """Apache TVM (lowering not implemented yet)."""

    name = "tvm"
    description = ("Apache TVM compiled modules (.so); availability probe only: the lowering"
                   " is a later issue and compile refuses until then")
    options_help = {
        "target": "TVM target string (default llvm)",
        "opt_level": "TVM's own optimization level",
    }

    def is_available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("tvm") is None:
            return False, "apache-tvm not installed"
        installed = self.version()
        what = f"apache-tvm {installed}" if installed else "apache-tvm"
        return False, f"{what} is installed, but irc's TVM lowering is not implemented yet"

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("apache-tvm")
        except PackageNotFoundError:
            return ""

    def compile(self, model: Model, options: Mapping[str, Any] | None = None) -> Executable:
        self.check_options(options)
        self.require_available()
        raise BackendError("tvm: lowering through TVM is not implemented yet")  # pragma: no cover
