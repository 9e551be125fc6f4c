"""The IR's core: ``Value``, ``Node`` and ``Graph``.

The graph is in SSA form. A ``Value`` is defined once: by a node (as one of its outputs), as a
graph input, or as a constant (an initializer, with ``const_value`` set). A value records its uses
as ``(node, input_index)`` pairs, and every mutation goes through methods that keep those records
right, so passes never see a stale use-def chain. Nothing is keyed by a tensor's name: names are
for display and export.

A ``Graph`` keeps its nodes in a doubly linked list in execution order: appending, inserting and
removing are O(1), and iterating while nodes are removed is safe (a removed node keeps pointing to
its old successor). ``Graph.sort()`` recomputes a topological order in O(n log n), keeping the
current order wherever the dependencies allow.

Value names are unique in the whole model (ONNX export needs that): a value joining a graph without
a name gets a fresh one, a subgraph joining a model has its clashing names renamed (subgraph inputs
and outputs are matched by position), and ``Graph.fresh_name`` never hands out a name in use.

Subgraphs (the bodies of If, Loop, Scan) are ``Graph`` objects held in node attributes. A node in a
subgraph may use a value of an enclosing graph directly: that value then lists the inner node among
its uses, so ``replace_all_uses_with`` and dead-code analyses see through subgraph boundaries.

Example::

    x = Value("x", TensorType(DType.FLOAT, (1, 4)))
    g = Graph("g", inputs=[x])
    relu = g.append(Node("Relu", [x]))
    g.outputs.append(relu.output)
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
from typing import Iterable, Iterator, NamedTuple, Sequence

from irlib.attribute import Attribute
from irlib.tensor import Tensor
from irlib.types import TensorType, Type

__all__ = ["Value", "Node", "Graph", "Use"]


_new = object.__new__  # fast constructors below: __new__ without __init__


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a whole model is built or written.

    Import and export allocate a few objects per node and free almost none, so each automatic
    collection finds nothing while the older generations it scans keep growing: on a 100k-node
    model that is a third of the import. Reference counting still frees what it can; the
    collector is switched back on (if it was on) on the way out, error or not. It is
    process-wide: another thread's cycles wait for the end of the import to be collected.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Use(NamedTuple):
    """One use of a value: ``node.inputs[index] is value``."""

    node: "Node"
    index: int


class Value:
    """A tensor (or sequence, optional ...) flowing through the graph.

    ``name`` is ``None`` until the value joins a graph, which then gives it a fresh name;
    ``""`` marks an optional node output that is not produced.
    """

    __slots__ = (
        "_name", "type", "doc_string", "metadata_props", "meta", "const_value",
        "_producer", "_index", "_uses", "_graph",
    )

    def __init__(self, name: str | None = None, type: Type | None = None, *,
                 const_value: Tensor | None = None, doc_string: str = ""):
        self._name = name
        self.type = type
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = {}
        self.meta: dict = {}
        self.const_value = const_value
        self._producer: Node | None = None
        self._index: int | None = None
        self._uses: dict[tuple[Node, int], None] = {}
        self._graph: Graph | None = None  # set for graph inputs and initializers
        if const_value is not None and type is None:
            self.type = TensorType(const_value.dtype, const_value.shape)

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, name: str | None) -> None:
        # Renaming a value that is already in a graph records the new name, so that
        # ``Graph.fresh_name`` never hands it out again.
        self._name = name
        if name:
            g = self.graph
            if g is not None:
                names = g.root._names
                if names is not None:
                    names[name] = self

    # -- definition -------------------------------------------------------------------------
    def producer(self) -> Node | None:
        """The node that computes this value, or ``None`` for inputs and constants."""
        return self._producer

    @property
    def index(self) -> int | None:
        """Position among the producer's outputs."""
        return self._index

    @property
    def graph(self) -> Graph | None:
        """The graph that defines this value."""
        if self._producer is not None:
            return self._producer.graph
        return self._graph

    def is_graph_input(self) -> bool:
        g = self._graph
        return g is not None and self._producer is None and any(v is self for v in g.inputs)

    def is_initializer(self) -> bool:
        g = self._graph
        return g is not None and self in g._initializers

    def is_graph_output(self) -> bool:
        g = self.graph
        return g is not None and any(v is self for v in g.outputs)

    def is_constant(self) -> bool:
        """True for an initializer that is not also a graph input (which callers may override)."""
        return self.const_value is not None and not self.is_graph_input()

    # -- uses -------------------------------------------------------------------------------
    def uses(self) -> list[Use]:
        """A snapshot of the uses, safe to iterate while rewiring them."""
        return [Use(n, i) for n, i in self._uses]

    def users(self) -> list[Node]:
        """The distinct nodes that read this value, in first-use order."""
        return list(dict.fromkeys(n for n, _ in self._uses))

    def has_uses(self) -> bool:
        return bool(self._uses)

    def num_uses(self) -> int:
        return len(self._uses)

    def replace_all_uses_with(self, other: Value, replace_graph_outputs: bool = False) -> None:
        """Make every reader of this value read ``other`` instead.

        A graph output is rewired only with ``replace_graph_outputs=True``: then ``other`` takes
        this value's place in the graph's outputs *and its name* (the model's interface keeps its
        names), and this value is renamed. That is refused when ``other`` is itself a graph input,
        an initializer or already an output, or when this value is also a graph input, since
        those names are part of the interface too. A refusal is raised before anything changes.

        >>> y.replace_all_uses_with(z, replace_graph_outputs=True)   # doctest: +SKIP
        """
        if other is self:
            return
        if not isinstance(other, Value):
            raise TypeError(f"cannot replace {self.name!r} with {type(other).__name__}, not a Value")
        g = self.graph
        is_output = g is not None and any(v is self for v in g.outputs)
        if is_output:
            if not replace_graph_outputs:
                raise ValueError(
                    f"value {self.name!r} is a graph output; pass replace_graph_outputs=True"
                )
            if other.is_graph_input() or other.is_initializer() or other.is_graph_output() or \
                    any(v is other for v in g.outputs):
                raise ValueError(
                    f"cannot make {other.name!r} stand in for graph output {self.name!r}:"
                    " it is already an input, initializer or output of the graph"
                )
            if self.is_graph_input() or self.is_initializer():
                raise ValueError(
                    f"cannot replace graph output {self.name!r}: it is also a graph input or"
                    " initializer, whose name cannot move to another value"
                )
        for node, i in list(self._uses):
            node.replace_input_with(i, other)
        if is_output:
            old_name = self.name
            self.name = g.fresh_name(f"{old_name}_replaced") if old_name else None
            other.name = old_name
            if other.type is None:
                other.type = self.type
            if not other.doc_string:
                other.doc_string = self.doc_string
            g.outputs[:] = [other if v is self else v for v in g.outputs]

    # -- convenience ------------------------------------------------------------------------
    @property
    def dtype(self):
        return getattr(self.type, "dtype", None)

    @property
    def shape(self):
        return getattr(self.type, "shape", None)

    def __repr__(self) -> str:
        t = f": {self.type}" if self.type is not None else ""
        return f"Value(%{self.name}{t})"


