"""Reading constant values: initializers and ``Constant`` nodes look the same to a pass.

>>> get_const(value)            # numpy array, or None when the value is not a constant  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from irlib import AttrType, Tensor, Value

__all__ = ["get_const", "is_const", "get_scalar"]


def get_const(value: Value | None) -> np.ndarray | None:
    """The numpy data of ``value`` if it is a constant: an initializer that is not a graph input
    (inputs with defaults can be overridden at run time, except in models older than IR 4, where
    every initializer is listed as an input and runtimes treat them as constants) or the output
    of a ``Constant`` node."""
    if value is None:
        return None
    if value.const_value is not None:
        if value.is_graph_input() and not _initializer_inputs_are_constant(value):
            return None
        return value.const_value.numpy()
    node = value.producer()
    if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for a in node.attributes.values():
        if a.ref_attr_name:
            return None
        if a.type is AttrType.TENSOR and isinstance(a.value, Tensor):
            return a.value.numpy()
        if a.name == "value_float":
            return np.array(a.value, np.float32)
        if a.name == "value_floats":
            return np.array(a.value, np.float32)
        if a.name == "value_int":
            return np.array(a.value, np.int64)
        if a.name == "value_ints":
            return np.array(a.value, np.int64)
        if a.name == "value_string":
            return np.array(a.value, object)
        if a.name == "value_strings":
            return np.array(a.value, object)
    return None


def is_const(value: Value | None) -> bool:
    return get_const(value) is not None


def get_scalar(value: Value | None):
    """The single element of a constant holding one value (any shape of size 1), else None."""
    arr = get_const(value)
    if arr is None or arr.size != 1:
        return None
    return arr.reshape(()).item()


def _initializer_inputs_are_constant(value: Value) -> bool:
    graph = value.graph
    return graph is not None and bool(graph.root.meta.get("initializer_inputs_are_constant"))
