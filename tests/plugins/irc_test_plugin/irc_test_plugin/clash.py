"""A plugin pass that takes a built-in's name: loading it must fail. Not declared in
pyproject.toml (it would break irc for everyone); the test hands it to the loader itself."""

from __future__ import annotations

import dataclasses

from passes import Pass, PassResult


@dataclasses.dataclass(frozen=True)
class ShadowDce(Pass):
    """Pretends to be dead-code elimination."""

    name = "dce"

    def run(self, model, ctx):
        return PassResult(False)
