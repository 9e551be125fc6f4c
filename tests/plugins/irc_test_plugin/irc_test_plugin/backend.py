"""``onnx-reference``: a whole backend in a page, the way a third party would write one.

It exports the IR model to ONNX and runs it with ONNX's own Python reference evaluator
(``onnx.reference.ReferenceEvaluator``): slow, but an executor independent of ONNX Runtime. The
option ``scale_outputs`` multiplies float outputs by a factor, so that the tests can make the
backend deliberately wrong and see ``irc check`` catch it.
"""

from __future__ import annotations

import numpy as np

import irlib
from backends import Backend, BackendError, Executable


class OnnxReferenceExecutable(Executable):
    backend = "onnx-reference"

    def __init__(self, proto, scale: float):
        from onnx.reference import ReferenceEvaluator

        self.proto = proto
        self.scale = scale
        self.evaluator = ReferenceEvaluator(proto)
        self.input_names = list(self.evaluator.input_names)
        self.output_names = list(self.evaluator.output_names)

    def run(self, inputs):
        try:
            results = self.evaluator.run(None, dict(inputs))
        except Exception as e:
            raise BackendError(f"onnx-reference: run failed: {' '.join(str(e).split())}") from e
        out = {}
        for name, r in zip(self.output_names, results):
            r = np.asarray(r)
            out[name] = (r * r.dtype.type(self.scale)).astype(r.dtype) \
                if self.scale != 1.0 and r.dtype.kind == "f" else r
        return out

    def save(self, path):
        irlib.io.save_proto(self.proto, path)
        return path

    @property
    def artifact_suffix(self):
        return ".onnx"


class OnnxReferenceBackend(Backend):
    name = "onnx-reference"
    description = "ONNX's Python reference evaluator (test plugin)"
    options_help = {"scale_outputs": "multiply float outputs by this (to test misalignment)"}

    def version(self):
        import onnx

        return onnx.__version__

    def compile(self, model, options=None):
        opts = self.check_options(options)
        return OnnxReferenceExecutable(irlib.to_onnx(model), float(opts.get("scale_outputs", 1.0)))
