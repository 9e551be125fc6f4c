"""What ``irc inspect`` reports about a model, as plain data.

``summarize(model)`` walks the IR once and returns a :class:`ModelSummary`; ``as_json()`` gives
the dictionary behind ``irc inspect --json``, whose keys are stable::

    producer, ir_version, opsets, inputs, outputs, nodes, subgraph_nodes, op_histogram,
    parameters, parameter_bytes

``nodes`` counts every node, those inside subgraphs (If/Loop/Scan bodies) included;
``subgraph_nodes`` says how many of them are inside subgraphs. ``parameters`` counts the elements
of every constant tensor (initializers of all graphs and the ``value`` of Constant nodes) and
``parameter_bytes`` their size as ONNX stores them.

>>> s = summarize(irlib.load("examples/tiny_cnn.onnx"))       # doctest: +SKIP
>>> s.nodes, s.op_histogram["Conv"]                            # doctest: +SKIP
(27, 4)
"""

from __future__ import annotations

import collections
import dataclasses

from irlib import AttrType, Model, Tensor, Value
from irlib.types import TensorType, SparseTensorType

__all__ = ["ModelSummary", "ValueSummary", "summarize"]


@dataclasses.dataclass(frozen=True)
class ValueSummary:
    """A graph input or output: name, element type and shape.

    ``dtype`` is the printer's spelling (``f32``, ``i64``) for tensors and the full type for other
    kinds (``seq<f32[?]>``); ``shape`` is a list of dimensions (int, symbolic name, or ``None`` if
    unknown), or ``None`` when the rank is unknown or the value is not a tensor.
    """

    name: str
    dtype: str | None
    shape: list | None

    def as_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    producer: str
    ir_version: int
    opsets: dict[str, int]
    inputs: list[ValueSummary]
    outputs: list[ValueSummary]
    nodes: int
    subgraph_nodes: int
    op_histogram: dict[str, int]
    parameters: int
    parameter_bytes: int

    def as_json(self) -> dict:
        return {
            "producer": self.producer,
            "ir_version": self.ir_version,
            "opsets": dict(self.opsets),
            "inputs": [v.as_json() for v in self.inputs],
            "outputs": [v.as_json() for v in self.outputs],
            "nodes": self.nodes,
            "subgraph_nodes": self.subgraph_nodes,
            "op_histogram": dict(self.op_histogram),
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
        }


def summarize(model: Model) -> ModelSummary:
    """Count what ``irc inspect`` shows; does not decode any weights."""
    graph = model.graph
    histogram: collections.Counter[str] = collections.Counter()
    total = 0
    for node in graph.all_nodes():
        total += 1
        histogram[node.qualified_op] += 1
    tensors: dict[int, Tensor] = {}
    for g in graph.all_graphs():
        for v in g.initializers:
            tensors[id(v.const_value)] = v.const_value
        for node in g:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attributes.values():
                    if a.type is AttrType.TENSOR and a.value is not None:
                        tensors[id(a.value)] = a.value
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return ModelSummary(
        producer=producer,
        ir_version=model.ir_version,
        opsets={(d or "ai.onnx"): v for d, v in model.opset_imports.items()},
        inputs=[_value(v) for v in graph.inputs],
        outputs=[_value(v) for v in graph.outputs],
        nodes=total,
        subgraph_nodes=total - len(graph),
        op_histogram=dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        parameters=sum(t.size for t in tensors.values()),
        parameter_bytes=sum(t.nbytes for t in tensors.values()),
    )


def _value(v: Value) -> ValueSummary:
    t = v.type
    if isinstance(t, (TensorType, SparseTensorType)):
        shape = None if t.shape is None else list(t.shape)
        dtype = t.dtype.short if isinstance(t, TensorType) else f"sparse<{t.dtype.short}>"
        return ValueSummary(v.name or "", dtype, shape)
    return ValueSummary(v.name or "", None if t is None else str(t), None)
