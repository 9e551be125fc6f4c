"""MatMul (numpy semantics: batched, broadcasting, 1-D operands) and Gemm."""

from __future__ import annotations

from backends.tvm._env import relax
from backends.tvm.converters._common import scalar
from backends.tvm.converters._registry import converter
from irlib import Node


@converter("MatMul", notes="batched and broadcasting, 1-D operands as numpy")
def matmul(cx, node: Node):
    return relax.op.matmul(cx.arg(node, 0), cx.arg(node, 1))


@converter("Gemm", notes="transA/transB, alpha, beta, C broadcast")
def gemm(cx, node: Node):
    a, b, c = cx.arg(node, 0), cx.arg(node, 1), cx.arg(node, 2)
    if node.attr("transA", 0):
        a = relax.op.permute_dims(a, [1, 0])
    if node.attr("transB", 0):
        b = relax.op.permute_dims(b, [1, 0])
    y = cx.emit(relax.op.matmul(a, b))
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        y = cx.emit(relax.op.multiply(y, scalar(cx, alpha, y)))
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = relax.op.multiply(c, scalar(cx, beta, y))
        y = relax.op.add(y, c)
    return y
