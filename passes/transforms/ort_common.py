"""What the ``ort-*`` passes (ONNX Runtime -O3 fusions) share: the contrib domains, the opset
import a model needs to use them, and the activations ORT's fused CPU kernels apply.

The ``ort-*`` passes emit ONNX Runtime contrib ops (``com.microsoft``) and NCHWc layout ops
(``com.microsoft.nchwc``); the result runs only under ONNX Runtime, so they are in ``-O3`` for
``--target ort`` only (``passes.levels.TARGET_O3``). Every pass adds the opset import of a domain
it emitted into::

    ensure_domain(model, MS_DOMAIN)      # model.opset_imports["com.microsoft"] = 1
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from irlib import DType, Model, Node
from passes.base import PassResult
from passes.constants import get_const
from passes.rewrite import PatternPass

__all__ = ["MS_DOMAIN", "NCHWC_DOMAIN", "OrtPatternPass", "activation_attrs", "ensure_domain",
           "is_float32", "is_std"]

MS_DOMAIN = "com.microsoft"
NCHWC_DOMAIN = "com.microsoft.nchwc"


def ensure_domain(model: Model, domain: str, version: int = 1) -> None:
    """Import ``domain`` (at ``version``) unless the model already imports it."""
    model.opset_imports.setdefault(domain, version)


def is_std(node: Node | None, *op_types: str) -> bool:
    """``node`` is one of ``op_types`` in the standard (ai.onnx) domain."""
    return node is not None and node.op_type in op_types and node.domain in ("", "ai.onnx")


def is_float32(value) -> bool:
    return value is not None and value.dtype is DType.FLOAT


def activation_attrs(act: Node, opset: int | None) -> dict | str:
    """The ``activation``/``activation_params`` attributes that make a fused ORT CPU kernel
    (FusedConv, FusedGemm, nchwc Conv) apply ``act``, or why it cannot.

    ORT's CPU kernels (MLAS) apply Relu, Sigmoid, Tanh, LeakyRelu(alpha), HardSigmoid(alpha,
    beta) and Clip(min, max) with constant bounds; anything else (Elu, Selu, Softplus, Gelu ...)
    stays a separate node.
    """
    op = act.op_type if act.domain in ("", "ai.onnx") else None
    if op in ("Relu", "Sigmoid", "Tanh"):
        return {"activation": op}
    if op == "LeakyRelu":
        return {"activation": op, "activation_params": [float(act.attr("alpha", 0.01))]}
    if op == "HardSigmoid":
        return {"activation": op, "activation_params": [float(act.attr("alpha", 0.2)),
                                                         float(act.attr("beta", 0.5))]}
    if op == "Clip":
        if opset is not None and opset < 11:
            lo, hi = act.attr("min", float(np.finfo(np.float32).min)), \
                act.attr("max", float(np.finfo(np.float32).max))
        else:
            bounds = []
            for i, default in ((1, np.finfo(np.float32).min), (2, np.finfo(np.float32).max)):
                v = act.inputs[i] if len(act.inputs) > i else None
                if v is None:
                    bounds.append(float(default))
                    continue
                arr = get_const(v)
                if arr is None or arr.size != 1:
                    return "Clip bounds are not constant scalars"
                bounds.append(float(arr.reshape(())))
            lo, hi = bounds
        return {"activation": "Clip", "activation_params": [float(lo), float(hi)]}
    return f"ORT's fused CPU kernels do not apply {act.domain + '::' if act.domain else ''}{act.op_type}"


@dataclasses.dataclass(frozen=True)
class OrtPatternPass(PatternPass):
    """A :class:`PatternPass` that imports ``domains`` into the model when it changed it."""

    domains: ClassVar[dict[str, int]] = {MS_DOMAIN: 1}

    def run(self, model: Model, ctx) -> PassResult:
        result = super().run(model, ctx)
        if result.changed:
            for domain, version in self.domains.items():
                ensure_domain(model, domain, version)
        return result
