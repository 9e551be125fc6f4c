"""A bridge to onnx-graphsurgeon, for users who edit models with its API.

Both directions go through an ONNX ``ModelProto``, which graphsurgeon imports and exports itself:

    gs_graph = irlib.to_graphsurgeon(model)     # IR -> ModelProto -> gs.Graph
    ...edit with gs (node.i(), node.o(), graph.cleanup() ...)...
    model = irlib.from_graphsurgeon(gs_graph)   # gs.Graph -> ModelProto -> IR (sorted, checked)

What graphsurgeon keeps survives the round trip: nodes, their names, attributes and domains,
tensor names, dtypes and shapes, constants, subgraphs, the opsets, producer and IR version. What
graphsurgeon drops (doc strings, metadata, value ``meta`` dicts) is lost on the way through it.

graphsurgeon's graph may be in any node order and may hold dangling nodes; ``from_graphsurgeon``
sorts it the way :func:`irlib.from_onnx` does and refuses, with an :class:`IRLoadError`, what
cannot be a well-formed IR (a cycle, a use of a tensor nothing defines).
"""

from __future__ import annotations

import onnx

from irlib.errors import IRLoadError
from irlib.from_onnx import from_onnx
from irlib.model import DEFAULT_IR_VERSION, Model
from irlib.to_onnx import to_onnx

__all__ = ["from_graphsurgeon", "to_graphsurgeon"]


def _gs():
    try:
        import onnx_graphsurgeon as gs
    except ImportError:  # pragma: no cover - it is a hard dependency in pyproject.toml
        raise IRLoadError("onnx-graphsurgeon is not installed (pip install onnx-graphsurgeon)") from None
    return gs


def from_graphsurgeon(gs_graph) -> Model:
    """Convert an ``onnx_graphsurgeon.Graph`` into an IR :class:`Model`.

    A graph built in graphsurgeon from scratch has no IR version: it gets the lowest one its opsets
    need, and at least :data:`irlib.DEFAULT_IR_VERSION`.
    """
    gs = _gs()
    if not isinstance(gs_graph, gs.Graph):
        raise TypeError(f"expected onnx_graphsurgeon.Graph, got {type(gs_graph).__name__}")
    try:
        proto = gs.export_onnx(gs_graph, do_type_check=False)
    except Exception as e:  # graphsurgeon raises its own exception types (and plain ones)
        raise IRLoadError(f"graphsurgeon could not export the graph: {' '.join(str(e).split())}") from None
    if gs_graph.ir_version is None:
        needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        proto.ir_version = max(needed, DEFAULT_IR_VERSION)
    return from_onnx(proto)


def to_graphsurgeon(model: Model):
    """Convert an IR :class:`Model` into an ``onnx_graphsurgeon.Graph``.

    Weights stored in external files are read into the graph (graphsurgeon keeps them lazily).
    """
    gs = _gs()
    return gs.import_onnx(to_onnx(model))
