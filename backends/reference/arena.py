"""The reference executor: runs a model with numpy, optionally inside one memory arena.

With a :class:`~passes.memory.MemoryPlan`, every planned intermediate tensor is a numpy view over
one preallocated ``uint8`` buffer at its planned offset, and every op writes its result into its
output's view. A plan that lets two live tensors overlap therefore corrupts the results: running
a model under its plan and comparing with ONNX Runtime proves the plan sound. Without a plan each
tensor gets its own array, which makes this a plain, independent numpy reference.

>>> outs = ReferenceExecutor(model).run({"x": x})                     # doctest: +SKIP
>>> plan = plan_memory(model)                                         # doctest: +SKIP
>>> outs = ReferenceExecutor(model, plan).run({"x": x})               # doctest: +SKIP

The arena starts filled with ``0xFF`` bytes (NaN for floats), so reading a tensor before it was
written shows up in the outputs.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from irlib import Model, TensorType, Value
from backends.reference.ops import OPS, UnsupportedOpError

__all__ = ["ExecutionError", "ReferenceExecutor", "run_reference"]

log = logging.getLogger(__name__)


class ExecutionError(RuntimeError):
    """The model or plan cannot be run as given (missing input, plan for another order ...)."""


class ReferenceExecutor:
    """Runs ``model``'s main graph in its node order; with ``plan``, inside one arena."""

    def __init__(self, model: Model, plan=None, *, shapes: Mapping[str, int] | None = None):
        self.model = model
        self.plan = plan
        self.shapes = dict(shapes or {})
        self.opset = model.opset("") or 21
        self.nodes = list(model.graph)
        for n in self.nodes:
            if n.domain not in ("", "ai.onnx") or n.op_type not in OPS:
                raise UnsupportedOpError(
                    f"the reference executor has no {n.qualified_op} (node {n.name!r})")
        self.slots = {}
        self.arena_bytes = 0
        if plan is not None:
            from passes.memory import node_names

            if list(plan.order) != node_names(self.nodes):
                raise ExecutionError("the plan was made for another node order; plan the model again")
            self.slots = plan.by_value()
            if len(self.slots) != len(plan.tensors):
                raise ExecutionError("the plan's tensors are not bound to this model's values")
            self.arena_bytes = plan.arena_bytes
        self.arena: np.ndarray | None = None

    # -- running ----------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on ``feeds`` ({input name: array}); returns {output name: array} (copies)."""
        graph = self.model.graph
        env: dict[Value, np.ndarray] = {}
        shapes = dict(self.shapes)
        for v in graph.initializers:
            env[v] = v.const_value.numpy()
        for v in graph.inputs:
            if v.name in feeds:
                arr = np.asarray(feeds[v.name])
                env[v] = arr
                t = v.type
                if isinstance(t, TensorType) and t.shape is not None and len(t.shape) == arr.ndim:
                    for d, n in zip(t.shape, arr.shape):
                        if isinstance(d, str):
                            shapes.setdefault(d, n)
            elif v not in env:
                raise ExecutionError(f"no value fed for graph input {v.name!r}")
        view_of = self._views(shapes) if self.plan is not None else {}
        for node in self.nodes:
            inputs = [None if v is None else env[v] for v in node.inputs]
            out = [view_of.get(v) for v in node.outputs] if view_of else None
            results = OPS[node.op_type](node, inputs, out, self.opset)
            for k, v in enumerate(node.outputs):
                r = results[k] if k < len(results) else None
                if not v.name:
                    continue
                if r is None:
                    if v.has_uses() or v.is_graph_output():
                        raise ExecutionError(f"{node.op_type} node {node.name!r} did not compute {v.name!r}")
                    continue
                r = np.asarray(r)
                slot = view_of.get(v)
                if slot is None:
                    env[v] = r
                    continue
                if r.shape != slot.shape:
                    raise ExecutionError(
                        f"{node.op_type} node {node.name!r} computed {v.name!r} with shape"
                        f" {r.shape}, but its type says {slot.shape}")
                if r is not slot:
                    np.copyto(slot, r, casting="unsafe")
                env[v] = slot
        return {v.name: np.array(env[v], copy=True) for v in graph.outputs}

    def _views(self, shapes: Mapping[str, int]) -> dict[Value, np.ndarray]:
        """The arena (allocated once per run, filled with 0xFF) and a view per planned tensor."""
        align = self.plan.alignment
        raw = np.full(self.arena_bytes + align, 0xFF, np.uint8)
        base = (-raw.ctypes.data) % align
        self.arena = arena = raw[base:base + self.arena_bytes]
        views = {}
        for v, t in self.slots.items():
            shape = _static_shape(v, shapes)
            dtype = v.type.dtype.numpy
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > t.size or t.offset + nbytes > self.arena_bytes:
                raise ExecutionError(
                    f"tensor {v.name!r} needs {nbytes} bytes but its slot holds {t.size}"
                    f" at offset {t.offset} of a {self.arena_bytes}-byte arena")
            views[v] = arena[t.offset:t.offset + nbytes].view(dtype).reshape(shape)
        return views


def _static_shape(v: Value, shapes: Mapping[str, int]) -> tuple[int, ...]:
    t = v.type
    dims = []
    for i, d in enumerate(t.shape):
        if isinstance(d, str):
            if d not in shapes:
                raise ExecutionError(f"value {v.name!r}: dim {i} is the unbound symbol {d!r}")
            d = shapes[d]
        dims.append(int(d))
    return tuple(dims)


def run_reference(model: Model, feeds: Mapping[str, np.ndarray], plan=None,
                  shapes: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Shorthand for ``ReferenceExecutor(model, plan, shapes=shapes).run(feeds)``."""
    return ReferenceExecutor(model, plan, shapes=shapes).run(feeds)
