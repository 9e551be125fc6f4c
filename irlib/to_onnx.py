"""IR -> ONNX ``ModelProto``.

The model keeps its IR version and opsets; values keep their names; untouched constants are
handed back as the protos they were read from (no decode, no re-encode).
"""

from __future__ import annotations

import math
from typing import Callable

import onnx

from irlib.attribute import Attribute, AttrType
from irlib.graph import Graph, Value, _gc_paused
from irlib.model import Model
from irlib.tensor import Tensor
from irlib.types import (
    MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type,
)

__all__ = ["to_onnx", "type_to_proto"]

#: Called for every initializer / tensor attribute; returns the proto to store (lets
#: :func:`irlib.save` move large tensors to an external-data file).
TensorWriter = Callable[[Tensor, str], onnx.TensorProto]


def to_onnx(model: Model, tensor_writer: TensorWriter | None = None) -> onnx.ModelProto:
    """Convert an IR :class:`Model` into a ``ModelProto``."""
    mp = onnx.ModelProto()
    mp.ir_version = model.ir_version
    for domain, version in model.opset_imports.items():
        mp.opset_import.add(domain=domain, version=version)
    # Fields are set only when they hold something: ONNX's protos are proto2, where an explicit
    # empty string is "present" and would make the export differ from what was read.
    if model.producer_name:
        mp.producer_name = model.producer_name
    if model.producer_version:
        mp.producer_version = model.producer_version
    if model.domain:
        mp.domain = model.domain
    if model.model_version:
        mp.model_version = model.model_version
    if model.doc_string:
        mp.doc_string = model.doc_string
    for k, v in model.metadata_props.items():
        mp.metadata_props.add(key=k, value=v)
    with _gc_paused():
        _Exporter(tensor_writer).graph(model.graph, mp.graph)
    if 0 < model.ir_version < 4:
        _list_initializers_as_inputs(mp.graph)
    mp.functions.extend(model.functions)
    if model.extra is not None:
        mp.training_info.extend(model.extra.training_info)
        mp.configuration.extend(model.extra.configuration)
    return mp


def _list_initializers_as_inputs(gp: onnx.GraphProto) -> None:
    """IR < 4 requires every initializer of the main graph to be a graph input as well: add the
    ones a pass created (folded constants) with their type."""
    listed = {vi.name for vi in gp.input}
    for t in gp.initializer:
        if t.name not in listed:
            vi = gp.input.add()
            vi.name = t.name
            vi.type.tensor_type.elem_type = t.data_type
            shape = vi.type.tensor_type.shape
            shape.SetInParent()
            for d in t.dims:
                shape.dim.add().dim_value = d


