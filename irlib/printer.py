"""Readable text for models and graphs, one node a line::

    graph main(%x: f32[1,3,8,8]) {
      %w: f32[4,3,3,3] = const
      %y: f32[1,4,8,8] = Conv(%x, %w) {kernel_shape=[3,3], pads=[1,1,1,1]}
      return %y
    }

Subgraphs (If/Loop/Scan bodies) are printed indented under the node that holds them. Small
constants (up to 8 elements) show their values, so a test can read what a fold produced.
"""

from __future__ import annotations

import numpy as np

from irlib.attribute import Attribute, AttrType
from irlib.graph import Graph, Node, Value
from irlib.model import Model
from irlib.tensor import Tensor
from irlib.types import format_shape

__all__ = ["format_model", "format_graph", "format_node"]

_SMALL = 8


def format_model(model: Model, show_names: bool = False) -> str:
    opsets = ", ".join(f"{d or 'ai.onnx'}:{v}" for d, v in model.opset_imports.items())
    head = f"model ir_version={model.ir_version} opsets=[{opsets}]"
    if model.producer_name:
        head += f" producer={_q(model.producer_name + (' ' + model.producer_version if model.producer_version else ''))}"
    return head + "\n" + format_graph(model.graph, show_names=show_names)


def format_graph(graph: Graph, indent: int = 0, show_names: bool = False) -> str:
    lines: list[str] = []
    _graph(graph, indent, lines, show_names)
    return "\n".join(lines) + "\n"


def _graph(graph: Graph, indent: int, lines: list[str], show_names: bool, label: str = "") -> None:
    pad = "  " * indent
    ins = ", ".join(_typed(v) for v in graph.inputs)
    lines.append(f"{pad}{label}graph {graph.name or '_'}({ins}) {{")
    inputs = {id(v) for v in graph.inputs}
    for v in graph.initializers:
        default = " (input default)" if id(v) in inputs else ""
        lines.append(f"{pad}  {_typed(v)} = const{_small(v.const_value)}{default}")
    for node in graph:
        lines.append(pad + "  " + format_node(node, show_names))
        for a in node.attributes.values():
            for i, sub in enumerate(a.subgraphs()):
                tag = a.name if a.type is AttrType.GRAPH else f"{a.name}[{i}]"
                _graph(sub, indent + 2, lines, show_names, label=f"{tag}: ")
    outs = ", ".join(_ref(v) for v in graph.outputs)
    lines.append(f"{pad}  return {outs}")
    lines.append(f"{pad}}}")


def format_node(node: Node, show_names: bool = False) -> str:
    """One line: ``%y: f32[1,4] = Op(%a, %b) {attr=...}``."""
    outs = ", ".join(_typed(v) if v.name else "_" for v in node.outputs)
    ins = ", ".join("_" if v is None else _ref(v) for v in node.inputs)
    text = f"{outs} = {node.qualified_op}({ins})"
    if node.attributes:
        text += " {" + ", ".join(_attr(a) for a in node.attributes.values()) + "}"
    if show_names and node.name:
        text += f"  # {node.name}"
    return text


def _ref(v: Value) -> str:
    return f"%{v.name}"


def _typed(v: Value) -> str:
    return f"%{v.name}: {v.type}" if v.type is not None else f"%{v.name}"


def _q(s) -> str:
    if isinstance(s, bytes):
        return repr(s)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(x: float) -> str:
    """An ONNX float attribute (a float32 widened to a Python float) in its shortest form:
    ``0.1``, not ``0.10000000149011612``."""
    return str(np.float32(x))


def _scalar(x) -> str:
    """One element of a small constant, in the shortest form that reads back the same value in
    the tensor's own element type (``0.1`` for an f32 or an f64 0.1)."""
    if isinstance(x, (bytes, str)):
        return _q(x)
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    return str(x)  # numpy floats of any width print their shortest round-trip form


def _small(t: Tensor) -> str:
    """`` [1, 2]`` (or `` 3`` for a scalar) for a constant of up to 8 elements, else ``""``."""
    if t.size > _SMALL or t.dtype.itemsize_bits == 0 and t.dtype.name != "STRING":
        return ""
    try:
        arr = np.asarray(t.numpy())
    except Exception:  # undecodable exotic dtype: show nothing rather than fail to print
        return ""
    body = ", ".join(_scalar(x) for x in arr.ravel())
    return f" {body}" if arr.ndim == 0 else f" [{body}]"


def _tensor(t: Tensor) -> str:
    return f"tensor {t.dtype.short}{format_shape(t.shape)}"


def _attr(a: Attribute) -> str:
    if a.ref_attr_name:
        return f"{a.name}=@{a.ref_attr_name}"
    t, v = a.type, a.value
    if t is AttrType.FLOAT:
        s = _num(v)
    elif t is AttrType.INT:
        s = str(v)
    elif t is AttrType.STRING:
        s = _q(v)
    elif t is AttrType.FLOATS:
        s = "[" + ",".join(_num(x) for x in v) + "]"
    elif t is AttrType.INTS:
        s = "[" + ",".join(str(x) for x in v) + "]"
    elif t is AttrType.STRINGS:
        s = "[" + ",".join(_q(x) for x in v) + "]"
    elif t is AttrType.TENSOR:
        s = _tensor(v) + _small(v)
    elif t is AttrType.TENSORS:
        s = "[" + ", ".join(_tensor(x) for x in v) + "]"
    elif t is AttrType.GRAPH:
        s = f"graph {v.name or '_'}"
    elif t is AttrType.GRAPHS:
        s = "[" + ", ".join(f"graph {g.name or '_'}" for g in v) + "]"
    elif t in (AttrType.TYPE_PROTO, AttrType.TYPE_PROTOS):
        s = str(v) if t is AttrType.TYPE_PROTO else "[" + ", ".join(map(str, v)) + "]"
    else:
        s = t.name.lower()
    return f"{a.name}={s}"
