"""The ONNX Runtime backend: the IR model is exported to ONNX and run by an InferenceSession.

    exe = get_backend("ort").compile(model, {"threads": 2, "graph_optimization_level": "disable"})
    y = exe.run({"x": x})["y"]
    exe.save("out.onnx")                         # the artifact is the exported .onnx

Options (all optional):

- ``threads``: intra-op threads (0: ORT's default, one per core).
- ``providers``: execution providers, a list or a comma-separated string, in priority order
  (default ``CPUExecutionProvider``); one that this build of ORT lacks is an error.
- ``graph_optimization_level``: ORT's own graph optimizations, ``disable|basic|extended|all``
  (default ``all``). ``irc check`` runs the reference at ``disable``.
- ``session_config``: a dict of ORT session config entries, passed through unchanged
  (``{"session.intra_op.allow_spinning": "0"}``).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Mapping

import numpy as np

import irlib
from backends.base import Backend, BackendError, Executable
from irlib import Model, Node

__all__ = ["OrtBackend", "OrtExecutable", "ORT_OPT_LEVELS", "make_session"]

log = logging.getLogger(__name__)

#: ``graph_optimization_level`` spellings -> ``onnxruntime.GraphOptimizationLevel`` member names.
ORT_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def make_session(model_bytes: bytes, *, threads: int = 0, providers=("CPUExecutionProvider",),
                 graph_optimization_level: str = "all", session_config: Mapping | None = None):
    """An ``onnxruntime.InferenceSession`` for serialized ``model_bytes`` with irc's options.

    ORT's warnings are silenced (severity error and up); a model ORT refuses raises
    :class:`BackendError` with ORT's message on one line.
    """
    import onnxruntime as ort

    if graph_optimization_level not in ORT_OPT_LEVELS:
        raise BackendError(
            f"ort: graph_optimization_level {graph_optimization_level!r} is not one of "
            f"{'|'.join(ORT_OPT_LEVELS)}")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                          ORT_OPT_LEVELS[graph_optimization_level])
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    for key, value in (session_config or {}).items():
        so.add_session_config_entry(str(key), str(value))
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise BackendError(
            f"ort: execution provider {missing[0]} is not in this onnxruntime build"
            f" (available: {', '.join(available)})")
    try:
        return ort.InferenceSession(model_bytes, so, providers=list(providers))
    except Exception as e:  # ORT raises its own exception types; keep the message, one line
        raise BackendError(f"ort: cannot load the model: {_one_line(e)}") from e


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class OrtExecutable(Executable):
    """A model in an ORT session. ``proto`` is the exported ONNX model that ``save`` writes."""

    backend = "ort"

    def __init__(self, proto, session, options: dict):
        self.proto = proto
        self.session = session
        self.options = options
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self.session.run(None, dict(inputs))
        except Exception as e:
            raise BackendError(f"ort: run failed: {_one_line(e)}") from e
        return dict(zip(self.output_names, results))

    def save(self, path: str) -> str:
        irlib.io.save_proto(self.proto, path)
        return os.fspath(path)

    @property
    def artifact_suffix(self) -> str:
        return ".onnx"


@functools.lru_cache(maxsize=1)
def _cpu_kernels() -> dict[tuple[str, str], list[tuple[int, int]]] | None:
    """(domain, op) -> opset ranges of ORT's registered CPU kernels, or None when this build does
    not expose them."""
    try:
        from onnxruntime.capi import _pybind_state as C

        defs = C.get_all_opkernel_def()
    except Exception:  # not exposed by every build: fall back to trusting the domain
        return None
    table: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for k in defs:
        if k.provider != "CPUExecutionProvider":
            continue
        domain = "" if k.domain in ("", "ai.onnx") else k.domain
        table.setdefault((domain, k.op_name), []).append(tuple(k.version_range))
    return table


_KNOWN_DOMAINS = ("", "ai.onnx", "com.microsoft", "ai.onnx.ml")


class OrtBackend(Backend):
    """ONNX Runtime (CPU and whatever providers this build has)."""

    name = "ort"
    description = ("ONNX Runtime: exports the IR to ONNX and runs it in an InferenceSession;"
                   " artifact: the .onnx file")
    options_help = {
        "threads": "intra-op threads (0: ORT's default)",
        "providers": "execution providers in priority order (default CPUExecutionProvider)",
        "graph_optimization_level": "ORT's graph optimizations: disable|basic|extended|all",
        "session_config": "dict of ORT session config entries, passed through",
    }

    def is_available(self) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return False, "onnxruntime not installed"
        return True, ""

    def version(self) -> str:
        try:
            import onnxruntime

            return onnxruntime.__version__
        except ImportError:
            return ""

    def supports(self, node: Node, model: Model | None = None) -> bool | str:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        if model is not None and any(
                f.domain == node.domain and f.name == node.op_type for f in model.functions):
            return True  # a model-local function: ORT inlines it
        table = _cpu_kernels()
        if table is None:
            if domain in _KNOWN_DOMAINS:
                return True
            return f"domain {node.domain!r} is not one ORT implements"
        ranges = table.get((domain, node.op_type))
        version = model.opset(node.domain) if model is not None else None
        label = f"{domain or 'ai.onnx'}::{node.op_type}"
        if ranges:
            if version is None or any(lo <= version <= hi for lo, hi in ranges):
                return True
        if domain == "" and _has_function_body(node.op_type, version):
            return True  # ORT expands ONNX function ops that have no kernel
        if not ranges:
            return f"ORT has no CPU kernel for {label}"
        return f"ORT has no CPU kernel for {label} at opset {version}"

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Known keys with valid values, normalized: ``providers`` a list, ``threads`` an int."""
        opts = super().check_options(options)
        providers = opts.get("providers", ("CPUExecutionProvider",))
        if isinstance(providers, str):
            providers = [p.strip() for p in providers.split(",") if p.strip()]
        if not providers or not all(isinstance(p, str) for p in providers):
            raise BackendError("ort: providers must be a non-empty list of provider names")
        try:
            threads = int(opts.get("threads", 0))
        except (TypeError, ValueError):
            raise BackendError(f"ort: threads must be an integer, not {opts['threads']!r}") from None
        if threads < 0:
            raise BackendError(f"ort: threads must be >= 0, not {threads}")
        level = opts.get("graph_optimization_level", "all")
        if level not in ORT_OPT_LEVELS:
            raise BackendError(f"ort: graph_optimization_level {level!r} is not one of "
                               f"{'|'.join(ORT_OPT_LEVELS)}")
        config = opts.get("session_config") or {}
        if not isinstance(config, Mapping):
            raise BackendError("ort: session_config must be a dict of strings")
        return {"threads": threads, "providers": list(providers),
                "graph_optimization_level": level,
                "session_config": {str(k): str(v) for k, v in config.items()}}

    def compile(self, model: Model, options: Mapping[str, Any] | None = None) -> OrtExecutable:
        opts = self.check_options(options)
        proto = irlib.to_onnx(model)
        session = make_session(proto.SerializeToString(), **opts)
        log.info("ort: compiled %d nodes (%s)", len(model.graph), opts)
        return OrtExecutable(proto, session, opts)


def _has_function_body(op_type: str, version: int | None) -> bool:
    import onnx.defs

    try:
        schema = (onnx.defs.get_schema(op_type, version, "") if version is not None
                  else onnx.defs.get_schema(op_type, ""))
    except Exception:  # onnx.defs.SchemaError: no such op
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)
