"""irlib: irc's in-house intermediate representation of ONNX models.

    import irlib
    model = irlib.load("model.onnx")          # ONNX file -> IR
    irlib.verify(model)                        # SSA, use-def chains, order, types, attributes
    print(irlib.format_model(model))           # one node a line
    irlib.save(model, "out.onnx")              # IR -> ONNX, atomically

The layers: ``dtypes``/``types`` (element types, shapes), ``tensor`` (constants), ``attribute``,
``graph`` (Value, Node, Graph), ``model``; ``from_onnx``/``to_onnx``/``io`` (conversion and files),
``verify``, ``printer``, ``analysis`` (networkx), ``graphsurgeon`` (onnx-graphsurgeon bridge).
"""

from irlib.analysis import find_cycle, to_networkx, topological_generations
from irlib.attribute import Attribute, AttrType
from irlib.dtypes import DType
from irlib.errors import IRError, IRLoadError, VerificationError
from irlib.from_onnx import from_onnx
from irlib.graph import Graph, Node, Use, Value
from irlib.io import atomic_write, load, save
from irlib.model import DEFAULT_IR_VERSION, Model
from irlib.printer import format_graph, format_model, format_node
from irlib.tensor import Tensor
from irlib.to_onnx import to_onnx
from irlib.types import (
    MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType,
)
from irlib.verify import check, verify


def from_graphsurgeon(gs_graph):
    """Convert an ``onnx_graphsurgeon.Graph`` into an IR :class:`Model`."""
    from irlib.graphsurgeon import from_graphsurgeon as _impl

    return _impl(gs_graph)


def to_graphsurgeon(model):
    """Convert an IR :class:`Model` into an ``onnx_graphsurgeon.Graph``."""
    from irlib.graphsurgeon import to_graphsurgeon as _impl

    return _impl(model)


__all__ = [
    "Attribute", "AttrType", "DType", "DEFAULT_IR_VERSION", "Graph", "IRError", "IRLoadError",
    "MapType", "Model", "Node", "OpaqueType", "OptionalType", "SequenceType", "SparseTensorType",
    "Tensor", "TensorType", "Use", "Value", "VerificationError", "atomic_write", "check",
    "find_cycle", "format_graph", "format_model", "format_node", "from_graphsurgeon", "from_onnx",
    "load", "save", "to_graphsurgeon", "to_networkx", "to_onnx", "topological_generations",
    "verify",
]
__version__ = "0.1.0"
