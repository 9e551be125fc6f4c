"""Shared test helpers: build ONNX models tersely, check IR models, compare graph structure.

Import them from any test module (pytest puts ``tests/`` on ``sys.path``)::

    from helpers import make_model, parse_ir, assert_valid

    proto = make_model(
        [helper.make_node("Relu", ["x"], ["y"])],
        inputs=[("x", TensorProto.FLOAT, [1, 4])],
        outputs=[("y", TensorProto.FLOAT, [1, 4])],
    )                                  # a ModelProto with ir_version=10 and opset 17
    model = assert_valid(irlib.from_onnx(proto))

The IR version is always set explicitly: onnx 1.23 writes IR version 14 by default, which ONNX
Runtime 1.32 refuses to load.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto, helper, numpy_helper

import irlib

__all__ = [
    "IR_VERSION", "OPSET", "make_model", "value_info", "parse_ir", "assert_valid",
    "graph_structure", "assert_same_structure",
]

#: IR version of the models the helpers build (ORT 1.32 accepts up to 11).
IR_VERSION = 10
#: Default ai.onnx opset of the models the helpers build.
OPSET = 17


def value_info(name: str, elem_type: int = TensorProto.FLOAT,
               shape: Sequence[int | str | None] | None = None) -> onnx.ValueInfoProto:
    """A tensor ``ValueInfoProto``: ``value_info("x", TensorProto.FLOAT, [1, "N"])``."""
    return helper.make_tensor_value_info(name, elem_type, shape)


def _as_value_info(spec) -> onnx.ValueInfoProto:
    if isinstance(spec, onnx.ValueInfoProto):
        return spec
    if isinstance(spec, str):
        return value_info(spec)  # float, unknown shape
    return value_info(*spec)


def make_model(
    nodes: Iterable[onnx.NodeProto],
    inputs: Iterable = (),
    outputs: Iterable = (),
    initializers: Mapping[str, np.ndarray] | Iterable[onnx.TensorProto] = (),
    *,
    opset: int = OPSET,
    opsets: Mapping[str, int] | None = None,
    ir_version: int = IR_VERSION,
    name: str = "main",
) -> onnx.ModelProto:
    """A ``ModelProto`` from nodes and value specs, with ``ir_version`` set.

    ``inputs``/``outputs``: ``ValueInfoProto``s, ``(name, elem_type, shape)`` tuples, or bare
    names (float tensors of unknown shape). ``initializers``: ``{name: ndarray}`` or
    ``TensorProto``s. ``opsets`` adds other domains, e.g. ``{"com.microsoft": 1}``.
    """
    if isinstance(initializers, Mapping):
        inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()]
    else:
        inits = list(initializers)
    graph = helper.make_graph(
        list(nodes), name,
        [_as_value_info(s) for s in inputs],
        [_as_value_info(s) for s in outputs],
        initializer=inits,
    )
    imports = [helper.make_opsetid("", opset)]
    imports += [helper.make_opsetid(d, v) for d, v in (opsets or {}).items()]
    return helper.make_model(graph, opset_imports=imports, ir_version=ir_version)


def parse_ir(text: str) -> irlib.Model:
    """An IR model from ONNX's textual syntax (``onnx.parser``).

    Without a ``<...>`` header, ``ir_version`` and the ai.onnx opset of this module are used::

        parse_ir('''
            main (float[2] x) => (float[2] y) {
                y = Relu(x)
            }
        ''')
    """
    body = text.strip()
    if not body.startswith("<"):
        body = f'<ir_version: {IR_VERSION}, opset_import: ["" : {OPSET}]>\n{body}'
    return irlib.from_onnx(onnx.parser.parse_model(body))


def assert_valid(model: irlib.Model | irlib.Graph) -> irlib.Model | irlib.Graph:
    """Fail the test, listing every problem, unless ``irlib.verify`` accepts ``model``.
    Returns ``model`` so that it can wrap a call: ``m = assert_valid(irlib.load(path))``."""
    problems = irlib.check(model)
    if problems:
        pytest.fail("IR verification failed:\n  " + "\n  ".join(problems), pytrace=False)
    return model


def graph_structure(graph: irlib.Graph) -> tuple:
    """A name-free description of ``graph`` to compare two graphs for isomorphism.

    Each value is referred to by where it comes from: ``("in", k)`` for the k-th input,
    ``("const", k)`` for the k-th initializer, ``("node", i, j)`` for output j of the i-th node,
    ``("outer", name)`` for a value of an enclosing graph. Nodes are described in order with their
    op, domain, inputs, attributes (subgraphs described recursively) and number of outputs.
    """
    ref: dict[int, tuple] = {}
    for k, v in enumerate(graph.inputs):
        ref[id(v)] = ("in", k)
    consts = []
    for k, v in enumerate(graph.initializers):
        ref.setdefault(id(v), ("const", k))
        t = v.const_value
        consts.append((t.dtype, t.shape, t.numpy().tobytes()))

    def describe(v):
        if v is None:
            return None
        return ref.get(id(v), ("outer", v.name))

    nodes = []
    for i, n in enumerate(graph):
        attrs = []
        for a in sorted(n.attributes.values(), key=lambda a: a.name):
            if a.subgraphs():
                value = tuple(graph_structure(g) for g in a.subgraphs())
            elif isinstance(a.value, irlib.Tensor):
                value = (a.value.dtype, a.value.shape, a.value.numpy().tobytes())
            else:
                value = a.value
            attrs.append((a.name, a.type, value))
        nodes.append((n.op_type, n.domain, tuple(describe(v) for v in n.inputs), tuple(attrs),
                      tuple(bool(v.name) for v in n.outputs)))
        for j, v in enumerate(n.outputs):
            ref[id(v)] = ("node", i, j)
    return (
        tuple(v.type for v in graph.inputs),
        tuple(consts),
        tuple(nodes),
        tuple(describe(v) for v in graph.outputs),
    )


def assert_same_structure(a: irlib.Graph, b: irlib.Graph) -> None:
    """Assert that two graphs are isomorphic node for node (names may differ)."""
    sa, sb = graph_structure(a), graph_structure(b)
    assert sa == sb, f"graphs differ:\n  {sa}\n  {sb}"
