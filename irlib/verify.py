"""The verifier: the invariants every pass must keep.

``verify(model)`` raises :class:`VerificationError` listing every problem found; each message
names the node (op type and name) and what is wrong. It checks:

- SSA: a value is defined once (node output, graph input, initializer), names unique per graph;
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
    _Checker(problems, domains).graph(graph, visible={})
    return problems


def _where(node: Node) -> str:
    return f"{node.qualified_op} node {node.name!r}" if node.name else f"{node.qualified_op} node"


class _Checker:
    def __init__(self, problems: list[str], domains: set[str] | None):
        self.problems = problems
        self.domains = domains

    def add(self, msg: str) -> None:
        self.problems.append(msg)

    def graph(self, g: Graph, visible: dict[int, Value]) -> None:
        """``visible``: values of enclosing graphs defined before the node holding ``g``."""
        gname = f"graph {g.name!r}"
        defined: dict[int, Value] = dict(visible)
        names: dict[str, str] = {}

        def define(v: Value, what: str) -> None:
            if v.name is None:
                self.add(f"{gname}: {what} has no name")
                return
            if v.name == "":
                return
            if v.name in names:
                self.add(f"{gname}: value name {v.name!r} is used twice ({names[v.name]} and {what})")
            else:
                names[v.name] = what
            defined[id(v)] = v

        for v in g.inputs:
            if v.producer() is not None:
                self.add(f"{gname}: input {v.name!r} is also produced by {_where(v.producer())}")
            define(v, "graph input")
        input_ids = {id(v) for v in g.inputs}
        for v in g.initializers:
            if v.producer() is not None:
                self.add(f"{gname}: initializer {v.name!r} is also produced by {_where(v.producer())}")
            if id(v) not in input_ids:
                define(v, "initializer")
            self.constant(v, gname)
        for v in g.meta.get("sparse_values", ()):
            define(v, "sparse initializer")

        count = 0
        for node in g:
            count += 1
            where = f"{gname}: {_where(node)}"
            if node.graph is not g:
                self.add(f"{where} does not point back to its graph")
            if self.domains is not None and node.domain not in self.domains:
                self.add(f"{where} uses domain {node.domain or 'ai.onnx'!r}, which the model does not import")
            for i, v in enumerate(node.inputs):
                if v is None:
                    continue
                if (node, i) not in v._uses:
                    self.add(f"{where}: input {i} ({v.name!r}) does not record this use")
                if id(v) not in defined:
                    if v.name == "":
                        self.add(f"{where}: input {i} reads an optional output that is not produced")
                    elif v.producer() is not None and v.producer().graph is g:
                        self.add(f"{where}: input {i} ({v.name!r}) is used before it is defined"
                                 f" by {_where(v.producer())} (cycle or wrong order)")
                    else:
                        self.add(f"{where}: input {i} ({v.name!r}) is not defined in this graph"
                                 " or an enclosing one")
            for name, a in node.attributes.items():
                self.attribute(a, name, where, node)
                for sub in a.subgraphs():
                    self.graph(sub, defined)
            for i, v in enumerate(node.outputs):
                if v.producer() is not node or v.index != i:
                    self.add(f"{where}: output {i} ({v.name!r}) does not point back to its producer")
                if v.name == "" and v.has_uses():
                    self.add(f"{where}: output {i} has no name but is read")
                define(v, f"output of {_where(node)}")
                self.uses(v, gname)
        if count != len(g):
            self.add(f"{gname}: node count {len(g)} does not match the {count} nodes in the list")
        for v in list(g.inputs) + g.initializers:
            self.uses(v, gname)
        for i, v in enumerate(g.outputs):
            if not isinstance(v, Value):
                self.add(f"{gname}: output {i} is {type(v).__name__}, not a Value")
            elif id(v) not in defined:
                self.add(f"{gname}: output {i} ({v.name!r}) is not defined")

    def uses(self, v: Value, gname: str) -> None:
        for node, i in v._uses:
            if node._removed or node.graph is None:
                self.add(f"{gname}: value {v.name!r} records a use by removed {_where(node)}")
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

    def attribute(self, a: Attribute, key: str, where: str, node: Node) -> None:
        if not isinstance(a, Attribute):
            self.add(f"{where}: attribute {key!r} is {type(a).__name__}, not an Attribute")
            return
        if a.name != key:
            self.add(f"{where}: attribute stored as {key!r} is named {a.name!r}")
        if not a.name:
            self.add(f"{where}: an attribute has an empty name")
        if a.ref_attr_name:
            return
        t, val = a.type, a.value
        ok = {
            AttrType.FLOAT: lambda x: isinstance(x, float),
            AttrType.INT: lambda x: isinstance(x, int) and not isinstance(x, bool),
            AttrType.STRING: lambda x: isinstance(x, (str, bytes)),
            AttrType.TENSOR: lambda x: isinstance(x, Tensor),
            AttrType.GRAPH: lambda x: isinstance(x, Graph),
            AttrType.FLOATS: lambda x: isinstance(x, tuple) and all(isinstance(e, float) for e in x),
            AttrType.INTS: lambda x: isinstance(x, tuple) and all(
                isinstance(e, int) and not isinstance(e, bool) for e in x),
            AttrType.STRINGS: lambda x: isinstance(x, tuple) and all(isinstance(e, (str, bytes)) for e in x),
            AttrType.TENSORS: lambda x: isinstance(x, tuple) and all(isinstance(e, Tensor) for e in x),
            AttrType.GRAPHS: lambda x: isinstance(x, tuple) and all(isinstance(e, Graph) for e in x),
        }.get(t)
        if t is AttrType.UNDEFINED:
            self.add(f"{where}: attribute {a.name!r} has no type")
        elif ok is not None and not ok(val):
            self.add(f"{where}: attribute {a.name!r} is declared {t.name} but holds {val!r:.60}")
        for g in a.subgraphs():
            if g.parent_node is not node:
                self.add(f"{where}: subgraph {g.name!r} of attribute {a.name!r} does not point back to its node")
