"""GELU (decomposed or the ``Gelu`` op), with the bias Add before it -> ONNX Runtime's contrib
kernels ``com.microsoft.BiasGelu`` / ``Gelu`` / ``FastGelu``.

    h = Add(MatMul(x, W), b)  ;  y = 0.5 * h * (1 + Erf(h / sqrt 2))   ->  y = BiasGelu(MatMul(x, W), b)
    y = 0.5 * h * (1 + Erf(h / sqrt 2))                                ->  y = com.microsoft.Gelu(h)
    y = 0.5 * h * (1 + Tanh(sqrt(2/pi) * (h + 0.044715 h^3)))          ->  y = FastGelu(h[, b])
    y = Gelu(h)   (opset >= 20; approximate="tanh": FastGelu)          ->  the same

The erf/tanh decompositions are read the way ``fuse-gelu`` reads them (any algebraic spelling,
constants to 1e-4) -- that pass needs opset 20 for the standard op, and the zoo's opset-17 exports
keep theirs decomposed, which is where this pass takes over at ``-O3 --target ort``. The bias is
taken when it is a constant 1-D vector of the last dimension's size added to the GELU input and
read nowhere else. float32 only (ORT's CPU kernels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_gelu import GeluPattern
from passes.transforms.fuse_layer_norm import NoMatch, RecognitionPattern, commit, is_op
from passes.transforms.ort_common import MS_DOMAIN, OrtPatternPass, is_float32

__all__ = ["OrtFuseBiasGelu", "OrtGeluDecomposition", "OrtGeluOp"]


def _bias(x: Value, readers: list[Node]) -> tuple[Value, Value, Node] | None:
    """``(h, b, add)`` when ``x = Add(h, b)`` with ``b`` a constant float32 vector of x's last
    dimension, and ``x`` is read only by ``readers``."""
    add = x.producer()
    if not is_op(add, "Add") or x.is_graph_output():
        return None
    if any(u not in readers for u in x.users()):
        return None
    last = x.shape[-1] if x.shape else None
    for i in (0, 1):
        b, h = add.inputs[i], add.inputs[1 - i]
        arr = get_const(b)
        if arr is not None and arr.dtype == np.float32 and arr.ndim == 1 and arr.shape[0] == last \
                and h is not b and h.shape == x.shape:
            return h, b, add
    return None


def _emit(rewriter: PatternRewriter, root: Node, x: Value, tanh: bool, nodes: list[Node],
          readers: list[Node]) -> bool | str:
    if not is_float32(x) or not is_float32(root.output) or x.shape is None:
        raise NoMatch("ORT's GELU kernels run float32 with a known shape")
    found = _bias(x, readers)
    name = root.name
    if found is not None:
        h, b, add = found
        nodes = [add, *nodes]
        op = "FastGelu" if tanh else "BiasGelu"
        new = rewriter.make_node(op, [h, b], domain=MS_DOMAIN, name=name)
    else:
        new = rewriter.make_node("FastGelu" if tanh else "Gelu", [x], domain=MS_DOMAIN, name=name)
    return commit(rewriter, root, new.output, nodes)


class OrtGeluDecomposition(GeluPattern):
    """The erf/tanh GELU decomposition (+ bias) -> com.microsoft Gelu/BiasGelu/FastGelu."""

    name = "ort-gelu-decomposition"
    root_ops = ("Erf", "Tanh")

    def find(self, t: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        x, root, nodes = self.match(t)
        return _emit(rewriter, root, x, t.op_type == "Tanh", nodes, nodes)


class OrtGeluOp(RecognitionPattern):
    """Gelu(Add(h, b)) (standard op, opset >= 20) -> com.microsoft BiasGelu/Gelu/FastGelu."""

    name = "ort-gelu-op"
    root_ops = ("Gelu",)

    def find(self, g: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        if not is_op(g, "Gelu"):
            raise NoMatch()
        approx = g.attr("approximate", "none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        return _emit(rewriter, g, g.inputs[0], approx == "tanh", [g], [g])


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtFuseBiasGelu(OrtPatternPass):
    """Fuse (bias Add +) GELU into com.microsoft BiasGelu, Gelu or FastGelu."""

    name = "ort-fuse-bias-gelu"
    rules = (OrtGeluDecomposition, OrtGeluOp)