class _Sentinel:
    __slots__ = ("_prev", "_next")


class Node:
    """An operator application: ``outputs = op_type(inputs) {attributes}``.

    ``inputs`` holds values or ``None`` (an omitted optional input). Inputs are changed only
    through ``replace_input_with`` / ``set_inputs`` so that use lists stay right. ``meta`` is a
    free dict that survives passes (provenance, backend assignment, quantization parameters).
    """

    __slots__ = (
        "op_type", "domain", "name", "overload", "doc_string", "attributes", "metadata_props",
        "meta", "extra", "_inputs", "_outputs", "graph", "_prev", "_next", "_removed",
    )

    def __init__(
        self,
        op_type: str,
        inputs: Sequence[Value | None] = (),
        attributes: dict | Iterable[Attribute] | None = None,
        *,
        domain: str = "",
        name: str = "",
        outputs: Sequence[Value | str | None] | None = None,
        num_outputs: int = 1,
        overload: str = "",
        doc_string: str = "",
    ):
        # Check everything before recording anything, so that a refused node leaves no trace.
        inputs = tuple(inputs)
        for i, v in enumerate(inputs):
            if v is not None and not isinstance(v, Value):
                raise TypeError(f"input {i} of {op_type} is {type(v).__name__}, not a Value")
        if outputs is None:
            outs = (Value(),) if num_outputs == 1 else tuple([Value() for _ in range(num_outputs)])
        else:
            outs = tuple([o if isinstance(o, Value) else Value(o) for o in outputs])
            for v in outs:
                if v._producer is not None:
                    raise ValueError(f"value {v.name!r} already has a producer")
            if len(set(map(id, outs))) != len(outs):
                raise ValueError(f"{op_type} node lists the same output value twice")
        attrs = []
        if attributes:
            if isinstance(attributes, dict):
                attrs = [Attribute.infer(k, v) for k, v in attributes.items()]
            else:
                attrs = list(attributes)
        self.op_type = op_type
        self.domain = domain
        self.name = name
        self.overload = overload
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = {}
        self.meta: dict = {}
        self.extra = None  # opaque ONNX fields irc does not model (device_configurations)
        self.graph: Graph | None = None
        self._prev = self._next = None
        self._removed = False
        self.attributes: dict[str, Attribute] = {}
        for a in attrs:
            self.set_attr(a)
        self._inputs: tuple[Value | None, ...] = inputs
        i = 0
        for v in inputs:
            if v is not None:
                v._uses[(self, i)] = None
            i += 1
        i = 0
        for v in outs:
            v._producer = self
            v._index = i
            i += 1
        self._outputs: tuple[Value, ...] = outs

    @classmethod
    def _bare(cls, op_type: str, domain: str, name: str, overload: str, doc_string: str,
              output_names) -> Node:
        """A node with no inputs and no attributes whose outputs are new values named
        ``output_names``, outside any graph. What ``__init__`` checks holds by construction
        (fresh outputs, no attributes to infer), so the importer, which makes one per ONNX node,
        skips it: ~3x cheaper. Keep it in step with ``__init__`` and ``Value.__init__`` when a
        slot is added (``tests/test_io_fast_paths.py`` checks that every slot is set)."""
        node = _new(cls)
        node.op_type = op_type
        node.domain = domain
        node.name = name
        node.overload = overload
        node.doc_string = doc_string
        node.metadata_props = {}
        node.meta = {}
        node.extra = node.graph = node._prev = node._next = None
        node._removed = False
        node.attributes = {}
        node._inputs = ()
        outs = []
        i = 0
        for out_name in output_names:
            v = _new(Value)
            v._name = out_name
            v.type = v.const_value = v._graph = None
            v.doc_string = ""
            v.metadata_props = {}
            v.meta = {}
            v._uses = {}
            v._producer = node
            v._index = i
            outs.append(v)
            i += 1
        node._outputs = tuple(outs)
        return node

    # -- inputs and outputs -----------------------------------------------------------------
    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[Value, ...]:
        return self._outputs

    @property
    def output(self) -> Value:
        """The only output (raises if the node has several)."""
        if len(self._outputs) != 1:
            raise ValueError(f"{self.op_type} node {self.name!r} has {len(self._outputs)} outputs")
        return self._outputs[0]

    def replace_input_with(self, index: int, value: Value | None) -> None:
        """Make input ``index`` read ``value`` (``None``: omit an optional input)."""
        n = len(self._inputs)
        if not -n <= index < n:
            raise IndexError(f"{self.op_type} node {self.name!r} has no input {index}")
        index %= n
        if value is not None and not isinstance(value, Value):
            raise TypeError(f"input {index} of {self.op_type} is {type(value).__name__}, not a Value")
        old = self._inputs[index]
        if old is value:
            return
        if not self._removed:
            if old is not None:
                old._uses.pop((self, index), None)
            if value is not None:
                value._uses[(self, index)] = None
        self._inputs = self._inputs[:index] + (value,) + self._inputs[index + 1:]

    def set_inputs(self, values: Sequence[Value | None]) -> None:
        """Replace the whole input list (the number of inputs may change)."""
        values = tuple(values)
        for i, v in enumerate(values):
            if v is not None and not isinstance(v, Value):
                raise TypeError(f"input {i} of {self.op_type} is {type(v).__name__}, not a Value")
        if not self._removed:
            for i, old in enumerate(self._inputs):
                if old is not None:
                    old._uses.pop((self, i), None)
            for i, v in enumerate(values):
                if v is not None:
                    v._uses[(self, i)] = None
        self._inputs = values

    def append_input(self, value: Value | None) -> None:
        """Add one more input at the end (``None``: an omitted optional input)."""
        if value is not None and not isinstance(value, Value):
            raise TypeError(f"input of {self.op_type} is {type(value).__name__}, not a Value")
        self._inputs = self._inputs + (value,)
        if value is not None and not self._removed:
            value._uses[(self, len(self._inputs) - 1)] = None

    # -- attributes -------------------------------------------------------------------------
    def attr(self, name: str, default=None):
        """The value of attribute ``name``, or ``default`` when absent."""
        a = self.attributes.get(name)
        return default if a is None else a.value

    def set_attr(self, name_or_attr, value=None) -> Attribute:
        """Set an attribute (an :class:`Attribute`, or a name and a Python value to infer it from).

        A subgraph that the new attribute replaces is detached: the uses its nodes made of outer
        values are dropped. A new subgraph is attached: its uses of outer values are recorded and,
        if this node is in a graph, its value names are made unique in the model.
        """
        a = name_or_attr if isinstance(name_or_attr, Attribute) else Attribute.infer(name_or_attr, value)
        old = self.attributes.get(a.name)
        new_subs = a.subgraphs()
        if old is not None:
            for g in old.subgraphs():
                if not any(g is n for n in new_subs):
                    _detach_subgraph(g)
        self.attributes[a.name] = a
        for g in new_subs:
            g.parent_node = self
            if not self._removed:
                for user, i, v in _subgraph_outer_uses(g):
                    v._uses[(user, i)] = None
            if self.graph is not None and not self._removed:
                self.graph._unique_names(g)
        return a

    def remove_attr(self, name: str) -> Attribute | None:
        """Delete attribute ``name`` (detaching its subgraphs) and return it, or ``None``."""
        a = self.attributes.pop(name, None)
        if a is not None:
            for g in a.subgraphs():
                _detach_subgraph(g)
        return a

    def subgraphs(self) -> Iterator[Graph]:
        for a in self.attributes.values():
            yield from a.subgraphs()

    # -- neighbours -------------------------------------------------------------------------
    def predecessors(self) -> list[Node]:
        """Distinct producers of this node's inputs."""
        return list(dict.fromkeys(
            v._producer for v in self._inputs if v is not None and v._producer is not None))

    def successors(self) -> list[Node]:
        """Distinct readers of this node's outputs."""
        return list(dict.fromkeys(n for v in self._outputs for n, _ in v._uses))

    @property
    def qualified_op(self) -> str:
        """``op_type`` prefixed by its domain unless it is ONNX's default domain."""
        return self.op_type if self.domain in ("", "ai.onnx") else f"{self.domain}.{self.op_type}"

    def __repr__(self) -> str:
        ins = ", ".join("" if v is None else f"%{v.name}" for v in self._inputs)
        outs = ", ".join(f"%{v.name}" for v in self._outputs)
        return f"Node({outs} = {self.qualified_op}({ins}), name={self.name!r})"


