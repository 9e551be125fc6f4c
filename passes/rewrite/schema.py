"""What an op can run at a given opset, read from ONNX's own schemas.

A rewrite that emits an op the model did not have before (MatMul + Add -> Gemm) must make sure
the model's opset defines that op and accepts the element type, so the result still runs::

    op_accepts("Gemm", 17, DType.FLOAT)        # True
    op_accepts("Gemm", 17, DType.INT8)         # False: Gemm has no int8 kernel in the standard
    op_accepts("Gemm", 10, DType.BFLOAT16)     # False: bfloat16 came with Gemm-13
"""

from __future__ import annotations

import functools

import onnx

from irlib import DType

__all__ = ["op_schema", "op_accepts", "op_since_version"]


@functools.lru_cache(maxsize=1024)
def op_schema(op_type: str, opset: int | None = None, domain: str = ""):
    """The ``onnx.defs.OpSchema`` of ``op_type`` in force at ``opset`` (None: the newest one),
    or ``None`` when the op does not exist at that opset."""
    domain = "" if domain == "ai.onnx" else domain
    try:
        return onnx.defs.get_schema(op_type, opset or onnx.defs.onnx_opset_version(), domain)
    except onnx.defs.SchemaError:
        return None


def op_since_version(op_type: str, opset: int | None = None, domain: str = "") -> int | None:
    """The opset version that introduced the definition of ``op_type`` in force at ``opset``."""
    schema = op_schema(op_type, opset, domain)
    return None if schema is None else schema.since_version


def op_accepts(op_type: str, opset: int | None, dtype, input_index: int = 0,
               domain: str = "") -> bool:
    """True when ``op_type`` exists at ``opset`` and its input ``input_index`` accepts tensors
    of element type ``dtype`` (a :class:`DType` or its ONNX code)."""
    schema = op_schema(op_type, opset, domain)
    if schema is None or dtype is None:
        return False
    if not schema.inputs:
        return False
    formal = schema.inputs[min(input_index, len(schema.inputs) - 1)]
    wanted = f"tensor({DType(int(dtype)).name.lower()})"
    for constraint in schema.type_constraints:
        if constraint.type_param_str == formal.type_str:
            return wanted in constraint.allowed_type_strs
    return formal.type_str == wanted
