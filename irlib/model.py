"""``Model``: the main graph plus what ONNX keeps around it (opsets, producer, metadata)."""

from __future__ import annotations

from irlib.graph import Graph

__all__ = ["Model", "DEFAULT_IR_VERSION"]

#: IR version written for models irc builds from scratch. ORT 1.32 refuses version 14, which
#: onnx 1.23 writes by default; models read from a file keep their own version.
DEFAULT_IR_VERSION = 10


class Model:
    """An ONNX model in the IR.

    ``opset_imports`` maps a domain (``""`` is ai.onnx) to its version. ``functions`` and
    ``extra`` carry ONNX parts irc does not rewrite (model-local functions, training info) so
    that export gives them back unchanged.

    >>> m = Model(Graph("main"), opset_imports={"": 17})
    >>> m.opset()
    17
    """

    def __init__(
        self,
        graph: Graph,
        *,
        ir_version: int = DEFAULT_IR_VERSION,
        opset_imports: dict[str, int] | None = None,
        producer_name: str = "irc",
        producer_version: str = "",
        domain: str = "",
        model_version: int = 0,
        doc_string: str = "",
        metadata_props: dict[str, str] | None = None,
        functions: list | None = None,
    ):
        self.graph = graph
        self.ir_version = ir_version
        self.opset_imports: dict[str, int] = dict(opset_imports if opset_imports is not None else {"": 21})
        self.producer_name = producer_name
        self.producer_version = producer_version
        self.domain = domain
        self.model_version = model_version
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = dict(metadata_props or {})
        self.functions = list(functions or [])
        self.extra = None  # opaque ModelProto holding training_info / configuration
        self.meta: dict = {}

    def opset(self, domain: str = "") -> int | None:
        """The imported version of ``domain`` (``""`` and ``"ai.onnx"`` are the same)."""
        if domain in ("", "ai.onnx"):
            return self.opset_imports.get("", self.opset_imports.get("ai.onnx"))
        return self.opset_imports.get(domain)

    def __repr__(self) -> str:
        ops = ", ".join(f"{d or 'ai.onnx'}:{v}" for d, v in self.opset_imports.items())
        return f"Model(ir_version={self.ir_version}, opsets=[{ops}], {self.graph!r})"