class Graph:
    """A list of nodes in execution order, with inputs, outputs and initializers.

    Values get a fresh name, unique in the whole model, when they join the graph::

        g = Graph("main", inputs=[Value("x", TensorType(DType.FLOAT, (4,)))])
        two = g.constant(np.array(2.0, np.float32))          # an initializer named "v_0"
        mul = g.append(Node("Mul", [g.inputs[0], two]))      # output named "mul_1"
        g.outputs.append(mul.output)
    """

    def __init__(
        self,
        name: str = "",
        inputs: Sequence[Value] = (),
        outputs: Sequence[Value] = (),
        nodes: Iterable[Node] = (),
        initializers: Iterable[Value] = (),
        doc_string: str = "",
    ):
        self.name = name
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = {}
        self.meta: dict = {}
        self.extra = None  # opaque ONNX fields: sparse initializers, quantization annotations
        self.parent_node: Node | None = None
        self.inputs: list[Value] = []
        self.outputs: list[Value] = list(outputs)
        self._initializers: dict[Value, None] = {}
        self._root = _Sentinel()
        self._root._prev = self._root._next = self._root
        self._len = 0
        self._names: dict[str, Value | None] | None = None
        self._counter = itertools.count()
        for v in inputs:
            self.add_input(v)
        for v in initializers:
            self.add_initializer(v)
        self.extend(nodes)

    # -- values -----------------------------------------------------------------------------
    def add_input(self, value: Value) -> Value:
        """Append ``value`` to the graph's inputs (naming it if it has no name) and return it."""
        if value._producer is not None:
            raise ValueError(f"value {value.name!r} is produced by a node; it cannot be an input")
        value._graph = self
        self.inputs.append(value)
        self._name(value)
        return value

    def add_initializer(self, value: Value) -> Value:
        """Register a constant value (``value.const_value`` must be set)."""
        if value.const_value is None:
            raise ValueError(f"initializer {value.name!r} has no const_value")
        value._graph = self
        self._initializers[value] = None
        self._name(value)
        return value

    def remove_initializer(self, value: Value) -> None:
        """Drop an initializer. One that is only a constant must be unused; one that is also a
        graph input (a default value) just loses its default and stays an input."""
        if value not in self._initializers:
            raise ValueError(f"{value.name!r} is not an initializer of graph {self.name!r}")
        if value.is_graph_input():
            del self._initializers[value]
            value.const_value = None
            return
        if value.has_uses() or value.is_graph_output():
            raise ValueError(f"initializer {value.name!r} is still used")
        del self._initializers[value]
        value._graph = None

    @property
    def initializers(self) -> list[Value]:
        return list(self._initializers)

    def constant(self, array, name: str | None = None) -> Value:
        """Add a new initializer holding ``array`` (a numpy array or ``Tensor``) and return it."""
        tensor = array if isinstance(array, Tensor) else Tensor(array)
        v = Value(name, const_value=tensor)
        self.add_initializer(v)
        tensor.name = v.name
        return v

    def values(self) -> Iterator[Value]:
        """Every value this graph defines: inputs, initializers, then node outputs in order."""
        seen = set()
        for v in itertools.chain(self.inputs, self._initializers):
            if id(v) not in seen:
                seen.add(id(v))
                yield v
        for n in self:
            yield from n.outputs

    # -- names ------------------------------------------------------------------------------
    @property
    def root(self) -> Graph:
        """The outermost graph containing this one."""
        g = self
        while g.parent_node is not None and g.parent_node.graph is not None:
            g = g.parent_node.graph
        return g

    def fresh_name(self, prefix: str = "v") -> str:
        """A value name not used anywhere in the model that holds this graph (subgraphs included);
        it is reserved, so the next call returns another one."""
        root = self.root
        names = root._registry()
        while True:
            name = f"{prefix}_{next(root._counter)}"
            if name not in names:
                names[name] = None
                return name

    def _registry(self) -> dict[str, Value | None]:
        """The root graph's record of the value names in use: name -> the value holding it
        (``None`` for a name reserved by ``fresh_name``). Built on first need, then kept up to
        date by insertion, renaming and subgraph attachment; it may keep names no longer used."""
        if self._names is None:
            self._names = {v._name: v for g in self.all_graphs() for v in g.values() if v._name}
        return self._names

    def _name(self, value: Value, prefix: str = "v") -> None:
        if value._name is None:
            value._name = name = self.fresh_name(prefix)
            self.root._names[name] = value
        elif value._name:
            names = self.root._names
            if names is not None:
                names[value._name] = value

    # -- nodes ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        node = self._root._next
        while node is not self._root:
            if not node._removed:
                yield node
            node = node._next

    def __reversed__(self) -> Iterator[Node]:
        node = self._root._prev
        while node is not self._root:
            if not node._removed:
                yield node
            node = node._prev

    def __len__(self) -> int:
        return self._len

    @property
    def nodes(self) -> list[Node]:
        """A snapshot list of the nodes, in order."""
        return list(self)

    def _check_new(self, nodes: list[Node]) -> None:
        """Refuse (before anything changes) nodes that are already in a graph or listed twice."""
        seen = set()
        for n in nodes:
            if not isinstance(n, Node):
                raise TypeError(f"cannot insert {type(n).__name__}, not a Node")
            if n.graph is not None and not n._removed:
                raise ValueError(f"{n.op_type} node {n.name!r} already belongs to a graph")
            if n in seen:
                raise ValueError(f"{n.op_type} node {n.name!r} is listed twice")
            seen.add(n)

    def _adopt(self, node: Node) -> None:
        """Make ``node`` part of this graph (not yet linked): name its outputs, re-record the uses
        of a node that was removed before, make its subgraphs' names unique in the model."""
        node.graph = self
        if node._removed:
            node._removed = False
            _reconnect(node)
        root = self.root
        prefix = None
        for v in node._outputs:
            name = v._name
            if name is None:
                if prefix is None:
                    prefix = (node.name or node.op_type).lower().replace("/", "_")
                name = v._name = self.fresh_name(prefix)
                root._names[name] = v
            elif name and root._names is not None:
                root._names[name] = v
        if node.attributes:
            for g in node.subgraphs():
                self._unique_names(g)
        self._len += 1

    def _unique_names(self, sub: Graph) -> None:
        """Give the values of ``sub`` (a subgraph joining this model) names that no other value of
        the model holds, renaming those that clash. The inputs and outputs of a subgraph are
        matched by position, so renaming its values is safe."""
        root = self.root
        names = root._registry()
        for g in sub.all_graphs():
            for v in g.values():
                name = v._name
                if name == "":
                    continue
                owner = names.get(name, v) if name is not None else None
                if owner is not v and (owner is None or owner._name == name):
                    name = v._name = self.fresh_name(name or "v")
                names[name] = v
            g._names = None  # from now on the root keeps the names

    def _link_after(self, anchor, node: Node) -> None:
        nxt = anchor._next
        node._prev, node._next = anchor, nxt
        anchor._next = node
        nxt._prev = node

    def append(self, node: Node) -> Node:
        """Add ``node`` at the end and return it."""
        if not isinstance(node, Node) or node.graph is not None and not node._removed:
            self._check_new([node])  # raises the right error
        self._adopt(node)
        self._link_after(self._root._prev, node)
        return node

    def extend(self, nodes: Iterable[Node]) -> None:
        """Append ``nodes`` in order (all or nothing)."""
        nodes = list(nodes)
        self._check_new(nodes)
        for n in nodes:
            self._adopt(n)
            self._link_after(self._root._prev, n)

    def insert_before(self, anchor: Node, nodes: Node | Sequence[Node]) -> None:
        """Insert ``nodes`` (in order) right before ``anchor`` (all or nothing)."""
        nodes = [nodes] if isinstance(nodes, Node) else list(nodes)
        self._check_anchor(anchor)
        self._check_new(nodes)
        for n in nodes:
            self._adopt(n)
            self._link_after(anchor._prev, n)

    def insert_after(self, anchor: Node, nodes: Node | Sequence[Node]) -> None:
        """Insert ``nodes`` (in order) right after ``anchor`` (all or nothing)."""
        nodes = [nodes] if isinstance(nodes, Node) else list(nodes)
        self._check_anchor(anchor)
        self._check_new(nodes)
        prev = anchor
        for n in nodes:
            self._adopt(n)
            self._link_after(prev, n)
            prev = n

    def _check_anchor(self, anchor: Node) -> None:
        if not isinstance(anchor, Node) or anchor.graph is not self or anchor._removed:
            raise ValueError(f"anchor {anchor!r} is not in this graph")

    def remove(self, nodes: Node | Iterable[Node], safe: bool = True) -> None:
        """Remove nodes from the graph, all or nothing.

        With ``safe`` (the default) it is an error, raised before anything changes, if an output
        of a removed node is still read by a node that stays, or is a graph output. The removed
        nodes' inputs (and those of nodes in their subgraphs) are disconnected.
        """
        nodes = [nodes] if isinstance(nodes, Node) else list(dict.fromkeys(nodes))
        doomed = set(nodes)
        for n in nodes:
            if n.graph is not self or n._removed:
                raise ValueError(f"{n.op_type} node {n.name!r} is not in this graph")
        if safe:
            outputs = set(id(v) for v in self.outputs)
            for n in nodes:
                for v in n.outputs:
                    if id(v) in outputs:
                        raise ValueError(
                            f"cannot remove {n.op_type} node {n.name!r}: its output {v.name!r}"
                            " is a graph output")
                    for user, _ in v._uses:
                        if _top_node(user, self) not in doomed:
                            raise ValueError(
                                f"cannot remove {n.op_type} node {n.name!r}: its output"
                                f" {v.name!r} is still used by {user.op_type} node {user.name!r}")
        for n in nodes:
            _disconnect(n)
            n._prev._next = n._next
            n._next._prev = n._prev
            n._removed = True
            n.graph = None
            self._len -= 1

    def move_before(self, anchor: Node, node: Node) -> None:
        """Move ``node`` (already in this graph) right before ``anchor``, keeping its edges."""
        self._check_anchor(anchor)
        if node is anchor:
            return
        self._unlink(node)
        self._link_after(anchor._prev, node)

    def move_after(self, anchor: Node, node: Node) -> None:
        """Move ``node`` (already in this graph) right after ``anchor``, keeping its edges."""
        self._check_anchor(anchor)
        if node is anchor:
            return
        self._unlink(node)
        self._link_after(anchor, node)

    def _unlink(self, node: Node) -> None:
        if node.graph is not self or node._removed:
            raise ValueError(f"{node.op_type} node {node.name!r} is not in this graph")
        node._prev._next = node._next
        node._next._prev = node._prev

    # -- order ------------------------------------------------------------------------------
    def sort(self) -> None:
        """Re-order nodes topologically, keeping the current order where dependencies allow.

        A node that uses (possibly inside its subgraphs) a value produced by another node of this
        graph comes after it. Raises ``ValueError`` naming a cycle if there is one.
        """
        order = list(self)
        pos = {n: i for i, n in enumerate(order)}
        indegree = [0] * len(order)
        succ: list[list[int]] = [[] for _ in order]
        for i, n in enumerate(order):
            deps = {pos[p] for p in self._dependencies(n) if p in pos}  # n itself: a 1-cycle
            indegree[i] = len(deps)
            for d in deps:
                succ[d].append(i)
        heap = [i for i, d in enumerate(indegree) if d == 0]
        heapq.heapify(heap)
        result = []
        while heap:
            i = heapq.heappop(heap)
            result.append(order[i])
            for j in succ[i]:
                indegree[j] -= 1
                if indegree[j] == 0:
                    heapq.heappush(heap, j)
        if len(result) != len(order):
            from irlib.analysis import find_cycle

            raise ValueError(f"graph {self.name!r} has a cycle: {find_cycle(self)}")
        root = self._root
        root._next = root._prev = root
        for n in result:
            self._link_after(root._prev, n)

    def _dependencies(self, node: Node) -> Iterator[Node]:
        """Nodes of this graph whose outputs ``node`` reads, directly or from its subgraphs."""
        for v in node.inputs:
            if v is not None and v._producer is not None:
                yield v._producer
        for g in node.subgraphs():
            for inner in g.all_nodes():
                for v in inner.inputs:
                    if v is not None and v._producer is not None and v._producer.graph is self:
                        yield v._producer

    def is_sorted(self) -> bool:
        """True when every node comes after the producers it depends on."""
        seen = set()
        for n in self:
            for p in self._dependencies(n):
                if p.graph is self and p not in seen:
                    return False
            seen.add(n)
        return True

    # -- whole-model walks ------------------------------------------------------------------
    def all_graphs(self) -> Iterator[Graph]:
        """This graph and every subgraph nested in it, outermost first."""
        yield self
        for n in self:
            for g in n.subgraphs():
                yield from g.all_graphs()

    def all_nodes(self) -> Iterator[Node]:
        """Every node of this graph and its subgraphs (each node before its subgraphs' nodes)."""
        for n in self:
            yield n
            for g in n.subgraphs():
                yield from g.all_nodes()

    def to_networkx(self):
        """A ``networkx.MultiDiGraph`` of this graph's nodes, edges labelled by value (see
        :func:`irlib.analysis.to_networkx`)."""
        from irlib.analysis import to_networkx

        return to_networkx(self)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} nodes)"


