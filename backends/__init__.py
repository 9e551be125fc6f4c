"""backends: where an IR model goes to run.

    from backends import get_backend
    exe = get_backend("ort").compile(model, {"threads": 2})
    outputs = exe.run({"x": x})
    exe.save("model.irc.onnx")

- :mod:`backends.base`: the API (``Backend``, ``Executable``, ``BackendError``)
- :mod:`backends.registry`: backends by name, plugins through the ``irc.backends`` entry points
- :mod:`backends.ort`: ONNX Runtime; :mod:`backends.tvm`: Apache TVM (Relax, LLVM; optional
  extra ``[tvm]``, docs/backends/tvm.md); :mod:`backends.tensorrt`: availability probe (its
  lowering is a later issue)
- :mod:`backends.numerics`: comparing outputs with ORT's unoptimized reference, and the
  ``NumericsCheck`` instrument for ``irc compile --verify-numerics``

Built-in backend modules are imported only when their backend is asked for. See docs/backends.md.
"""

from backends.base import Backend, BackendError, BackendUnavailable, Executable
from backends.registry import (
    ENTRY_POINT_GROUP, all_backends, backend_names, build_artifact, get_backend, register_backend,
)

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "ENTRY_POINT_GROUP", "Executable",
    "all_backends", "backend_names", "build_artifact", "get_backend", "register_backend",
]