class _Exporter:
    def __init__(self, tensor_writer: TensorWriter | None):
        self.tensor_writer = tensor_writer
        self.names: dict[int, str] = {}  # value id -> export name, where it is not value.name
        # The graphs being exported, outermost first, each with the set of its export names
        # (computed when a subgraph first needs it: only renamed values look at it).
        self.stack: list[list] = []
        # id(type) -> (type, its TypeProto): types are immutable and shared by many values, so
        # each is converted once and copied (the type is kept so that its id stays unique).
        self.type_protos: dict[int, tuple[Type, onnx.TypeProto]] = {}

    def tensor(self, tensor: Tensor, name: str, out: onnx.TensorProto) -> None:
        if self.tensor_writer is not None:
            proto = self.tensor_writer(tensor, name)
        else:
            proto = tensor.to_proto(inline=True)
        out.CopyFrom(proto)
        if out.name != name:
            out.name = name

    def value_info(self, name: str, vi: onnx.ValueInfoProto, t: Type | None, doc_string: str,
                   metadata_props: dict[str, str]) -> None:
        vi.name = name
        if t is not None:
            cached = self.type_protos.get(id(t))
            if cached is None:
                tp = type_to_proto(t, onnx.TypeProto())
                cached = self.type_protos[id(t)] = (t, tp if tp.ListFields() else None)
            if cached[1] is not None:
                vi.type.CopyFrom(cached[1])
        if doc_string:
            vi.doc_string = doc_string
        for k, val in metadata_props.items():
            vi.metadata_props.add(key=k, value=val)

    # -- names ----------------------------------------------------------------------------------
    def name(self, v: Value) -> str:
        return self.names.get(id(v), v.name)

    def _restore_names(self, g: Graph) -> None:
        """Give values renamed on import (see ``from_onnx``) their ONNX names back, where no other
        value in scope (enclosing graphs, this one, its subgraphs) holds that name."""
        renamed = [v for v in g.inputs if "onnx_name" in v.meta]
        renamed += [v for v in g._initializers if "onnx_name" in v.meta]
        for node in g:
            for v in node._outputs:
                if "onnx_name" in v.meta:
                    renamed.append(v)
        renamed = [v for v in dict.fromkeys(renamed) if v.meta["onnx_name"][0] == v.name]
        if not renamed:
            return
        taken = set()
        for entry in self.stack:
            if entry[1] is None:
                entry[1] = {self.name(v) for v in entry[0].values() if v.name}
            taken |= entry[1]
        for sub in g.all_graphs():
            taken.update(self.name(v) for v in sub.values() if v.name)
        for v in renamed:
            original = v.meta["onnx_name"][1]
            if original not in taken:
                self.names[id(v)] = original
                taken.add(original)

    # -- graphs -----------------------------------------------------------------------------------
    def graph(self, g: Graph, gp: onnx.GraphProto) -> None:
        self._restore_names(g)
        self.stack.append([g, None])
        try:
            self._graph(g, gp)
        finally:
            self.stack.pop()

    def _graph(self, g: Graph, gp: onnx.GraphProto) -> None:
        names = self.names
        name = self.name
        if g.name:
            gp.name = g.name
        if g.doc_string:
            gp.doc_string = g.doc_string
        for k, v in g.metadata_props.items():
            gp.metadata_props.add(key=k, value=v)
        for v in g.inputs:
            self.value_info(name(v), gp.input.add(), v.type, v.doc_string, v.metadata_props)
        for v in g.initializers:
            self.tensor(v.const_value, name(v), gp.initializer.add())
        outputs = {id(v) for v in g.outputs}
        # (position, value or orphan ValueInfoProto): the value_info entries, written once sorted
        value_info: list[tuple[float, Value | onnx.ValueInfoProto]] = []
        described = value_info.append
        add_node = gp.node.add
        inf = math.inf
        # Runs once per node of the model: fields are read into locals, strings are written
        # only when set (ONNX's protos are proto2: an explicit "" would count as present).
        for node in g:
            np_ = add_node()
            # ``append`` one by one: ~2x faster than ``extend`` on upb's repeated strings.
            field = np_.input
            if names:
                for v in node._inputs:
                    field.append("" if v is None else name(v))
                field = np_.output
                for v in node._outputs:
                    field.append(name(v))
            else:
                for v in node._inputs:
                    field.append("" if v is None else v._name)
                field = np_.output
                for v in node._outputs:
                    field.append(v._name)
            if node.name:
                np_.name = node.name
            np_.op_type = node.op_type
            if node.domain:
                np_.domain = node.domain
            if node.overload:
                np_.overload = node.overload
            if node.doc_string:
                np_.doc_string = node.doc_string
            if node.attributes:
                attribute = np_.attribute.add
                for a in node.attributes.values():
                    source = a._unchanged_source()
                    if source is not None:
                        attribute().ParseFromString(source)  # as read: one parse, in C
                    else:
                        self.attribute(a, attribute())
            if node.metadata_props:
                for k, v in node.metadata_props.items():
                    np_.metadata_props.add(key=k, value=v)
            if node.extra is not None:
                np_.device_configurations.extend(node.extra.device_configurations)
            for v in node._outputs:
                # A value_info entry for every described node output that is not a graph output
                # (and for the graph outputs that had one), in the order they were read.
                pos = v.meta.get("value_info")
                if pos is not None:
                    if v._name:
                        described((pos, v))
                elif v._name and id(v) not in outputs and (
                        v.type is not None or v.doc_string or v.metadata_props):
                    described((inf, v))
        value_info += g.meta.get("orphan_value_info", ())
        value_info.sort(key=_first)  # stable: new entries keep node order, at the end
        add_info = gp.value_info.add
        write = self.value_info
        type_protos = self.type_protos
        for _, v in value_info:
            if not isinstance(v, Value):
                add_info().CopyFrom(v)  # an orphan entry, carried verbatim
                continue
            t = v.type
            cached = type_protos.get(id(t)) if t is not None else None
            if cached is None or v.doc_string or v.metadata_props:
                write(name(v), add_info(), t, v.doc_string, v.metadata_props)
            else:  # ``write``'s common case, inlined: a name and a type seen before
                vi = add_info()
                vi.name = names.get(id(v), v._name) if names else v._name
                if cached[1] is not None:
                    vi.type.CopyFrom(cached[1])
        for v in g.outputs:
            t, doc, md = v.meta.get("output_decl", (v.type, v.doc_string, v.metadata_props))
            write(name(v), gp.output.add(), t, doc, md)
        if g.extra is not None:
            gp.sparse_initializer.extend(g.extra.sparse_initializer)
            gp.quantization_annotation.extend(g.extra.quantization_annotation)

    def attribute(self, a: Attribute, ap: onnx.AttributeProto) -> None:
        ap.name = a.name
        ap.type = int(a.type)
        if a.doc_string:
            ap.doc_string = a.doc_string
        if a.ref_attr_name:
            ap.ref_attr_name = a.ref_attr_name
            return
        t, val = a.type, a.value
        if t is AttrType.FLOAT:
            ap.f = val
        elif t is AttrType.INT:
            ap.i = val
        elif t is AttrType.STRING:
            ap.s = val.encode("utf-8") if isinstance(val, str) else val
        elif t is AttrType.TENSOR:
            self.tensor(val, val.name, ap.t)
        elif t is AttrType.GRAPH:
            self.graph(val, ap.g)
        elif t is AttrType.FLOATS:
            ap.floats.extend(val)
        elif t is AttrType.INTS:
            ap.ints.extend(val)
        elif t is AttrType.STRINGS:
            ap.strings.extend(s.encode("utf-8") if isinstance(s, str) else s for s in val)
        elif t is AttrType.TENSORS:
            for x in val:
                self.tensor(x, x.name, ap.tensors.add())
        elif t is AttrType.GRAPHS:
            for x in val:
                self.graph(x, ap.graphs.add())
        elif t is AttrType.SPARSE_TENSOR:
            ap.sparse_tensor.CopyFrom(val)
        elif t is AttrType.SPARSE_TENSORS:
            ap.sparse_tensors.extend(val)
        elif t is AttrType.TYPE_PROTO:
            type_to_proto(val, ap.tp)
        elif t is AttrType.TYPE_PROTOS:
            for x in val:
                type_to_proto(x, ap.type_protos.add())