def _top_node(node: Node, graph: Graph) -> Node:
    """The node of ``graph`` that is ``node`` or holds it in a (nested) subgraph."""
    while node.graph is not None and node.graph is not graph:
        parent = node.graph.parent_node
        if parent is None:
            break
        node = parent
    return node


def _subgraph_outer_uses(g: Graph) -> Iterator[tuple[Node, int, Value]]:
    """The uses that nodes of ``g`` (and of graphs nested in it) make of values defined outside."""
    for inner in g.all_nodes():
        for i, v in enumerate(inner._inputs):
            if v is not None and not _inside(v.graph, g):
                yield inner, i, v


def _outer_uses(node: Node) -> Iterator[tuple[Node, int, Value]]:
    """``node``'s own uses and the uses its subgraphs make of values defined outside them."""
    for i, v in enumerate(node._inputs):
        if v is not None:
            yield node, i, v
    for g in node.subgraphs():
        yield from _subgraph_outer_uses(g)


def _disconnect(node: Node) -> None:
    """Drop the use records of a removed node (its input tuple is kept for re-insertion)."""
    for user, i, v in list(_outer_uses(node)):
        v._uses.pop((user, i), None)


def _reconnect(node: Node) -> None:
    for user, i, v in _outer_uses(node):
        v._uses[(user, i)] = None


def _detach_subgraph(g: Graph) -> None:
    """``g`` leaves the node holding it: drop the uses it makes of outer values."""
    for user, i, v in list(_subgraph_outer_uses(g)):
        v._uses.pop((user, i), None)
    g.parent_node = None


def _inside(graph: Graph, outer: Graph) -> bool:
    g = graph
    while g is not None:
        if g is outer:
            return True
        g = g.parent_node.graph if g.parent_node is not None else None
    return False

