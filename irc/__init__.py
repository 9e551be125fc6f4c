"""irc: the command line and compiler driver on top of ``irlib`` (IR), ``passes`` and ``backends``.

    from irc import compile_model, summarize
    import irlib

    model = irlib.load("examples/tiny_cnn.onnx")
    print(summarize(model).as_json()["op_histogram"])
    result = compile_model(model, level=0)
    irlib.save(result.model, "/tmp/tiny_cnn.irc.onnx")

The ``irc`` executable is :func:`irc.cli.main`.
"""

from importlib import metadata as _metadata

try:  # one source of truth: the version in pyproject.toml
    __version__ = _metadata.version("irc")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

from irc.compile import (  # noqa: E402  (after __version__, which irc.cli imports)
    DEFAULT_LEVEL, LEVELS, CompileError, CompileResult, compile_model,
)
from irc.summary import ModelSummary, ValueSummary, summarize  # noqa: E402

__all__ = [
    "CompileError", "CompileResult", "DEFAULT_LEVEL", "LEVELS", "ModelSummary", "ValueSummary",
    "__version__", "compile_model", "summarize",
]
