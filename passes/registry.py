"""The pass registry: passes by name, built-ins plus plugins from the ``irc.passes`` entry points.

Built-in passes register when :mod:`passes.transforms` is imported; third-party packages declare

    [project.entry-points."irc.passes"]
    my-pass = "my_package.passes:MyPass"

and the entry point is loaded lazily the first time the registry is read. An entry point may name a
``Pass`` subclass, or a module / callable that registers passes itself. Two passes with one name
are an error, whoever defines them.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re

from passes.base import Pass
from passes.errors import PassError

__all__ = ["register_pass", "get_pass", "all_passes", "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "irc.passes"
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_registry: dict[str, type[Pass]] = {}
_plugins_loaded = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: add ``cls`` to the registry under ``cls.name``."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PassError(f"pass class {cls.__name__} has an invalid name {name!r} (use kebab-case)")
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise PassError(
            f"pass name {name!r} is registered twice: {_where(existing)} and {_where(cls)}")
    _registry[name] = cls
    return cls


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _load_builtins() -> None:
    import passes.transforms  # noqa: F401  (registers the built-in passes)


def load_plugins(force: bool = False) -> None:
    """Load the ``irc.passes`` entry points (once)."""
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    _load_builtins()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not take irc down; say which one
            raise PassError(f"cannot load pass plugin {ep.name!r} ({ep.value}): {e}") from e
        if isinstance(obj, type) and issubclass(obj, Pass):
            if obj.name != ep.name:
                raise PassError(
                    f"pass plugin entry point {ep.name!r} names a pass called {obj.name!r}")
            register_pass(obj)
        elif callable(obj) and not isinstance(obj, type):
            obj()
        log.debug("loaded pass plugin %s = %s", ep.name, ep.value)


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``; raises ``PassError`` with close matches."""
    load_plugins()
    try:
        return _registry[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _registry, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `irc passes`"
        raise PassError(f"unknown pass {name!r}{hint}") from None


def all_passes() -> dict[str, type[Pass]]:
    """Every registered pass, by name (sorted)."""
    load_plugins()
    return dict(sorted(_registry.items()))
