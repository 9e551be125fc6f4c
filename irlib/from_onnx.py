"""ONNX ``ModelProto`` -> IR.

As lenient as ONNX Runtime on the way in: nodes may come in any order (they are sorted), old IR
versions and ops of any domain are accepted. What cannot be made into a well-formed IR is refused
with an :class:`IRLoadError` naming the problem: a use of an undefined value, a value defined twice,
a cycle, an ai.onnx opset newer than this onnx knows, a missing external-data file.
"""

from __future__ import annotations

import onnx

from irlib.attribute import Attribute, AttrType
from irlib.dtypes import DType
from irlib.errors import IRLoadError
from irlib.graph import Graph, Node, Value, _gc_paused
from irlib.model import Model
from irlib.tensor import Tensor
from irlib.types import (
    MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type,
)

__all__ = ["from_onnx", "type_from_proto", "known_opset_versions"]


def known_opset_versions() -> dict[str, int]:
    """The newest version of each standard ONNX domain this onnx package knows."""
    newest: dict[str, int] = {}
    for domain, version in onnx.helper.OP_SET_ID_VERSION_MAP:
        newest[domain] = max(version, newest.get(domain, 0))
    # The map spells the default domain "ai.onnx"; models usually spell it "".
    newest["ai.onnx"] = max(newest.get("ai.onnx", 0), onnx.defs.onnx_opset_version())
    newest[""] = newest["ai.onnx"]
    return newest


def from_onnx(proto: onnx.ModelProto, base_dir: str = "") -> Model:
    """Convert a ``ModelProto`` into an IR :class:`Model`.

    ``base_dir`` is where external-data files are looked up (the model file's folder).
    """
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"expected onnx.ModelProto, got {type(proto).__name__}")
    opsets = {}
    newest = known_opset_versions()
    for op in proto.opset_import:
        if op.domain in newest and op.version > newest[op.domain]:
            raise IRLoadError(
                f"opset {op.domain or 'ai.onnx'} version {op.version} is newer than this onnx"
                f" ({onnx.__version__}) knows (up to {newest[op.domain]})")
        opsets[op.domain] = op.version
    if not proto.HasField("graph"):
        raise IRLoadError("the model has no graph")
    importer = _GraphImporter(base_dir)
    with _gc_paused():
        graph = importer.import_graph(proto.graph, outer=None)
        importer.note_renamed_values()
    model = Model(
        graph,
        ir_version=proto.ir_version,
        opset_imports=opsets,
        producer_name=proto.producer_name,
        producer_version=proto.producer_version,
        domain=proto.domain,
        model_version=proto.model_version,
        doc_string=proto.doc_string,
        metadata_props={p.key: p.value for p in proto.metadata_props},
        functions=[_copy(f) for f in proto.functions],
    )
    if 0 < proto.ir_version < 4:
        # Before IR 4 every initializer had to be listed as an input too, and runtimes (ORT's
        # CanOverrideInitializer) treat them as constants: so do passes (passes.constants).
        graph.meta["initializer_inputs_are_constant"] = True
    if len(proto.training_info) or len(proto.configuration):
        extra = onnx.ModelProto()
        extra.training_info.extend(proto.training_info)
        extra.configuration.extend(proto.configuration)
        model.extra = extra
    return model


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out


