"""Passes a third party would ship: a declarative rewrite and a function pass."""

from __future__ import annotations

import dataclasses

from passes import PassKind, PassResult, PatternPass, RewriteRule, function_pass, register_pass


class NegNeg(RewriteRule):
    """Neg(Neg(x)) -> x."""

    name = "neg-neg"

    def pattern(self, op, x):
        return op.Neg(op.Neg(x))

    def rewrite(self, op, x):
        return x


@dataclasses.dataclass(frozen=True)
class RemoveDoubleNeg(PatternPass):
    """Remove pairs of negations (from the irc-test-plugin package)."""

    name = "test-plugin-double-neg"
    rules = (NegNeg,)


@function_pass("test-plugin-count-ops", kind=PassKind.ANALYSIS)
def count_ops(model, ctx):
    """Count the nodes of the main graph (registered by a callable entry point)."""
    return PassResult(False, {"nodes": len(model.graph)})


def register_extras() -> None:
    """Entry point ``test-plugin-extras``: registers passes itself. The classes are built once,
    at import, so calling this again (``load_plugins(force=True)``) is harmless."""
    register_pass(count_ops)
