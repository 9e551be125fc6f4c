"""The backend API: a backend turns an IR model into an :class:`Executable`.

    from backends import get_backend
    ort = get_backend("ort")
    ok, reason = ort.is_available()
    exe = ort.compile(model, {"threads": 2})      # options: see the backend's ``options_help``
    outputs = exe.run({"x": x})                    # {output name: ndarray}
    exe.save("model.irc.onnx")                     # the artifact (.onnx, .so, engine ...)

A backend says which nodes it can take with ``supports(node)`` (``True`` or a reason string),
reports honestly whether it can run here (``is_available()``), and may name backend-specific
passes for ``-O3`` in ``pipeline(level)``. Options are a plain dict checked against the backend's
``options_help`` (a typo is an error, never silently ignored).

Writing one: subclass :class:`Backend`, implement ``compile`` (returning an :class:`Executable`
subclass), then register it with :func:`backends.register_backend` or, from another package,
through the ``irc.backends`` entry-point group (docs/backends.md).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping

import numpy as np

from irlib import IRError, Model, Node

__all__ = ["Backend", "BackendError", "BackendUnavailable", "Executable"]


class BackendError(IRError):
    """A backend cannot do what was asked (bad option, compile or run failure); one line."""


class BackendUnavailable(BackendError):
    """The backend cannot run on this machine (library missing, no device)."""


class Executable(abc.ABC):
    """A compiled model, ready to run.

    ``input_names``/``output_names`` list the model's interface in order; ``run`` takes arrays by
    input name and returns arrays by output name. ``options`` holds the effective options the
    backend compiled with (defaults filled in), for reports.
    """

    backend: str = ""
    input_names: list[str]
    output_names: list[str]
    options: dict

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on ``inputs`` (by input name) and return every output by name."""

    def save(self, path: str) -> str:
        """Write the artifact to ``path`` and return the path written.

        Backends without an artifact (an in-process interpreter) raise :class:`BackendError`.
        """
        raise BackendError(f"backend {self.backend!r} produces no artifact to save")

    @property
    def artifact_suffix(self) -> str:
        """The file suffix of the artifact ``save`` writes (``.onnx``, ``.so``, ``.engine``)."""
        return ""


class Backend(abc.ABC):
    """Base class of backends. ``name`` is the registry key; ``description`` one line.

    ``options_help`` maps each option a backend accepts to a one-line description; ``compile``
    calls :meth:`check_options` to refuse unknown ones.

    >>> class Echo(Backend):                                  # doctest: +SKIP
    ...     name = "echo"
    ...     description = "returns its inputs (a toy)"
    ...     def compile(self, model, options=None):
    ...         ...
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options_help: ClassVar[dict[str, str]] = {}

    def is_available(self) -> tuple[bool, str]:
        """``(True, "")`` when the backend can compile and run here, else ``(False, reason)``."""
        return True, ""

    def version(self) -> str:
        """The version of the library behind the backend (``""`` when it is not installed)."""
        return ""

    def supports(self, node: Node, model: Model | None = None) -> bool | str:
        """``True`` when the backend can execute ``node``, else a one-line reason.

        ``model`` (optional) gives the opset versions the node is read under.
        """
        return True

    def pipeline(self, level: int) -> str:
        """Backend-specific passes to append at ``level`` (pipeline text; ``""`` for none)."""
        return ""

    @abc.abstractmethod
    def compile(self, model: Model, options: Mapping[str, Any] | None = None) -> Executable:
        """Turn ``model`` into an :class:`Executable`; the model is not changed."""

    # -- helpers for subclasses -------------------------------------------------------------
    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """A copy of ``options``; an option not in ``options_help`` raises :class:`BackendError`."""
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(self.options_help))
        if unknown:
            valid = ", ".join(sorted(self.options_help)) or "none"
            raise BackendError(
                f"backend {self.name!r} has no option {unknown[0]!r} (options: {valid})")
        return opts

    def require_available(self) -> None:
        """Raise :class:`BackendUnavailable` with the reason unless the backend can run here."""
        ok, reason = self.is_available()
        if not ok:
            raise BackendUnavailable(f"{self.name}: unavailable: {reason}")

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
