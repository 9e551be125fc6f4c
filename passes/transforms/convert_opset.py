"""``convert-opset{target=N}``: raise the model's ai.onnx opset with ``onnx.version_converter``.

The fusions of -O2 emit a standard op only where the model's opset has it (LayerNormalization
from 17, Gelu from 20, RMSNormalization and Attention from 23). Raising the opset is the user's
decision, so this pass is in no -O level; ask for it in front of a level::

    irc compile model.onnx --passes "convert-opset{target=23},fuse-layer-norm,fuse-gelu"

The model goes through ONNX (``irlib.to_onnx``), the converter, the checker, and back
(``irlib.from_onnx``); the graph and the opset imports of the model are then replaced in place
(everything else, ir_version and metadata included, stays). Node ``meta`` entries (provenance of
earlier rewrites) do not survive the round trip, and external-data weights are read into memory.
The pass only raises: a target below the model's opset, above what this onnx knows, or one the
converter cannot reach (an op without an adapter) is a one-line error and the model is unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

import onnx
import onnx.version_converter

import irlib
from passes.base import Pass, PassResult
from passes.errors import PassError
from passes.registry import register_pass

__all__ = ["ConvertOpset"]

log = logging.getLogger(__name__)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0].strip() if text else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."


@register_pass
@dataclasses.dataclass(frozen=True)
class ConvertOpset(Pass):
    """Raise the ai.onnx opset to ``target`` with onnx.version_converter (not in any -O level).

    >>> ConvertOpset(target=20).run(model, ctx).stats      # doctest: +SKIP
    {'from': 17, 'to': 20}
    """

    name: ClassVar[str] = "convert-opset"
    #: The ai.onnx opset to convert to (required).
    target: int = 0

    def run(self, model: irlib.Model, ctx) -> PassResult:
        newest = onnx.defs.onnx_opset_version()
        if self.target <= 0:
            raise PassError("convert-opset needs a target opset, e.g. convert-opset{target=20}")
        if self.target > newest:
            raise PassError(f"convert-opset: target {self.target} is newer than this onnx"
                            f" ({onnx.__version__}) knows (up to {newest})")
        current = model.opset()
        if current is None:
            raise PassError("convert-opset: the model imports no ai.onnx opset")
        if self.target < current:
            raise PassError(f"convert-opset only raises the opset: the model is at {current},"
                            f" the target is {self.target}")
        if self.target == current:
            return PassResult(False, {"from": current, "to": current})
        proto = irlib.to_onnx(model)
        try:
            converted = onnx.version_converter.convert_version(proto, self.target)
            onnx.checker.check_model(converted)
        except Exception as e:  # the converter raises RuntimeError/ConvertError/ValidationError
            raise PassError(f"convert-opset: cannot convert opset {current} to {self.target}:"
                            f" {_first_line(e)}") from None
        new = irlib.from_onnx(converted)
        model.graph = new.graph
        model.opset_imports = dict(new.opset_imports)
        log.info("converted ai.onnx opset %d -> %d", current, self.target)
        return PassResult(True, {"from": current, "to": self.target})
