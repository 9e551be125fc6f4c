"""The verifier: the invariants every pass must keep.

``verify(model)`` raises :class:`VerificationError` listing every problem found; each message
names the node (op type and name) and what is wrong. It checks:

- SSA: a value is defined once (node output, graph input, initializer); names are unique in a
  graph and do not shadow a name of an enclosing graph;
- structure: the node list is well linked, nodes, inputs and initializers point back to their
  graph, outputs to their producer, subgraphs to the node holding them;
- use-def chains: every input's use is recorded on the value and every recorded use is real;
- definition before use: every input is defined in the graph or an enclosing graph, by a node
  earlier in the order (so the graph is acyclic and sorted);
- graph outputs are defined; optional outputs that are not produced (empty name) are not read;
- constants agree with their declared type; attributes are well formed;
- every node's domain is imported by the model.

It is linear in the size of the model, cheap enough to run after every pass.
"""

from __future__ import annotations

from irlib.attribute import Attribute, AttrType
from irlib.errors import VerificationError
from irlib.graph import Graph, Node, Value
from irlib.model import Model
from irlib.tensor import Tensor
from irlib.types import TensorType

__all__ = ["verify", "check"]


def verify(model: Model | Graph) -> None:
    """Raise :class:`VerificationError` if ``model`` breaks an IR invariant."""
    problems = check(model)
    if problems:
        raise VerificationError(problems)


def check(model: Model | Graph) -> list[str]:
    """All the problems of ``model``, as one-line messages (empty when it is well formed)."""
    if isinstance(model, Model):
        graph, domains = model.graph, set(model.opset_imports)
        if domains & {"", "ai.onnx"}:
            domains |= {"", "ai.onnx"}
        domains |= {f.domain for f in model.functions}
    else:
        graph, domains = model, None
    problems: list[str] = []
    _Checker(problems, domains).graph(graph, outer=None)
    return problems


def _where(node: Node) -> str:
    """``Relu node 'r1'``; an unnamed node is told by its first output: ``Relu node -> %y``."""
    if node.name:
        return f"{node.qualified_op} node {node.name!r}"
    outs = node.outputs
    return f"{node.qualified_op} node -> %{outs[0].name}" if outs else f"{node.qualified_op} node"


def _what(what) -> str:
    return f"output of {_where(what)}" if isinstance(what, Node) else what


class _Scope:
    """The values a graph defines so far (by identity) and their names, chained to the scope of
    the enclosing graph as it stood when the node holding the subgraph was reached."""

    __slots__ = ("ids", "names", "outer")

    def __init__(self, outer: _Scope | None):
        self.ids: set[int] = set()
        self.names: dict[str, str | Node] = {}
        self.outer = outer

    def has(self, v: Value) -> bool:
        s = self
        while s is not None:
            if id(v) in s.ids:
                return True
            s = s.outer
        return False

    def outer_name(self, name: str) -> str | Node | None:
        s = self.outer
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.outer
        return None


