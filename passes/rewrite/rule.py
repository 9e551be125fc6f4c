"""Rewrite patterns: hand-written (``RewritePattern``) and declarative (``RewriteRule``).

A declarative rule in a dozen lines::

    class MatMulAddToGemm(RewriteRule):
        \"\"\"MatMul(a, b) + c -> Gemm(a, b, c) when a and b are 2-D.\"\"\"
        name = "matmul-add-to-gemm"

        def pattern(self, op, a, b, c):
            return op.Add(op.MatMul(a, b), c)

        def check(self, m, a, b, c):
            if a.shape is None or len(a.shape) != 2 or b.shape is None or len(b.shape) != 2:
                return "MatMul operands must be 2-D"

        def rewrite(self, op, a, b, c):
            return op.Gemm(a, b, c)

``check`` returns ``None``/``True`` to accept, or a string (the reason) / ``False`` to refuse;
refusal reasons are counted in the driver's statistics. ``rewrite`` returns the value (or tuple of
values) that replaces the root's outputs; ``op.X(...)`` there creates real nodes, and
``op.constant(array)`` a new initializer. Both receive the bindings by name: variables (the
pattern's parameters), ``Const(name=...)`` and ``_name=`` nodes; each takes only the names it
lists. ``check`` may add entries to ``m.bindings`` (a folded weight it had to compute to decide),
which ``rewrite`` then receives by name like the others. Rule sets compose with ``+``.
"""

from __future__ import annotations

import inspect
from typing import Callable, ClassVar, Sequence

import numpy as np

from irlib import Node, Value
from passes.rewrite.pattern import Match, PatternBuilder, Var, iter_matches, match_pattern
from passes.rewrite.rewriter import PatternRewriter

__all__ = ["RewritePattern", "RewriteRule", "RuleSet", "RewriteBuilder"]


class RewritePattern:
    """A hand-written pattern: ``match_and_rewrite(node, rewriter) -> bool``.

    ``root_ops`` lists the op types it can fire on (``None``: any node), so the driver only offers
    it the nodes it cares about. Do not mutate the graph before the match has succeeded: all
    changes go through ``rewriter`` (``make_node``, ``replace``), which is transactional.
    """

    name: ClassVar[str] = ""
    root_ops: ClassVar[tuple[str, ...] | None] = None

    def match_and_rewrite(self, node: Node, rewriter: PatternRewriter) -> bool | str:
        """Rewrite at ``node``; return True if changed, or False / a reason string if not."""
        raise NotImplementedError(f"pattern {self.name!r} does not implement match_and_rewrite")

    def __add__(self, other) -> RuleSet:
        return RuleSet([self]) + other


class RewriteBuilder:
    """The ``op`` handed to ``rewrite``: ``op.Gemm(a, b, c, transB=1)`` makes a pending node."""

    def __init__(self, rewriter: PatternRewriter):
        self._rewriter = rewriter

    def constant(self, array, dtype=None) -> Value:
        arr = np.asarray(array, dtype=dtype)
        return self._rewriter.make_constant(arr)

    def __getattr__(self, op_type: str) -> Callable:
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def build(*inputs, _domain: str = "", _outputs: int = 1, _name: str = "", **attrs):
            node = self._rewriter.make_node(op_type, list(inputs), attrs or None, domain=_domain,
                                            num_outputs=_outputs, name=_name)
            return node.outputs[0] if _outputs == 1 else tuple(node.outputs)

        return build


class RewriteRule(RewritePattern):
    """Declarative rule: subclasses define ``pattern``, ``rewrite`` and optionally ``check``."""

    def __init__(self):
        params = list(inspect.signature(self.pattern).parameters)[1:]
        self._root = self.pattern(PatternBuilder(), *[Var(p) for p in params])
        pv = self._root[0] if isinstance(self._root, tuple) else self._root
        self.root_ops = (pv.node.op_type,)
        self._root_outputs = pv.node.num_outputs
        self._check_params = _param_filter(self.check)
        self._rewrite_params = _param_filter(self.rewrite)

    def pattern(self, op, *args):
        raise NotImplementedError(f"rule {self.name!r} does not define pattern()")

    def check(self, m: Match, **bindings) -> str | bool | None:
        return None

    def rewrite(self, op, **bindings):
        raise NotImplementedError(f"rule {self.name!r} does not define rewrite()")

    def match(self, node: Node, opset: int | None = None) -> Match | None:
        return match_pattern(self._root, node, opset)

    def match_and_rewrite(self, node: Node, rewriter: PatternRewriter) -> bool | str:
        opset = rewriter.model.opset() if rewriter.model is not None else None
        # A commutative op can match in several ways; one refused (an intermediate used
        # elsewhere, or check() said no) must not hide another that is acceptable.
        first_reason = None
        for m in iter_matches(self._root, node, opset):
            reason = self._refusal(m)
            if reason is None:
                return self._apply(m, node, rewriter)
            first_reason = first_reason or reason
        return first_reason or False

    def _refusal(self, m: Match) -> str | None:
        """Why ``m`` cannot be rewritten (``None``: it can)."""
        for inner in m.nodes[1:]:
            for v in inner.outputs:
                if v.is_graph_output():
                    return f"intermediate {v.name!r} is a graph output"
                if any(not any(u is n for n in m.nodes) for u in v.users()):
                    return f"intermediate {v.name!r} has uses outside the match"
        verdict = self.check(m, **self._check_params(m.bindings))
        if verdict is False or isinstance(verdict, str):
            return verdict or "check refused"
        return None

    def _apply(self, m: Match, node: Node, rewriter: PatternRewriter) -> bool | str:
        rewriter.matched_nodes = m.nodes
        result = self.rewrite(RewriteBuilder(rewriter), **self._rewrite_params(m.bindings))
        if result is None:
            rewriter.abort()
            return "rewrite returned None"
        new_values = list(result) if isinstance(result, (tuple, list)) else [result]
        old_values = list(node.outputs[: len(new_values)])
        ok = rewriter.replace(old_values, new_values, matched=m.nodes[::-1], anchor=node)
        return True if ok else "replacement would rename a graph input, initializer or output"


def _param_filter(fn) -> Callable[[dict], dict]:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1:]  # after m / op
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return lambda b: b
    names = [p.name for p in params]
    return lambda b: {k: b.get(k) for k in names}


class RuleSet:
    """An ordered collection of patterns; ``a + b`` concatenates (names must stay unique)."""

    def __init__(self, patterns: Sequence[RewritePattern] = ()):
        self.patterns: list[RewritePattern] = []
        for p in patterns:
            self._add(p)

    def _add(self, p: RewritePattern) -> None:
        if isinstance(p, type):
            p = p()
        if any(q.name == p.name for q in self.patterns):
            raise ValueError(f"rule {p.name!r} is in the rule set twice")
        self.patterns.append(p)

    def __add__(self, other) -> RuleSet:
        out = RuleSet(self.patterns)
        for p in other.patterns if isinstance(other, RuleSet) else [other]:
            out._add(p)
        return out

    def __iter__(self):
        return iter(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)