class _GraphImporter:
    def __init__(self, base_dir: str):
        self.base_dir = base_dir
        self._types: dict[bytes, Type | None] = {}
        self._attrs: dict[bytes, tuple] = {}  # see ``import_attribute``
        self._named: list[tuple[Value, str]] = []  # every subgraph value, with its ONNX name

    def note_renamed_values(self) -> None:
        """Values keep names unique in the whole model, so a subgraph value whose name a sibling
        subgraph already holds (legal in ONNX) was renamed when it joined. Remember the ONNX
        name: ``to_onnx`` gives it back where nothing in scope clashes with it."""
        for v, name in self._named:
            if v.name != name:
                v.meta["onnx_name"] = (v.name, name)

    def type(self, tp: onnx.TypeProto) -> Type | None:
        """``type_from_proto``, memoized: exported models repeat a handful of types thousands of
        times, and irlib types are immutable, so values may share them (5x faster on big graphs)."""
        key = tp.SerializeToString()
        t = self._types.get(key, _MISSING)
        if t is _MISSING:
            t = self._types[key] = type_from_proto(tp)
        return t

    def import_graph(self, gp: onnx.GraphProto, outer: list[dict[str, Value]] | None,
                     parent: Node | None = None) -> Graph:
        scope: dict[str, Value] = {}
        scopes = [scope] + (outer or [])
        graph = Graph(gp.name, doc_string=gp.doc_string)
        graph.parent_node = parent
        graph.metadata_props = {p.key: p.value for p in gp.metadata_props}

        def define(value: Value, what: str) -> None:
            if value.name in scope:
                raise IRLoadError(f"graph {gp.name!r}: value {value.name!r} is defined twice ({what})")
            scope[value.name] = value

        for vi in gp.input:
            v = Value(vi.name, self.type(vi.type) if vi.HasField("type") else None,
                      doc_string=vi.doc_string)
            v.metadata_props = {p.key: p.value for p in vi.metadata_props}
            define(v, "graph input")
            graph.add_input(v)
            if outer is not None:
                self._named.append((v, vi.name))
        for tp in gp.initializer:
            tensor = Tensor.from_proto(tp, self.base_dir)
            existing = scope.get(tp.name)
            if existing is not None and existing.is_graph_input() and existing.const_value is None:
                existing.const_value = tensor  # an input with a default value (IR < 4 style)
                graph.add_initializer(existing)
                continue
            v = Value(tp.name, const_value=tensor)
            define(v, "initializer")
            graph.add_initializer(v)
            if outer is not None:
                self._named.append((v, tp.name))

        for sp in gp.sparse_initializer:
            # Carried verbatim in graph.extra; a value stands for it so nodes can read it.
            v = Value(sp.values.name, SparseTensorType(_dtype(sp.values.data_type), tuple(sp.dims)))
            v._graph = graph
            define(v, "sparse initializer")
            graph.meta.setdefault("sparse_values", []).append(v)

        # Pass 1: every node's outputs, so that inputs may refer to later nodes. This loop and
        # the next run once per node of the model: fields are read once, into locals.
        bare_node = Node._bare
        # Only subgraph values can be renamed when they join the model (see
        # ``note_renamed_values``): the main graph's names need no record.
        named = self._named if outer is not None else None
        pending = []
        for np_ in gp.node:
            op_type, name = np_.op_type, np_.name
            outputs = np_.output
            node = bare_node(op_type, np_.domain, name, np_.overload, np_.doc_string, outputs)
            if len(np_.metadata_props):
                node.metadata_props = {p.key: p.value for p in np_.metadata_props}
            if len(np_.device_configurations):
                extra = onnx.NodeProto()
                extra.device_configurations.extend(np_.device_configurations)
                node.extra = extra
            for v in node._outputs:
                vname = v._name
                if vname:
                    if vname in scope:
                        define(v, f"output of {op_type} node {name!r}")  # raises
                    scope[vname] = v
                    if named is not None:
                        named.append((v, vname))
            attributes = np_.attribute
            pending.append((node, np_.input, attributes if len(attributes) else None))

        # Pass 2: inputs, attributes (subgraphs see this graph's whole scope). A node is linked
        # at the end of the graph right here, as ``Graph.append`` would, while the graph keeps no
        # name registry yet and the node holds no subgraph (the only cases ``_adopt`` acts on).
        # Whether the nodes came in a topological order is noted on the way: an input produced
        # by a node that is in no graph yet (a later node of this graph, or of an enclosing graph
        # when this is a subgraph) means they may not have.
        lookup = scope.get if len(scopes) == 1 else (lambda n: _lookup(scopes, n))
        in_order = True
        sentinel = graph._root
        for node, input_names, attributes in pending:
            inputs = []
            i = 0
            for name in input_names:
                if name == "":
                    inputs.append(None)
                else:
                    v = lookup(name)
                    if v is None:
                        raise IRLoadError(
                            f"{node.op_type} node {node.name!r} uses undefined value {name!r}")
                    inputs.append(v)
                    v._uses[(node, i)] = None
                    p = v._producer
                    if p is not None and p.graph is None:
                        in_order = False
                i += 1
            node._inputs = tuple(inputs)
            has_subgraphs = False
            if attributes is not None:
                for ap in attributes:
                    a = self.import_attribute(ap, scopes, node)
                    if a.type is AttrType.GRAPH or a.type is AttrType.GRAPHS:
                        has_subgraphs = True
                        node.set_attr(a)
                    elif a.name in node.attributes:
                        node.set_attr(a)  # a repeated name: the last one wins, as set_attr does
                    else:
                        node.attributes[a.name] = a
            if has_subgraphs or graph._names is not None:
                graph.append(node)
            else:
                node.graph = graph
                last = sentinel._prev
                node._prev, node._next = last, sentinel
                last._next = sentinel._prev = node
                graph._len += 1
            if has_subgraphs:
                in_order = False  # their inner uses count too: let ``is_sorted`` decide

        # value_info: node outputs take what it says (type, doc, metadata) and remember the entry's
        # position, so that export writes the entries back in the order they came.
        types = self._types
        pos = 0
        for vi in gp.value_info:
            v = scope.get(vi.name)
            if v is None or v._producer is None or "value_info" in v.meta:
                # Describes an input, an initializer, nothing, or a value already described:
                # carry it through verbatim.
                graph.meta.setdefault("orphan_value_info", []).append((pos, _copy(vi)))
                pos += 1
                continue
            if vi.HasField("type"):
                tp = vi.type
                t = types.get(tp.SerializeToString(), _MISSING)  # ``self.type``, inlined
                v.type = self.type(tp) if t is _MISSING else t
            doc = vi.doc_string
            if doc:
                v.doc_string = doc
            if len(vi.metadata_props):
                v.metadata_props.update({p.key: p.value for p in vi.metadata_props})
            v.meta["value_info"] = pos
            pos += 1

        for vi in gp.output:
            v = _lookup(scopes, vi.name)
            if v is None:
                raise IRLoadError(f"graph {gp.name!r}: output {vi.name!r} is not defined")
            t = self.type(vi.type) if vi.HasField("type") else None
            md = {p.key: p.value for p in vi.metadata_props}
            described = v.producer() is None or "value_info" in v.meta or v.type is not None
            if not described:
                # A node output described only here: the declaration is the value's own.
                v.type, v.doc_string, v.metadata_props = t, vi.doc_string, md
            elif (t, vi.doc_string, md) != (v.type, v.doc_string, v.metadata_props):
                # Declared differently as an output than as an input, initializer or value_info
                # entry (or twice as an output): keep both; export writes each where it was.
                v.meta["output_decl"] = (t, vi.doc_string, md)
            graph.outputs.append(v)

        if len(gp.sparse_initializer) or len(gp.quantization_annotation):
            extra = onnx.GraphProto()
            extra.sparse_initializer.extend(gp.sparse_initializer)
            extra.quantization_annotation.extend(gp.quantization_annotation)
            graph.extra = extra
        if not in_order and not graph.is_sorted():
            try:
                graph.sort()
            except ValueError as e:
                raise IRLoadError(str(e)) from None
        return graph

    def import_attribute(self, ap: onnx.AttributeProto, scopes, node: Node) -> Attribute:
        code = ap.type
        if code in _PLAIN_ATTR_TYPES:
            # Numbers and strings: a model repeats the same few (kernel shapes, axes, alphas)
            # thousands of times, and their Python values are immutable: decode each distinct
            # serialized attribute once and share its value.
            key = ap.SerializeToString()
            known = self._attrs.get(key)
            if known is None:
                if ap.ref_attr_name:  # a reference (in a function body): nothing to share
                    return Attribute(ap.name, _ATTR_TYPES[code], None, ap.doc_string,
                                     ap.ref_attr_name)
                known = self._attrs[key] = (
                    ap.name, _ATTR_TYPES[code], _plain_value(ap, code), ap.doc_string, key)
            return Attribute._imported(known)
        t = _ATTR_TYPES.get(code) or (AttrType(code) if code else _guess_attr_type(ap))
        if ap.ref_attr_name:
            return Attribute(ap.name, t, None, ap.doc_string, ap.ref_attr_name)
        if t is AttrType.FLOAT:
            value = ap.f
        elif t is AttrType.INT:
            value = ap.i
        elif t is AttrType.STRING:
            value = _decode(ap.s)
        elif t is AttrType.TENSOR:
            value = Tensor.from_proto(ap.t, self.base_dir)
        elif t is AttrType.GRAPH:
            value = self.import_graph(ap.g, scopes, node)
        elif t is AttrType.FLOATS:
            value = list(ap.floats)
        elif t is AttrType.INTS:
            value = list(ap.ints)
        elif t is AttrType.STRINGS:
            value = [_decode(s) for s in ap.strings]
        elif t is AttrType.TENSORS:
            value = [Tensor.from_proto(x, self.base_dir) for x in ap.tensors]
        elif t is AttrType.GRAPHS:
            value = [self.import_graph(g, scopes, node) for g in ap.graphs]
        elif t is AttrType.SPARSE_TENSOR:
            value = _copy(ap.sparse_tensor)
        elif t is AttrType.SPARSE_TENSORS:
            value = [_copy(x) for x in ap.sparse_tensors]
        elif t is AttrType.TYPE_PROTO:
            value = type_from_proto(ap.tp)
        elif t is AttrType.TYPE_PROTOS:
            value = [type_from_proto(x) for x in ap.type_protos]
        else:
            raise IRLoadError(f"{node.op_type} node {node.name!r}: attribute {ap.name!r} has no type")
        return Attribute(ap.name, t, value, ap.doc_string)


