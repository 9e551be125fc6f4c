"""``PatternPass``: a pass defined by its rule set, run by the worklist driver.

    @register_pass
    @dataclasses.dataclass(frozen=True)
    class FuseMatMulAdd(PatternPass):
        \"\"\"Fuse MatMul + Add into Gemm.\"\"\"
        name = "fuse-matmul-add"
        rules = (MatMulAddToGemm,)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Sequence

from irlib import Model
from passes.base import Pass, PassResult
from passes.rewrite.driver import RewriteDriver
from passes.rewrite.rule import RewritePattern

__all__ = ["PatternPass"]


@dataclasses.dataclass(frozen=True)
class PatternPass(Pass):
    """Applies ``rules`` until none fires. Stats: rewrites per rule, nodes inserted/removed."""

    rules: ClassVar[Sequence[type[RewritePattern] | RewritePattern]] = ()
    #: Bound on rewrites (None: 10 per node + 1000); exceeding it is a ConvergenceError.
    max_rewrites: int | None = None

    def patterns(self) -> list[RewritePattern]:
        """The rule instances (built once per class: building a rule traces its pattern)."""
        cache = type(self).__dict__.get("_pattern_cache")
        if cache is None:
            cache = [r() if isinstance(r, type) else r for r in self.rules]
            type.__setattr__(type(self), "_pattern_cache", cache)
        return cache

    def run(self, model: Model, ctx) -> PassResult:
        stats = RewriteDriver(self.patterns(), self.max_rewrites).run(model)
        result = PassResult(changed=stats.rewrites > 0, stats=stats.as_counts())
        refused = {f"refused:{rule}": sum(c.values()) for rule, c in stats.refused.items()}
        result.stats.update(refused)
        return result