class _Checker:
    def __init__(self, problems: list[str], domains: set[str] | None):
        self.problems = problems
        self.domains = domains

    def add(self, msg: str) -> None:
        self.problems.append(msg)

    def graph(self, g: Graph, outer: _Scope | None) -> None:
        """Check ``g``; ``outer`` holds the values visible from enclosing graphs."""
        gname = f"graph {g.name!r}"
        scope = _Scope(outer)
        defined, names = scope.ids, scope.names

        def define(v: Value, what: str | Node) -> None:
            """Record a definition; ``what`` is a description, or the node producing ``v``."""
            name = v._name
            if name is None:
                self.add(f"{gname}: {_what(what)} has no name")
                defined.add(id(v))
                return
            if name == "":
                return
            if name in names:
                self.add(f"{gname}: value name {name!r} is used twice"
                         f" ({_what(names[name])} and {_what(what)})")
            else:
                names[name] = what
                if outer is not None:
                    shadowed = scope.outer_name(name)
                    if shadowed is not None:
                        self.add(f"{gname}: value name {name!r} ({_what(what)}) shadows the"
                                 f" {_what(shadowed)} of an enclosing graph")
            defined.add(id(v))

        for v in g.inputs:
            if not isinstance(v, Value):
                self.add(f"{gname}: an input is {type(v).__name__}, not a Value")
                continue
            if v.producer() is not None:
                self.add(f"{gname}: input {v.name!r} is also produced by {_where(v.producer())}")
            elif v._graph is not g:
                self.add(f"{gname}: input {v.name!r} does not point back to its graph")
            define(v, "graph input")
        input_ids = {id(v) for v in g.inputs}
        for v in g.initializers:
            if v.producer() is not None:
                self.add(f"{gname}: initializer {v.name!r} is also produced by {_where(v.producer())}")
            elif v._graph is not g:
                self.add(f"{gname}: initializer {v.name!r} does not point back to its graph")
            if id(v) not in input_ids:
                define(v, "initializer")
            self.constant(v, gname)
        for v in g.meta.get("sparse_values", ()):
            define(v, "sparse initializer")

        count = 0
        seen: set[int] = set()
        prev = g._root
        node = g._root._next
        while node is not g._root:
            if node._prev is not prev:
                self.add(f"{gname}: {_where(node)}: the node list is broken (its back link is wrong)")
            if id(node) in seen:
                self.add(f"{gname}: {_where(node)} appears twice in the node list")
                break
            seen.add(id(node))
            prev, node = node, node._next
            if prev._removed:
                self.add(f"{gname}: {_where(prev)} was removed but is still in the node list")
                continue
            count += 1
            self.node(prev, g, gname, scope, define)
        if count != len(g):
            self.add(f"{gname}: node count {len(g)} does not match the {count} nodes in the list")
        for v in list(g.inputs) + g.initializers:
            if isinstance(v, Value):
                self.uses(v, gname)
        for i, v in enumerate(g.outputs):
            if not isinstance(v, Value):
                self.add(f"{gname}: output {i} is {type(v).__name__}, not a Value")
            elif not scope.has(v):
                self.add(f"{gname}: output {i} ({v.name!r}) is not defined")

    def node(self, node: Node, g: Graph, gname: str, scope: _Scope, define) -> None:
        # Runs once per node of the model: the checks that pass are written to cost little (no
        # message is formatted, the common cases of ``define`` and ``uses`` are inlined).
        if node.graph is not g:
            self.add(f"{gname}: {_where(node)} does not point back to its graph")
        if self.domains is not None and node.domain not in self.domains:
            self.add(f"{gname}: {_where(node)} uses domain {node.domain or 'ai.onnx'!r},"
                     " which the model does not import")
        defined = scope.ids
        i = -1
        for v in node._inputs:
            i += 1
            if v is None:
                continue
            if not isinstance(v, Value):
                self.add(f"{gname}: {_where(node)}: input {i} is {type(v).__name__}, not a Value")
                continue
            if (node, i) not in v._uses:
                self.add(f"{gname}: {_where(node)}: input {i} ({v.name!r}) does not record this use")
            if id(v) not in defined and not scope.has(v):
                where = f"{gname}: {_where(node)}"
                if v.name == "":
                    self.add(f"{where}: input {i} reads an optional output that is not produced")
                elif v.producer() is not None and v.producer().graph is g:
                    self.add(f"{where}: input {i} ({v.name!r}) is used before it is defined"
                             f" by {_where(v.producer())} (cycle or wrong order)")
                else:
                    self.add(f"{where}: input {i} ({v.name!r}) is not defined in this graph"
                             " or an enclosing one")
        if node.attributes:
            for name, a in node.attributes.items():
                self.attribute(a, name, gname, node)
                if isinstance(a, Attribute) and (a.type is AttrType.GRAPH
                                                 or a.type is AttrType.GRAPHS):
                    for sub in a.subgraphs():
                        if isinstance(sub, Graph):
                            self.graph(sub, scope)
        names = scope.names
        no_outer = scope.outer is None  # nothing to shadow: ``define`` has one check left
        i = -1
        for v in node._outputs:
            i += 1
            if v._producer is not node or v._index != i:
                self.add(f"{gname}: {_where(node)}: output {i} ({v.name!r}) does not point back"
                         " to its producer")
            name = v._name
            if name and no_outer and name not in names:
                names[name] = node  # ``define(v, node)`` where it finds nothing wrong
                defined.add(id(v))
            else:
                if name == "" and v._uses:
                    self.add(f"{gname}: {_where(node)}: output {i} has no name but is read")
                define(v, node)
            for user, j in v._uses:
                if user._removed or user.graph is None or j >= len(user._inputs) \
                        or user._inputs[j] is not v:
                    self.uses(v, gname)  # reports each wrong use
                    break

    def uses(self, v: Value, gname: str) -> None:
        for node, i in v._uses:
            if node._removed or node.graph is None:
                self.add(f"{gname}: value {v.name!r} records a use by {_where(node)},"
                         " which is not in a graph (removed or never inserted)")
            elif i >= len(node.inputs) or node.inputs[i] is not v:
                self.add(f"{gname}: value {v.name!r} records a use as input {i} of {_where(node)},"
                         " which reads something else")

    def constant(self, v: Value, gname: str) -> None:
        t = v.const_value
        if not isinstance(t, Tensor):
            self.add(f"{gname}: initializer {v.name!r} holds {type(t).__name__}, not a Tensor")
            return
        if isinstance(v.type, TensorType):
            if v.type.dtype != t.dtype:
                self.add(f"{gname}: initializer {v.name!r} is declared {v.type.dtype.short}"
                         f" but holds {t.dtype.short} data")
            if v.type.shape is not None and len(v.type.shape) != len(t.shape):
                self.add(f"{gname}: initializer {v.name!r} is declared with rank {len(v.type.shape)}"
                         f" but holds a rank-{len(t.shape)} tensor")
            elif v.type.shape is not None and any(
                    isinstance(d, int) and d != s for d, s in zip(v.type.shape, t.shape)):
                self.add(f"{gname}: initializer {v.name!r} is declared {v.type}"
                         f" but holds shape {list(t.shape)}")

    def attribute(self, a: Attribute, key: str, gname: str, node: Node) -> None:
        if not isinstance(a, Attribute):
            self.add(f"{gname}: {_where(node)}: attribute {key!r} is {type(a).__name__},"
                     " not an Attribute")
            return
        name, t = a.name, a.type
        ok = _ATTR_CHECKS.get(t)
        if name == key and name and not a.ref_attr_name and ok is not None and ok(a.value) \
                and t is not AttrType.GRAPH and t is not AttrType.GRAPHS:
            return  # the common case: nothing to say
        where = f"{gname}: {_where(node)}"
        if name != key:
            self.add(f"{where}: attribute stored as {key!r} is named {name!r}")
        if not name:
            self.add(f"{where}: an attribute has an empty name")
        if a.ref_attr_name:
            return
        val = a.value
        if t is AttrType.UNDEFINED:
            self.add(f"{where}: attribute {name!r} has no type")
        elif ok is not None and not ok(val):
            self.add(f"{where}: attribute {name!r} is declared {t.name} but holds {val!r:.60}")
        for g in a.subgraphs():
            if isinstance(g, Graph) and g.parent_node is not node:
                self.add(f"{where}: subgraph {g.name!r} of attribute {name!r} does not point"
                         " back to its node")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


#: What an attribute's value must be, by type (the types not listed are not checked).
_ATTR_CHECKS = {
    AttrType.FLOAT: lambda x: isinstance(x, float),
    AttrType.INT: _is_int,
    AttrType.STRING: lambda x: isinstance(x, (str, bytes)),
    AttrType.TENSOR: lambda x: isinstance(x, Tensor),
    AttrType.GRAPH: lambda x: isinstance(x, Graph),
    AttrType.FLOATS: lambda x: isinstance(x, tuple) and all(isinstance(e, float) for e in x),
    AttrType.INTS: lambda x: isinstance(x, tuple) and all(_is_int(e) for e in x),
    AttrType.STRINGS: lambda x: isinstance(x, tuple) and all(isinstance(e, (str, bytes)) for e in x),
    AttrType.TENSORS: lambda x: isinstance(x, tuple) and all(isinstance(e, Tensor) for e in x),
    AttrType.GRAPHS: lambda x: isinstance(x, tuple) and all(isinstance(e, Graph) for e in x),
}
