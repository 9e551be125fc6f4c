"""Dead-code elimination: nodes whose outputs nobody reads, and unused initializers."""

from __future__ import annotations

import dataclasses

from irlib import Model
from passes.base import Pass, PassResult
from passes.registry import register_pass


@register_pass
@dataclasses.dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Remove nodes with no used outputs and initializers nobody reads (subgraphs included)."""

    name = "dce"

    def run(self, model: Model, ctx) -> PassResult:
        nodes = inits = 0
        # Innermost graphs first, so a subgraph's dead nodes stop using outer values first.
        for graph in reversed(list(model.graph.all_graphs())):
            outputs = {id(v) for v in graph.outputs}
            for node in reversed(graph):
                if any(v.has_uses() or id(v) in outputs for v in node.outputs):
                    continue
                graph.remove(node)
                nodes += 1
            # Before IR 4 initializers are listed as inputs but are constants (passes.constants):
            # an unused one goes from both lists.
            old_ir = graph is model.graph and model.graph.meta.get("initializer_inputs_are_constant")
            for v in graph.initializers:
                if v.has_uses() or id(v) in outputs:
                    continue
                if v.is_graph_input():
                    if not old_ir:
                        continue
                    graph.inputs.remove(v)
                graph.remove_initializer(v)
                inits += 1
        return PassResult.from_counts(nodes_removed=nodes, initializers_removed=inits)
