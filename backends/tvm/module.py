"""A compiled TVM module: run it with the Relax VM, save it as ``.so`` + JSON, load it back.

    exe = load_module("model.so")          # reads model.so.json for names, dtypes, shapes
    y = exe.run({"x": x})["y"]

The sidecar (``model.so.json``) records the interface and how the library was made: input and
output names, dtypes and shapes, TVM and tvm-ffi versions, the target dict, the thread count,
irc's version, the SHA-256 of the ONNX model that was lowered, the tuning run, compile times.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Mapping

import numpy as np

from backends.base import BackendError, Executable
from backends.tvm._env import import_tvm, tvm
from backends.tvm.lowering import Signature

__all__ = ["TVMExecutable", "load_module"]

log = logging.getLogger(__name__)


class TVMExecutable(Executable):
    """A Relax VM executable with its :class:`Signature` and sidecar ``meta``."""

    backend = "tvm"

    def __init__(self, ex, signature: Signature, meta: dict, options: dict, vm=None):
        from backends.tvm.build import set_threads
        from backends.tvm._env import relax

        self.ex = ex
        self.signature = signature
        self.meta = meta
        self.options = options
        self.input_names = signature.input_names
        self.output_names = signature.output_names
        set_threads(int(options.get("threads") or 0))
        self.vm = vm if vm is not None else relax.VirtualMachine(ex, tvm.cpu())
        self._main = self.vm["main"]

    def _feed(self, inputs: Mapping[str, np.ndarray]) -> list:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BackendError(f"tvm: missing input {missing[0]!r} (inputs: "
                               f"{', '.join(self.input_names)})")
        args = []
        for spec in self.signature.inputs:
            arr = np.asarray(inputs[spec["name"]])
            want = spec.get("dtype")
            if want and arr.dtype != np.dtype(want):
                raise BackendError(f"tvm: input {spec['name']!r} has dtype {arr.dtype}, the"
                                   f" module takes {want}")
            shape = spec.get("shape")
            if shape is not None:
                ok = len(shape) == arr.ndim and all(
                    not isinstance(d, int) or d == s for d, s in zip(shape, arr.shape))
                if not ok:
                    raise BackendError(f"tvm: input {spec['name']!r} has shape "
                                       f"{list(arr.shape)}, the module takes {shape}")
            if not arr.flags.c_contiguous:  # (np.ascontiguousarray would make 0-d arrays 1-d)
                arr = np.ascontiguousarray(arr)
            args.append(tvm.runtime.tensor(arr, tvm.cpu()))
        return args

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = self._feed(inputs)
        try:
            result = self._main(*args)
        except Exception as e:
            raise BackendError(f"tvm: run failed: {' '.join(str(e).split())[:300]}") from e
        outs = list(result) if not hasattr(result, "numpy") else [result]
        return {name: o.numpy() for name, o in zip(self.output_names, outs)}

    def benchmark(self, inputs: Mapping[str, np.ndarray], repeat: int = 10,
                  number: int = 1) -> list[float]:
        """Seconds per run, ``repeat`` times (each the mean of ``number`` runs), with the
        inputs already on the device (TVM's ``time_evaluator``)."""
        args = self._feed(inputs)
        self.vm.set_input("main", *args)
        timer = self.vm.time_evaluator("invoke_stateful", tvm.cpu(), number=number,
                                       repeat=repeat)
        return [float(t) for t in timer("main").results]

    def save(self, path: str) -> str:
        from backends.tvm.build import export

        written, _ = export(self.ex, path, self.meta)
        return written

    @property
    def artifact_suffix(self) -> str:
        return ".so"


def load_module(path: str, threads: int | None = None) -> TVMExecutable:
    """The executable exported to ``path`` (a ``.so`` with its ``.so.json`` sidecar).
    ``threads`` overrides the thread count recorded at compile time."""
    from backends.tvm.build import load_library

    import_tvm()
    meta_path = os.fspath(path) + ".json"
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except OSError as e:
        raise BackendError(f"tvm: cannot read the sidecar {meta_path}: {e.strerror}") from None
    except ValueError as e:
        raise BackendError(f"tvm: {meta_path} is not valid JSON: {e}") from None
    vm = load_library(path)
    opts = {"threads": threads if threads is not None else meta.get("threads", 0),
            "target": meta.get("target")}
    return TVMExecutable(None, Signature.from_json(meta), meta, opts, vm=vm)