_MISSING = object()
_ATTR_TYPES = {int(t): t for t in AttrType if t is not AttrType.UNDEFINED}
#: Attribute types whose values are numbers or strings (immutable in the IR).
_PLAIN_ATTR_TYPES = frozenset(int(t) for t in (
    AttrType.FLOAT, AttrType.INT, AttrType.STRING, AttrType.FLOATS, AttrType.INTS,
    AttrType.STRINGS))


def _plain_value(ap: onnx.AttributeProto, code: int):
    """The value of a number or string attribute (lists as tuples)."""
    if code == AttrType.FLOAT:
        return ap.f
    if code == AttrType.INT:
        return ap.i
    if code == AttrType.STRING:
        return _decode(ap.s)
    if code == AttrType.FLOATS:
        return tuple(ap.floats)
    if code == AttrType.INTS:
        return tuple(ap.ints)
    return tuple([_decode(s) for s in ap.strings])


def _lookup(scopes: list[dict[str, Value]], name: str) -> Value | None:
    for scope in scopes:
        v = scope.get(name)
        if v is not None:
            return v
    return None


def _decode(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _guess_attr_type(ap: onnx.AttributeProto) -> AttrType:
    """Very old models leave ``type`` unset: infer it from the field that is filled."""
    for field, t in (("floats", AttrType.FLOATS), ("ints", AttrType.INTS),
                     ("strings", AttrType.STRINGS), ("tensors", AttrType.TENSORS),
                     ("graphs", AttrType.GRAPHS)):
        if len(getattr(ap, field)):
            return t
    for field, t in (("t", AttrType.TENSOR), ("g", AttrType.GRAPH)):
        if ap.HasField(field):
            return t
    if ap.HasField("s"):
        return AttrType.STRING
    if ap.HasField("f"):
        return AttrType.FLOAT
    if ap.HasField("i"):
        return AttrType.INT
    return AttrType.UNDEFINED


def _shape_from_proto(tsp) -> tuple[tuple | None, tuple[str, ...] | None]:
    """The shape and the per-dimension denotations (``None`` when there are none)."""
    if not tsp.HasField("shape"):
        return None, None
    dims = []
    for d in tsp.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    dens = tuple(d.denotation for d in tsp.shape.dim)
    return tuple(dims), (dens if any(dens) else None)


def _dtype(code: int) -> DType:
    try:
        return DType(code)
    except ValueError:
        raise IRLoadError(f"element type {code} is not a known ONNX data type") from None


def type_from_proto(tp: onnx.TypeProto) -> Type | None:
    which = tp.WhichOneof("value")
    den = tp.denotation
    if which == "tensor_type":
        shape, dens = _shape_from_proto(tp.tensor_type)
        return TensorType(_dtype(tp.tensor_type.elem_type), shape, den, dens)
    if which == "sparse_tensor_type":
        shape, dens = _shape_from_proto(tp.sparse_tensor_type)
        return SparseTensorType(_dtype(tp.sparse_tensor_type.elem_type), shape, den, dens)
    if which == "sequence_type":
        e = tp.sequence_type
        return SequenceType(type_from_proto(e.elem_type) if e.HasField("elem_type") else None, den)
    if which == "optional_type":
        e = tp.optional_type
        return OptionalType(type_from_proto(e.elem_type) if e.HasField("elem_type") else None, den)
    if which == "map_type":
        m = tp.map_type
        return MapType(_dtype(m.key_type),
                       type_from_proto(m.value_type) if m.HasField("value_type") else None, den)
    if which == "opaque_type":
        return OpaqueType(tp.opaque_type.domain, tp.opaque_type.name, den)
    return None
