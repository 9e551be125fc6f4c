"""Memory planning: place every intermediate tensor of a model in one arena so that tensors whose
lifetimes do not overlap share memory (as Paddle Inference and TFLite do).

    from passes.memory import plan_model
    plan, summary = plan_model(irlib.load("model.onnx"))
    summary["peak_bytes"], summary["lower_bound_bytes"]
    json.dump(plan.to_json(), open("plan.json", "w"))

The parts: :mod:`~passes.memory.liveness` (lifetimes over the execution order, views and
in-place reuse grouped into buffers, the lower bound), :mod:`~passes.memory.strategies` (greedy
by size, greedy by breadth, best-fit, greedy by size with repair rounds), :mod:`~passes.memory.plan` (the plan, its JSON form and a
checker), :mod:`~passes.memory.reorder` (orders that keep less memory live). The passes
``memory-plan`` and ``reorder-for-memory`` wrap them; docs/memory.md explains the figures.
"""

from __future__ import annotations

from typing import Mapping

from irlib import Model, TensorType
from passes.memory.liveness import (
    INPLACE_OPS, VIEW_OPS, Buffer, Liveness, MemoryPlanError, TensorLife, align,
    compute_liveness, lower_bound, node_names, tensor_nbytes,
)
from passes.memory.plan import MemoryPlan, PlannedTensor, check_plan, plan_memory
from passes.memory.reorder import MemoryOrder, apply_order, memory_order
from passes.memory.strategies import (
    STRATEGIES, arena_size, best_fit, greedy_by_breadth, greedy_by_size,
)

__all__ = [
    "Buffer", "INPLACE_OPS", "Liveness", "MemoryOrder", "MemoryPlan", "MemoryPlanError",
    "PlannedTensor", "STRATEGIES", "TensorLife", "VIEW_OPS", "align", "apply_order",
    "arena_size", "best_fit", "bind_input_shapes", "check_plan", "compute_liveness",
    "greedy_by_breadth", "greedy_by_size", "lower_bound", "memory_order", "node_names",
    "parse_shapes", "plan_memory", "plan_model", "tensor_nbytes",
]


def parse_shapes(items) -> dict[str, int]:
    """``["N=1", "T=8"]`` or ``"N=1,T=8"`` -> ``{"N": 1, "T": 8}`` (one-line error if malformed)."""
    if isinstance(items, Mapping):
        return {str(k): int(v) for k, v in items.items()}
    if isinstance(items, str):
        items = [s for s in items.split(",") if s.strip()]
    out = {}
    for item in items or ():
        name, sep, dim = str(item).partition("=")
        name, dim = name.strip(), dim.strip()
        if not sep or not name or not dim.lstrip("-").isdigit() or int(dim) < 0:
            raise MemoryPlanError(f"bad shape binding {item!r}: write name=size, e.g. N=1")
        out[name] = int(dim)
    return out


def bind_input_shapes(model: Model, shapes: Mapping[str, int]) -> int:
    """Replace the symbolic dims named in ``shapes`` by their sizes in the main graph's input
    types (in place), so that shape inference can make the whole graph static; returns how many
    inputs changed."""
    changed = 0
    for v in model.graph.inputs:
        t = v.type
        if isinstance(t, TensorType) and t.shape is not None and \
                any(isinstance(d, str) and d in shapes for d in t.shape):
            dims = tuple(shapes[d] if isinstance(d, str) and d in shapes else d for d in t.shape)
            v.type = TensorType(t.dtype, dims, t.denotation)
            changed += 1
    return changed


def plan_model(model: Model, *, level: int | None = None, reorder: bool = False,
               shapes=None, strategy: str = "auto", alignment: int = 64):
    """What ``irc plan`` does: returns ``(plan, summary)``.

    The model is changed in place: symbolic input dims bound by ``shapes`` are fixed, shapes are
    inferred (``infer-shapes``), then, only when asked, the ``-O level`` pipeline runs and
    ``reorder-for-memory`` reorders the nodes. Otherwise the model is planned in its stored node
    order. ``summary`` holds ``naive_bytes``, ``lower_bound_bytes``, ``peak_bytes``,
    ``peak_over_lower_bound``, ``naive_over_peak``, ``inplace_count``, ``strategy`` and more.
    """
    from passes.manager import PassManager
    from passes.levels import level_pipeline
    import passes.transforms  # noqa: F401  (registers the passes)

    bindings = parse_shapes(shapes) if shapes else {}
    if bindings:
        bind_input_shapes(model, bindings)
    items = list(level_pipeline(level)) if level is not None else []
    pm = PassManager([*PassManager("infer-shapes").items, *items])
    pm.run(model)
    if reorder:
        from passes.transforms.reorder_for_memory import ReorderForMemory

        PassManager([ReorderForMemory(shapes=tuple(f"{k}={v}" for k, v in bindings.items()),
                                      alignment=alignment)]).run(model)
    plan = plan_memory(model, strategy=strategy, alignment=alignment, shapes=bindings)
    return plan, plan.summary()
