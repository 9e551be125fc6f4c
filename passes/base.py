"""What a pass is: a frozen dataclass with a kebab-case ``name``, options as fields, and a
``run`` that returns a :class:`PassResult` saying whether (and how much) the model changed.

A transform in a few lines::

    @register_pass
    @dataclasses.dataclass(frozen=True)
    class DropDocStrings(Pass):
        \"\"\"Remove doc strings from every node.\"\"\"
        name: ClassVar[str] = "drop-doc-strings"

        def run(self, model, ctx):
            n = 0
            for node in model.graph.all_nodes():
                n += bool(node.doc_string)
                node.doc_string = ""
            return PassResult(changed=n > 0, stats={"cleared": n})

Options map to fields, so the pipeline text ``my-pass{max-iterations=3}`` builds
``MyPass(max_iterations=3)`` with no glue code. A pass that needs an analysis lists it in
``requires`` and asks ``ctx.analysis(ThatAnalysis)``; results are cached until a pass changes the
model (see :mod:`passes.analysis`).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Callable, ClassVar

from irlib import Model

if TYPE_CHECKING:
    from passes.context import PassContext

__all__ = ["Pass", "PassKind", "PassResult", "function_pass"]


class PassKind(str, enum.Enum):
    TRANSFORM = "transform"
    ANALYSIS = "analysis"


@dataclasses.dataclass
class PassResult:
    """What a pass did. ``stats`` holds counts worth reporting (``{"removed": 3}``)."""

    changed: bool
    stats: dict[str, int | float] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_counts(cls, **counts: int) -> PassResult:
        """Changed when any count is non-zero: ``PassResult.from_counts(removed=n)``."""
        return cls(changed=any(bool(v) for v in counts.values()), stats=dict(counts))


@dataclasses.dataclass(frozen=True)
class Pass:
    """Base class of passes. Subclasses are frozen dataclasses whose fields are options."""

    name: ClassVar[str] = ""
    kind: ClassVar[PassKind] = PassKind.TRANSFORM
    #: Analyses (classes from passes.analysis) the pass reads through ``ctx.analysis``.
    requires: ClassVar[tuple] = ()
    #: Analyses that stay valid when this pass changes the model.
    preserves: ClassVar[tuple] = ()

    def run(self, model: Model, ctx: PassContext) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError(f"pass {self.name!r} does not implement run()")

    @classmethod
    def description(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.init]

    def option_values(self) -> dict:
        """Options that differ from their defaults, by field name."""
        out = {}
        for f in self.options():
            v = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else object())
            if v != default:
                out[f.name] = v
        return out


def function_pass(name: str, *, kind: PassKind = PassKind.TRANSFORM,
                  requires: tuple = (), preserves: tuple = ()) -> Callable:
    """Turn ``fn(model, ctx) -> PassResult | bool`` into a registered-ready Pass class.

    >>> @function_pass("count-nodes", kind=PassKind.ANALYSIS)
    ... def count_nodes(model, ctx):
    ...     '''Count the nodes of the main graph.'''
    ...     return PassResult(False, {"nodes": len(model.graph)})
    """

    def wrap(fn: Callable) -> type[Pass]:
        def run(self, model, ctx):
            result = fn(model, ctx)
            if isinstance(result, PassResult):
                return result
            if isinstance(result, bool):
                return PassResult(result)
            raise TypeError(f"pass {name!r} returned {type(result).__name__}, not PassResult or bool")

        cls = type(
            "".join(p.capitalize() for p in name.split("-")) + "Pass",
            (Pass,),
            {"name": name, "kind": kind, "requires": requires, "preserves": preserves,
             "run": run, "__doc__": fn.__doc__, "__module__": fn.__module__,
             "__annotations__": {}},
        )
        return dataclasses.dataclass(frozen=True)(cls)

    return wrap
