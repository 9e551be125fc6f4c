"""From a Relax module to a runnable VM executable and an exported shared library.

    target = make_target("native", threads=2)      # {"kind": "llvm", "mcpu": <this CPU>, ...}
    mod = optimize(mod, target, database=None)     # decompose, legalize, fold, fuse (+ records)
    ex = build(mod, target)                        # relax.VMExecutable
    export(ex, "model.so", sidecar)                # model.so + model.so.json

Why the pipeline is spelled out: ``tvm.compile(mod, "llvm")``'s default Relax pipeline legalizes
but neither folds constants nor fuses on CPU, and ``PassContext(opt_level=0)`` silently turns
fusion off. :func:`optimize` runs ``DecomposeOpsForInference`` (batch norm in inference form, so
it fuses into the convolution's epilogue), ``relax.get_pipeline("zero")`` (LegalizeOps,
AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR) under ``opt_level=3``, and, with a
MetaSchedule database, ``MetaScheduleApplyDatabase``; then :func:`build` runs the default build
pipeline (memory planning, VM lowering) and LLVM.

Targets use TVM's dict form (``"llvm -mcpu=..."`` strings are rejected by TVM 0.27; irc turns
them into dicts for you). TVM's runtime uses half the cores unless told: :func:`set_threads`.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
import time

from backends.base import BackendError
from backends.tvm._env import import_tvm, relax, tvm

__all__ = ["build", "export", "load_library", "make_target", "optimize", "set_threads",
           "target_json"]

log = logging.getLogger(__name__)


def host_cpu() -> str:
    """LLVM's name for this machine's CPU (``znver3``, ``skylake-avx512`` ...)."""
    import_tvm()
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


def make_target(spec=None, threads: int | None = None):
    """A ``tvm.target.Target`` for the CPU from ``spec``:

    - ``None``/``"native"``/``"llvm"``: LLVM for this machine's CPU (``mcpu`` detected);
    - ``"generic"``: LLVM with no ``mcpu`` (portable x86-64/aarch64 baseline);
    - a CPU name (``"skylake-avx512"``): LLVM for that CPU;
    - a dict (``{"kind": "llvm", "mcpu": "...", "mattr": [...]}``), or its JSON text;
    - an old-style string ``"llvm -mcpu=X -mattr=+avx2"``, converted to the dict form.

    ``threads`` becomes ``num-cores`` (what MetaSchedule measures with).
    """
    import_tvm()
    from tvm.target import codegen

    if isinstance(spec, str) and spec.strip().startswith("{"):
        try:
            spec = json.loads(spec)
        except ValueError as e:
            raise BackendError(f"tvm: target {spec!r} is not valid JSON: {e}") from None
    if spec is None or spec in ("native", "llvm"):
        d = {"kind": "llvm", "mcpu": host_cpu()}
    elif spec == "generic":
        d = {"kind": "llvm"}
    elif isinstance(spec, dict):
        d = dict(spec)
        d.setdefault("kind", "llvm")
    elif isinstance(spec, str) and (spec.startswith("llvm ") or spec.startswith("-")):
        d = {"kind": "llvm"}
        for word in shlex.split(spec)[1 if spec.startswith("llvm") else 0:]:
            key, _, value = word.lstrip("-").partition("=")
            if key == "mattr":
                d["mattr"] = value.split(",")
            elif key:
                d[key] = value or True
    elif isinstance(spec, str):
        if not codegen.llvm_is_valid_cpu(spec, codegen.llvm_get_system_triple()):
            raise BackendError(f"tvm: target {spec!r} is not a CPU LLVM knows (try native,"
                               " generic, a CPU name such as skylake-avx512, or a target dict)")
        d = {"kind": "llvm", "mcpu": spec}
    else:
        raise BackendError(f"tvm: target must be a string or a dict, not {type(spec).__name__}")
    if d.get("kind") != "llvm":
        raise BackendError(f"tvm: target kind {d.get('kind')!r} is not supported (llvm only)")
    if threads:
        d["num-cores"] = int(threads)
    try:
        return tvm.target.Target(d)
    except Exception as e:
        raise BackendError(f"tvm: invalid target {d}: {' '.join(str(e).split())[:300]}") from e


def target_json(target) -> dict:
    """The target as a plain JSON-able dict (for the sidecar and reports)."""
    d = json.loads(str(target))  # the dict form, as TVM prints it
    return {k: v for k, v in d.items() if v not in ("", [], None) and k != "keys"}


def optimize(mod, target, database_dir: str | None = None):
    """Run the Relax optimization pipeline on ``mod`` for ``target`` (see the module docstring);
    with ``database_dir``, apply the MetaSchedule records found there."""
    t0 = time.perf_counter()
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.get_pipeline("zero")]
    with target, tvm.transform.PassContext(opt_level=3):
        mod = tvm.transform.Sequential(passes)(mod)
        if database_dir:
            db = open_database(database_dir)
            with db:
                mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    log.info("tvm: optimized in %.2f s", time.perf_counter() - t0)
    return mod


def open_database(directory: str):
    """MetaSchedule's JSON database in ``directory`` (created when missing)."""
    from tvm.s_tir import meta_schedule as ms

    os.makedirs(directory, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=directory, module_equality="structural")


def build(mod, target):
    """Compile an optimized module to a ``relax.VMExecutable`` with LLVM."""
    t0 = time.perf_counter()
    try:
        with tvm.transform.PassContext(opt_level=3):
            ex = tvm.compile(mod, target, relax_pipeline="default")
    except Exception as e:
        raise BackendError(f"tvm: build failed: {' '.join(str(e).split())[:300]}") from e
    log.info("tvm: built for %s in %.2f s", target, time.perf_counter() - t0)
    return ex


def set_threads(threads: int) -> None:
    """Size TVM's runtime thread pool (process-wide). ``0`` leaves TVM's default (half the
    cores)."""
    if threads and threads > 0:
        tvm.get_global_func("runtime.config_threadpool")(1, int(threads))


def export(ex, path: str, sidecar: dict) -> tuple[str, str]:
    """Write the shared library to ``path`` and ``sidecar`` as JSON to ``path + ".json"``, each
    atomically. Returns both paths."""
    from irlib import atomic_write

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".irc-tvm-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        ex.export_library(tmp)
        os.replace(tmp, path)
    except Exception as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise BackendError(f"tvm: cannot export {path}: {' '.join(str(e).split())[:300]}") from e
    meta_path = path + ".json"
    atomic_write(meta_path, (json.dumps(sidecar, indent=2) + "\n").encode())
    return path, meta_path


def load_library(path: str):
    """A ``relax.VirtualMachine`` on the CPU for an exported library."""
    import_tvm()
    try:
        lib = tvm.runtime.load_module(os.fspath(path))
    except Exception as e:
        raise BackendError(f"tvm: cannot load {path}: {' '.join(str(e).split())[:300]}") from e
    return relax.VirtualMachine(lib, tvm.cpu())
