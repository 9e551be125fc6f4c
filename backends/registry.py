"""The backend registry: backends by name, built-ins plus plugins from ``irc.backends``.

Lookups are lazy: a built-in backend's module is imported the first time it is asked for (so
``irc backends`` never imports TensorRT or TVM), and plugins are read from the ``irc.backends``
entry-point group the first time the registry is listed or a name is not found. A plugin declares

    [project.entry-points."irc.backends"]
    mybackend = "my_package.backend:MyBackend"

where the object is a :class:`~backends.base.Backend` subclass (or an instance) whose ``name`` is
the entry point's name. Two backends with one name are an error, whoever defines them.

>>> get_backend("ort").name                                   # doctest: +SKIP
'ort'
>>> sorted(all_backends())                                    # doctest: +SKIP
['ort', 'tensorrt', 'tvm']
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re

from backends.base import Backend, BackendError

__all__ = [
    "ENTRY_POINT_GROUP", "all_backends", "backend_names", "build_artifact", "get_backend",
    "register_backend",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "irc.backends"
_NAME = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")

#: Built-in backends: name -> "module:Class", imported on first use.
_BUILTINS: dict[str, str] = {
    "ort": "backends.ort:OrtBackend",
    "tensorrt": "backends.tensorrt:TensorRTBackend",
    "tvm": "backends.tvm:TVMBackend",
}

#: name -> "module:Class" (not loaded yet) or a Backend instance.
_registry: dict[str, str | Backend] = dict(_BUILTINS)
#: name -> where it came from, for clash messages.
_origin: dict[str, str] = {name: spec for name, spec in _BUILTINS.items()}
_plugins_loaded = False


def register_backend(backend: type[Backend] | Backend, *, origin: str | None = None):
    """Add a backend (a :class:`Backend` subclass or instance) under its ``name``.

    Usable as a class decorator. Registering another object under a taken name raises
    :class:`BackendError`.
    """
    instance = backend() if isinstance(backend, type) else backend
    if not isinstance(instance, Backend):
        raise BackendError(f"{backend!r} is not a backends.Backend")
    name = instance.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise BackendError(f"backend {type(instance).__name__} has an invalid name {name!r}")
    where = origin or f"{type(instance).__module__}.{type(instance).__qualname__}"
    existing = _registry.get(name)
    if existing is not None:
        same = (existing is instance or (not isinstance(existing, str) and type(existing) is type(instance))
                or (isinstance(existing, str) and existing == _spec_of(type(instance))))
        if not same:
            raise BackendError(
                f"backend name {name!r} is registered twice: {_origin.get(name, '?')} and {where}")
    _registry[name] = instance
    _origin[name] = where
    return backend


def unregister_backend(name: str) -> None:
    """Remove ``name`` from the registry (for tests; built-ins come back on the next reset)."""
    _registry.pop(name, None)
    _origin.pop(name, None)


def _spec_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _load(name: str) -> Backend:
    entry = _registry[name]
    if isinstance(entry, Backend):
        return entry
    module, _, attr = entry.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise BackendError(f"cannot load backend {name!r} ({entry}): {e}") from e
    instance = cls()
    _registry[name] = instance
    return instance


def load_plugins(force: bool = False) -> None:
    """Read the ``irc.backends`` entry points (once). Entry points are recorded, not imported,
    until their backend is asked for."""
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"plugin {ep.value}"
        existing = _registry.get(ep.name)
        if existing is not None:
            if existing == ep.value or _origin.get(ep.name) == where:
                continue  # the same plugin seen twice (force=True)
            raise BackendError(
                f"backend name {ep.name!r} is registered twice: {_origin.get(ep.name, '?')}"
                f" and {where}")
        if not _NAME.match(ep.name):
            raise BackendError(f"backend plugin entry point {ep.name!r} is not a valid name")
        _registry[ep.name] = _PluginSpec(ep)
        _origin[ep.name] = where
        log.debug("found backend plugin %s = %s", ep.name, ep.value)


class _PluginSpec(str):
    """An entry point awaiting its first use (a str so ``_load`` treats it like a built-in)."""

    def __new__(cls, ep):
        self = super().__new__(cls, ep.value)
        self.ep = ep
        return self


def _load_plugin(name: str, spec: _PluginSpec) -> Backend:
    try:
        obj = spec.ep.load()
    except Exception as e:  # a broken plugin must not take irc down; say which one
        raise BackendError(f"cannot load backend plugin {name!r} ({spec.ep.value}): {e}") from e
    instance = obj() if isinstance(obj, type) else obj
    if not isinstance(instance, Backend):
        raise BackendError(
            f"backend plugin {name!r} ({spec.ep.value}) is not a backends.Backend")
    if instance.name != name:
        raise BackendError(
            f"backend plugin entry point {name!r} names a backend called {instance.name!r}")
    _registry[name] = instance
    return instance


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; raises :class:`BackendError` with close matches."""
    if name not in _registry:
        load_plugins()
    entry = _registry.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, _registry, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BackendError(
            f"unknown backend {name!r} (known: {', '.join(sorted(_registry))}){hint}")
    if isinstance(entry, _PluginSpec):
        return _load_plugin(name, entry)
    return _load(name)


def backend_names() -> list[str]:
    """Every registered backend name, sorted (plugins included, nothing imported)."""
    load_plugins()
    return sorted(_registry)


def all_backends() -> dict[str, Backend]:
    """Every registered backend, by name (sorted); imports each one's module."""
    return {name: get_backend(name) for name in backend_names()}


def build_artifact(model, backend: str, path: str, options=None) -> dict:
    """Compile ``model`` with ``backend`` and save the artifact to ``path``; return the compile
    report's ``backend`` section: ``{"name", "version", "options", "artifact"}``.

    >>> build_artifact(model, "ort", "out.onnx", {"threads": 2})          # doctest: +SKIP
    {'name': 'ort', 'version': '1.32.0', 'options': {...}, 'artifact': 'out.onnx'}

    Raises :class:`BackendError` (one line) for an unknown or unavailable backend, a bad option,
    or a failed compile; the model itself is not changed.
    """
    be = get_backend(backend)
    be.require_available()
    exe = be.compile(model, options)
    written = exe.save(path)
    return {"name": be.name, "version": be.version(),
            "options": dict(getattr(exe, "options", None) or be.check_options(options)),
            "artifact": written}