def _first(entry: tuple) -> float:
    return entry[0]


def _shape_to_proto(t: TensorType | SparseTensorType, tsp) -> None:
    if t.shape is None:
        return
    sp = tsp.shape
    sp.SetInParent()
    dens = t.dim_denotations if t.dim_denotations is not None and len(
        t.dim_denotations) == len(t.shape) else None
    for i, d in enumerate(t.shape):
        dim = sp.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        elif isinstance(d, str):
            dim.dim_param = d
        if dens is not None and dens[i]:
            dim.denotation = dens[i]


def type_to_proto(t: Type | None, tp: onnx.TypeProto) -> onnx.TypeProto:
    if t is None:
        return tp
    if t.denotation:
        tp.denotation = t.denotation
    if isinstance(t, TensorType):
        tp.tensor_type.elem_type = int(t.dtype)
        _shape_to_proto(t, tp.tensor_type)
    elif isinstance(t, SparseTensorType):
        tp.sparse_tensor_type.elem_type = int(t.dtype)
        _shape_to_proto(t, tp.sparse_tensor_type)
    elif isinstance(t, SequenceType):
        tp.sequence_type.SetInParent()
        if t.elem is not None:
            type_to_proto(t.elem, tp.sequence_type.elem_type)
    elif isinstance(t, OptionalType):
        tp.optional_type.SetInParent()
        if t.elem is not None:
            type_to_proto(t.elem, tp.optional_type.elem_type)
    elif isinstance(t, MapType):
        tp.map_type.key_type = int(t.key)
        if t.value is not None:
            type_to_proto(t.value, tp.map_type.value_type)
    elif isinstance(t, OpaqueType):
        tp.opaque_type.domain = t.domain
        tp.opaque_type.name = t.name
    return tp
