"""The TVM backend: irc's IR lowered to Relax, optimized and built with LLVM, run by the VM.

    from backends import get_backend
    exe = get_backend("tvm").compile(model, {"threads": 2})     # lower, optimize, build
    outputs = exe.run({"x": x})                                 # the Relax VM, in process
    exe.save("model.so")                                        # model.so + model.so.json
    again = backends.tvm.load_module("model.so")                # in another process

On the command line::

    irc compile model.onnx --backend tvm -o model.so --backend-option threads=4
    irc check model.onnx --backend tvm

The layers: :mod:`.converters` (one converter per ONNX op, registered with ``@converter``),
:mod:`.lowering` (``relax.BlockBuilder`` over the IR, the support check), :mod:`.build` (target,
pipeline, LLVM, export), :mod:`.tune` (MetaSchedule), :mod:`.module` (the executable and
``load_module``). TVM is imported lazily (``import tvm`` takes seconds); ``irc backends`` never
imports it. Options are in ``TVMBackend.options_help`` and docs/backends/tvm.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any, Mapping

from backends.base import Backend, BackendError
from backends.tvm._env import availability, ffi_version, import_tvm, tvm_version
from irlib import Model, Node

__all__ = ["TVMBackend", "TVMExecutable", "load_module"]

log = logging.getLogger(__name__)

FALLBACKS = ("", "none", "onnx-frontend")


class TVMBackend(Backend):
    """Apache TVM (Relax, LLVM for the CPU).

    >>> exe = TVMBackend().compile(model, {"target": "native", "threads": 2})   # doctest: +SKIP
    """

    name = "tvm"
    description = ("Apache TVM: irc's IR lowered to Relax (one converter per op), fused and built"
                   " with LLVM for the CPU; artifact: a shared library (.so) + JSON sidecar")
    options_help = {
        "target": "CPU to build for: native (default), generic, an LLVM CPU name, or a TVM"
                  " target dict",
        "threads": "runtime threads (0: one per core, as ORT)",
        "dims": "bind symbolic dimensions, e.g. N=1 or {\"N\": 1} (a static module tunes best)",
        "tune": "MetaSchedule trials to run before building (0: none)",
        "tune_per_task": "at most this many trials per task (default: tune / tasks, >= 16)",
        "tuning_db": "folder of MetaSchedule records: written by tune, reused by later compiles",
        "fallback": "onnx-frontend: hand the whole model to TVM's own ONNX importer",
        "progress": "show a progress bar while tuning (default: when stderr is a terminal)",
    }

    def is_available(self) -> tuple[bool, str]:
        return availability()

    def version(self) -> str:
        return tvm_version()

    def supports(self, node: Node, model: Model | None = None) -> bool | str:
        from backends.tvm.lowering import node_support

        return node_support(node)

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        opts = super().check_options(options)
        out: dict[str, Any] = {"target": opts.get("target", "native")}
        for key in ("threads", "tune", "tune_per_task"):
            raw = opts.get(key, 0)
            try:
                out[key] = int(raw)
            except (TypeError, ValueError):
                raise BackendError(f"tvm: {key} must be an integer, not {raw!r}") from None
            if out[key] < 0:
                raise BackendError(f"tvm: {key} must be >= 0, not {out[key]}")
        if not out["threads"]:
            out["threads"] = os.cpu_count() or 1
        db = opts.get("tuning_db") or ""
        if not isinstance(db, str):
            raise BackendError(f"tvm: tuning_db must be a folder path, not {db!r}")
        out["tuning_db"] = db
        fallback = opts.get("fallback") or ""
        if fallback not in FALLBACKS:
            raise BackendError(f"tvm: fallback {fallback!r} is not one of none|onnx-frontend")
        out["fallback"] = "" if fallback == "none" else fallback
        progress = opts.get("progress", "auto")
        if isinstance(progress, str) and progress.lower() in ("true", "false", "auto"):
            progress = {"true": True, "false": False, "auto": "auto"}[progress.lower()]
        if progress not in (True, False, "auto"):
            raise BackendError(f"tvm: progress must be true, false or auto, not {progress!r}")
        out["progress"] = progress
        out["dims"] = _parse_dims(opts.get("dims"))
        return out

    def compile(self, model: Model, options: Mapping[str, Any] | None = None) -> "TVMExecutable":
        from backends.tvm import build as B
        from backends.tvm.lowering import Signature, lower
        from backends.tvm.module import TVMExecutable

        opts = self.check_options(options)
        self.require_available()
        import_tvm()
        t0 = time.perf_counter()
        if opts["fallback"] == "onnx-frontend":
            mod, sig = _from_onnx_frontend(model)
        else:
            mod, sig = lower(model, opts["dims"])
        lowered_s = time.perf_counter() - t0
        target = B.make_target(opts["target"], opts["threads"])
        db_dir = opts["tuning_db"]
        tuning = None
        if opts["tune"]:
            from backends.tvm.tune import tune

            if not db_dir:
                raise BackendError("tvm: tune needs tuning_db=DIR to keep its records")
            tuning = tune(mod, target, db_dir, opts["tune"], per_task=opts["tune_per_task"] or None,
                          progress=opts["progress"])
        elif db_dir and not os.path.isdir(db_dir):
            raise BackendError(f"tvm: tuning_db {db_dir!r} does not exist (run with tune=N first)")
        mod = B.optimize(mod, target, db_dir or None)
        ex = B.build(mod, target)
        total = time.perf_counter() - t0
        meta = {
            "format": "irc-tvm-module/1",
            "lowering": opts["fallback"] or "irc-converters",
            "tvm_version": tvm_version(),
            "tvm_ffi_version": ffi_version(),
            "target": B.target_json(target),
            "threads": opts["threads"],
            "irc_version": _irc_version(),
            "model_sha256": _model_hash(model),
            "source_model_sha256": _source_hash(model),
            "tuning": {"trials": opts["tune"], "database": db_dir or None,
                       **({"tasks": tuning["tasks"], "seconds": round(tuning["seconds"], 2)}
                          if tuning else {})},
            "compile_seconds": {"lower": round(lowered_s, 3), "total": round(total, 3)},
            **sig.as_json(),
        }
        log.info("tvm: compiled %d nodes in %.2f s (lowering %.2f s)", len(model.graph), total,
                 lowered_s)
        return TVMExecutable(ex, Signature.from_json(meta), meta, opts)


def _from_onnx_frontend(model: Model):
    """TVM's own ONNX importer on the exported model (``fallback=onnx-frontend``)."""
    import irlib
    from backends.tvm.lowering import Signature, _describe, runtime_inputs

    from tvm.relax.frontend.onnx import from_onnx

    proto = irlib.to_onnx(model)
    try:
        mod = from_onnx(proto, opset=model.opset(""), keep_params_in_input=False)
    except Exception as e:
        raise BackendError("tvm: TVM's ONNX importer failed: "
                           f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from e
    g = model.graph
    return mod, Signature([_describe(v) for v in runtime_inputs(model)],
                          [_describe(v) for v in g.outputs])


def _parse_dims(value) -> dict[str, int]:
    """``"N=1,S=128"`` or ``{"N": 1}`` -> ``{"N": 1, ...}``."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise BackendError(f"tvm: dims {value!r}: expected NAME=SIZE[,NAME=SIZE]")
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise BackendError(f"tvm: dims must be NAME=SIZE pairs or a dict, not {value!r}")
    try:
        out = {str(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise BackendError(f"tvm: dims {value!r}: sizes must be integers") from None
    if any(v <= 0 for v in out.values()):
        raise BackendError(f"tvm: dims {value!r}: sizes must be positive")
    return out


def _irc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("irc")
    except PackageNotFoundError:
        return ""


def _source_hash(model: Model) -> str | None:
    """sha256 of the file the model was loaded from (``irlib.load`` records it), if known."""
    path = model.meta.get("source_path")
    if not path or not os.path.isfile(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _model_hash(model: Model) -> str:
    import irlib

    data = irlib.to_onnx(model).SerializeToString(deterministic=True)
    return hashlib.sha256(data).hexdigest()


def load_module(path: str, threads: int | None = None) -> "TVMExecutable":
    """An exported ``.so`` (with its ``.so.json`` sidecar) as an executable, in any process."""
    from backends.tvm.module import load_module as _load

    return _load(path, threads)


def __getattr__(name: str):  # TVMExecutable without importing the module eagerly
    if name == "TVMExecutable":
        from backends.tvm.module import TVMExecutable

        return TVMExecutable
    raise AttributeError(name)
