"""IR -> ONNX ``ModelProto``.

The model keeps its IR version and opsets; values keep their names; untouched constants are
handed back as the protos they were read from (no decode, no re-encode).
"""

from __future__ import annotations

from typing import Callable

import onnx

from irlib.attribute import Attribute, AttrType
from irlib.graph import Graph, Value
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
    mp.producer_name = model.producer_name
    mp.producer_version = model.producer_version
    mp.domain = model.domain
    mp.model_version = model.model_version
    mp.doc_string = model.doc_string
    for k, v in model.metadata_props.items():
        mp.metadata_props.add(key=k, value=v)
    _Exporter(tensor_writer).graph(model.graph, mp.graph)
    mp.functions.extend(model.functions)
    if model.extra is not None:
        mp.training_info.extend(model.extra.training_info)
        mp.configuration.extend(model.extra.configuration)
    return mp


class _Exporter:
    def __init__(self, tensor_writer: TensorWriter | None):
        self.tensor_writer = tensor_writer

    def tensor(self, tensor: Tensor, name: str, out: onnx.TensorProto) -> None:
        if self.tensor_writer is not None:
            proto = self.tensor_writer(tensor, name)
        else:
            proto = tensor.to_proto(inline=True)
        out.CopyFrom(proto)
        if out.name != name:
            out.name = name

    def graph(self, g: Graph, gp: onnx.GraphProto) -> None:
        gp.name = g.name
        gp.doc_string = g.doc_string
        for k, v in g.metadata_props.items():
            gp.metadata_props.add(key=k, value=v)
        for v in g.inputs:
            _value_info(v, gp.input.add(), v.type)
        for v in g.initializers:
            self.tensor(v.const_value, v.name, gp.initializer.add())
        outputs = {id(v) for v in g.outputs}
        for node in g:
            np_ = gp.node.add()
            np_.input.extend("" if v is None else v.name for v in node.inputs)
            np_.output.extend(v.name for v in node.outputs)
            if node.name:
                np_.name = node.name
            np_.op_type = node.op_type
            if node.domain:
                np_.domain = node.domain
            if node.overload:
                np_.overload = node.overload
            if node.doc_string:
                np_.doc_string = node.doc_string
            for a in node.attributes.values():
                self.attribute(a, np_.attribute.add())
            for k, v in node.metadata_props.items():
                np_.metadata_props.add(key=k, value=v)
            if node.extra is not None:
                np_.device_configurations.extend(node.extra.device_configurations)
        for node in g:
            for v in node.outputs:
                if v.name and id(v) not in outputs and (
                        v.type is not None or v.doc_string or v.metadata_props):
                    _value_info(v, gp.value_info.add(), v.type)
        gp.value_info.extend(g.meta.get("orphan_value_info", ()))
        for v in g.outputs:
            vi = gp.output.add()
            _value_info(v, vi, v.meta.get("output_type", v.type))
            vi.doc_string = v.meta.get("output_doc_string", "")
            if "output_metadata_props" in v.meta:
                del vi.metadata_props[:]
                for k, val in v.meta["output_metadata_props"].items():
                    vi.metadata_props.add(key=k, value=val)
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


def _value_info(v: Value, vi: onnx.ValueInfoProto, type: Type | None) -> None:
    vi.name = v.name
    if type is not None:
        type_to_proto(type, vi.type)
    if v.doc_string:
        vi.doc_string = v.doc_string
    for k, val in v.metadata_props.items():
        vi.metadata_props.add(key=k, value=val)


def _shape_to_proto(shape, tsp) -> None:
    if shape is None:
        return
    sp = tsp.shape
    sp.SetInParent()
    for d in shape:
        dim = sp.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        elif isinstance(d, str):
            dim.dim_param = d


def type_to_proto(t: Type | None, tp: onnx.TypeProto) -> onnx.TypeProto:
    if t is None:
        return tp
    if t.denotation:
        tp.denotation = t.denotation
    if isinstance(t, TensorType):
        tp.tensor_type.elem_type = int(t.dtype)
        _shape_to_proto(t.shape, tp.tensor_type)
    elif isinstance(t, SparseTensorType):
        tp.sparse_tensor_type.elem_type = int(t.dtype)
        _shape_to_proto(t.shape, tp.sparse_tensor_type)
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
