"""Built-in passes, one per module; importing this package registers them all."""

from passes.transforms import cse, dce, eliminate_identity, fold_constants, infer_shapes, memory_plan, reorder_for_memory  # noqa: F401
