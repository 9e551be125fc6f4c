"""``PatternRewriter``: the one way a rewrite pattern changes the graph.

A rewrite is a transaction. The pattern builds new nodes and constants with ``make_node`` /
``make_constant`` (pending: wired to their inputs but not in the graph), then calls ``replace``,
which either commits everything or, when the replacement is not allowed, undoes it and returns
``False`` — the graph is never left half-edited. Committing:

- inserts the pending nodes before the anchor (by default the producer of the first replaced value),
  tagged with the rule that made them and the nodes they replaced (``node.meta["irc.rule"]``,
  ``node.meta["irc.replaced"]``), so a numerical mismatch can be traced back to a rewrite;
- rewires every use of each old value to its new value; a new value built by this rewrite takes
  over the old value's name and type (tensors keep their names through fusions), and a graph
  output keeps its name (refused if the replacement is a graph input, an initializer or another
  output: that would rename the model's interface);
- erases the matched nodes that became dead.

The rewriter records what it touched so the driver can revisit exactly those nodes: the new nodes,
the readers of replaced values, the producers of erased nodes' inputs, and the remaining readers
of a value that an erased node read (a match refused because of that reader may now succeed).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from irlib import Graph, Model, Node, Tensor, Value

__all__ = ["PatternRewriter", "describe_node"]

PROVENANCE_RULE = "irc.rule"
PROVENANCE_REPLACED = "irc.replaced"
#: Readers of a value that lost one are revisited while it has at most this many uses left.
_FEW_USES = 4


def describe_node(node: Node) -> str:
    """A short, stable label: the node's name, or its op and first output name."""
    if node.name:
        return node.name
    out = node.outputs[0].name if node.outputs else "?"
    return f"{node.op_type}(%{out})"


class PatternRewriter:
    def __init__(self, model: Model | None, graph: Graph):
        self.model = model
        self.graph = graph
        self.rule_name = ""
        self.inserted = 0
        self.removed = 0
        self.touched: list[Node] = []
        self._pending_nodes: list[Node] = []
        self._pending_consts: list[Value] = []

    # -- building ---------------------------------------------------------------------------
    def begin(self, rule_name: str, graph: Graph | None = None) -> None:
        """Start a rewrite for ``rule_name`` (drops anything left pending)."""
        self.abort()
        self.rule_name = rule_name
        if graph is not None:
            self.graph = graph

    def make_node(self, op_type: str, inputs: Sequence[Value | None], attributes=None, *,
                  domain: str = "", num_outputs: int = 1, name: str = "") -> Node:
        """A new node, pending until ``replace`` commits it."""
        node = Node(op_type, inputs, attributes, domain=domain, num_outputs=num_outputs, name=name)
        self._pending_nodes.append(node)
        return node

    def make_constant(self, array, name: str | None = None) -> Value:
        """A new initializer holding ``array``, pending until ``replace`` commits it."""
        tensor = array if isinstance(array, Tensor) else Tensor(np.asarray(array))
        v = Value(name, const_value=tensor)
        self._pending_consts.append(v)
        return v

    def abort(self) -> None:
        """Drop the pending nodes and constants, unhooking their uses."""
        for node in self._pending_nodes:
            node.set_inputs([])
        self._pending_nodes.clear()
        self._pending_consts.clear()

    # -- committing -------------------------------------------------------------------------
    def can_replace(self, old: Value, new: Value) -> bool:
        if old is new:
            return True
        if not old.is_graph_output():
            return True
        if (new.is_graph_input() or new.is_initializer() or new.is_graph_output()
                or any(new is c for c in self._pending_consts)):
            return False
        producer = new.producer()
        if producer is not None and producer.graph is None:  # made by this rewrite
            return True
        # A graph's outputs are computed in that graph: an If/Loop body's output cannot become a
        # value of the enclosing graph (ONNX refuses it, and dce would not see it as used).
        return new.graph is old.graph

    def replace(self, old_values: Sequence[Value], new_values: Sequence[Value],
                matched: Sequence[Node] = (), anchor: Node | None = None) -> bool:
        """Commit: ``old_values[i]`` -> ``new_values[i]``, then erase dead ``matched`` nodes.

        Returns False (and changes nothing) when a replacement is not allowed.
        """
        if len(old_values) != len(new_values):
            raise ValueError("replace() needs as many new values as old ones")
        if not all(self.can_replace(o, n) for o, n in zip(old_values, new_values)):
            self.abort()
            return False
        if anchor is None:
            anchor = old_values[0].producer() if old_values else (matched[-1] if matched else None)
        graph = anchor.graph if anchor is not None else self.graph
        replaced = [describe_node(n) for n in matched]
        for node in self._pending_nodes:
            node.meta[PROVENANCE_RULE] = self.rule_name
            node.meta[PROVENANCE_REPLACED] = replaced
        pending_outputs = {id(v) for n in self._pending_nodes for v in n.outputs}
        for v in self._pending_consts:
            if v.const_value is not None and v.name is None:
                v.name = graph.fresh_name(f"{self.rule_name or 'const'}_c".replace("-", "_"))
            v.const_value.name = v.name
            graph.add_initializer(v)
        if self._pending_nodes:
            if anchor is not None:
                graph.insert_before(anchor, self._pending_nodes)
            else:
                graph.extend(self._pending_nodes)
        self.inserted += len(self._pending_nodes)
        self.touched.extend(self._pending_nodes)
        for old, new in zip(old_values, new_values):
            if old is new:
                continue
            self.touched.extend(old.users())
            if old.is_graph_output():
                old.replace_all_uses_with(new, replace_graph_outputs=True)
            else:
                if id(new) in pending_outputs and old.name:
                    name = old.name
                    old.name = graph.fresh_name(f"{name}_dead")
                    new.name = name
                    if new.type is None:
                        new.type = old.type
                old.replace_all_uses_with(new)
        self._pending_nodes = []
        self._pending_consts = []
        self.erase_dead(matched)
        return True

    def erase_dead(self, nodes: Sequence[Node]) -> int:
        """Erase those of ``nodes`` whose outputs are unused (in reverse order, so chains go;
        repeated while it erases something, for a DAG-shaped match listed in no useful order)."""
        count = 0
        pending = list(nodes)
        while pending:
            kept = [n for n in pending if n.graph is not None]
            erased = self._erase_dead_once(kept)
            count += erased
            if not erased:
                break
            pending = [n for n in kept if n.graph is not None]
        self.removed += count
        return count

    def _erase_dead_once(self, nodes: list[Node]) -> int:
        count = 0
        for node in reversed(nodes):
            if node.graph is None:
                continue
            if any(v.has_uses() or v.is_graph_output() for v in node.outputs):
                continue
            self.touched.extend(node.predecessors())
            inputs = [v for v in node.inputs if v is not None]
            node.graph.remove(node)
            count += 1
            # A value that lost a reader may now be an acceptable intermediate for a match rooted
            # at one of its remaining readers (MatMul+Add refused while a second reader existed).
            # Like MLIR's driver, revisit those readers, but only for values read a few times
            # left, so that erasing the readers of a value read 10,000 times stays linear.
            for v in inputs:
                if 0 < v.num_uses() <= _FEW_USES:
                    self.touched.extend(v.users())
        return count

    def replace_node(self, node: Node, new_values: Sequence[Value]) -> bool:
        """Replace all outputs of ``node`` and erase it (for hand-written patterns)."""
        return self.replace(node.outputs, new_values, matched=[node], anchor=node)
