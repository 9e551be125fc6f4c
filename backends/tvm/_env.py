"""Finding and importing apache-tvm, lazily and with one-line reasons when it cannot be used.

``import tvm`` takes seconds (the FFI library loads PyTorch when it is installed), so nothing in
``backends.tvm`` imports it at module level: the converters use the :data:`relax` proxy below,
which imports ``tvm.relax`` on first attribute access, and :func:`import_tvm` is called by the
code paths that build or run a module.

Versions are pinned (pyproject's ``tvm`` extra): apache-tvm 0.27.x with apache-tvm-ffi 0.1.14.x.
With apache-tvm-ffi 0.1.15 saving IR to JSON, pickling an IRModule and MetaSchedule's database
crash the interpreter (segfault), so :func:`availability` refuses that combination up front.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from importlib.metadata import PackageNotFoundError, version

from backends.base import BackendUnavailable

__all__ = ["availability", "import_tvm", "relax", "tvm", "tvm_version", "ffi_version"]

log = logging.getLogger(__name__)

#: apache-tvm releases the converters are written and tested against.
TVM_SERIES = "0.27"
#: apache-tvm-ffi releases known to work with them (0.1.15 segfaults, see the module docstring).
FFI_SERIES = "0.1.14"


def _dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def tvm_version() -> str:
    """The installed apache-tvm version (``""`` when it is not installed)."""
    return _dist_version("apache-tvm")


def ffi_version() -> str:
    """The installed apache-tvm-ffi version (``""`` when it is not installed)."""
    return _dist_version("apache-tvm-ffi")


def availability() -> tuple[bool, str]:
    """``(True, "")`` when apache-tvm can be used here, else ``(False, one-line reason)``.
    Imports nothing."""
    if importlib.util.find_spec("tvm") is None:
        return False, "apache-tvm not installed (pip install -e \".[tvm]\")"
    tv, fv = tvm_version(), ffi_version()
    if tv and not (tv == TVM_SERIES or tv.startswith(TVM_SERIES + ".")):
        return False, (f"apache-tvm {tv} is installed; irc's converters need {TVM_SERIES}.x"
                       " (pip install -e \".[tvm]\")")
    if fv and not (fv == FFI_SERIES or fv.startswith(FFI_SERIES + ".")):
        return False, (f"apache-tvm-ffi {fv} is installed; irc needs {FFI_SERIES}.x (0.1.15"
                       " crashes when saving IR and in MetaSchedule's database)")
    return True, ""


_imported = None


def import_tvm():
    """``import tvm`` (and ``tvm.relax``), or raise :class:`BackendUnavailable` in one line."""
    global _imported
    if _imported is not None:
        return _imported
    ok, reason = availability()
    if not ok:
        raise BackendUnavailable(f"tvm: unavailable: {reason}")
    try:
        mod = importlib.import_module("tvm")
        importlib.import_module("tvm.relax")
    except Exception as e:  # a broken install raises OSError/ImportError/RuntimeError
        text = " ".join(str(e).split()) or type(e).__name__
        raise BackendUnavailable(f"tvm: unavailable: cannot import apache-tvm: {text}") from e
    log.debug("imported apache-tvm %s", tvm_version())
    _imported = mod
    return mod


class _Lazy:
    """A module imported on first attribute access (through :func:`import_tvm`)."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        if self._module is None:
            import_tvm()
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


#: ``tvm`` and ``tvm.relax``, imported when first used.
tvm = _Lazy("tvm")
relax = _Lazy("tvm.relax")
