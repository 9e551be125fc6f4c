"""The numpy reference backend: an executor that runs a model op by op with numpy, either in one
preallocated arena laid out by a memory plan (to prove the plan right) or with a plain array per
tensor (an independent second reference next to ONNX Runtime).

    from backends.reference import ReferenceExecutor
    from passes.memory import plan_memory
    outs = ReferenceExecutor(model, plan_memory(model)).run({"x": x})

``OPS`` lists the ops it implements (those of ONNX's light_* models and examples/tiny_cnn.onnx,
plus common elementwise ops).
"""

from backends.reference.arena import ExecutionError, ReferenceExecutor, run_reference
from backends.reference.ops import OPS, UnsupportedOpError

__all__ = ["ExecutionError", "OPS", "ReferenceExecutor", "UnsupportedOpError", "run_reference"]
