"""Rewrite machinery: patterns, the transactional rewriter and the worklist driver.

- :mod:`passes.rewrite.pattern`: the pattern language (``op.Add(op.MatMul(a, b), c)``, ``Const``)
- :mod:`passes.rewrite.rule`: ``RewriteRule`` (declarative), ``RewritePattern`` (hand-written),
  ``RuleSet``
- :mod:`passes.rewrite.rewriter`: ``PatternRewriter``, the one way patterns mutate the graph
- :mod:`passes.rewrite.driver`: ``RewriteDriver`` / ``apply_patterns``
- :mod:`passes.rewrite.pattern_pass`: ``PatternPass``, a pass made of a rule set
- :mod:`passes.rewrite.schema`: ``op_accepts``, whether the model's opset can run an op a rule emits
"""

from passes.rewrite.driver import DriverStats, RewriteDriver, apply_patterns
from passes.rewrite.pattern import (
    COMMUTATIVE_OPS, Const, Match, Var, attr_or_default, iter_matches, match_pattern,
)
from passes.rewrite.pattern_pass import PatternPass
from passes.rewrite.rewriter import PatternRewriter, describe_node
from passes.rewrite.rule import RewriteBuilder, RewritePattern, RewriteRule, RuleSet
from passes.rewrite.schema import op_accepts, op_schema, op_since_version

__all__ = [
    "COMMUTATIVE_OPS", "Const", "DriverStats", "Match", "PatternPass", "PatternRewriter",
    "RewriteBuilder", "RewriteDriver", "RewritePattern", "RewriteRule", "RuleSet", "Var",
    "apply_patterns", "attr_or_default", "describe_node", "iter_matches", "match_pattern", "op_accepts",
    "op_schema", "op_since_version",
]
