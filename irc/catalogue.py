"""The pass catalogue: every registered pass with its kind, -O level, description and options.

Used by ``irc passes`` and by ``tools/gen_pass_docs.py`` (docs/passes.md), so both say the same.
"""

from __future__ import annotations

import dataclasses
import typing

from passes import all_passes, level_of_pass

__all__ = ["pass_catalogue"]


def pass_catalogue() -> list[dict]:
    rows = []
    for name, cls in all_passes().items():
        hints = typing.get_type_hints(cls)
        options = []
        for f in cls.options():
            default = f.default if f.default is not dataclasses.MISSING else None
            tp = hints.get(f.name, str)
            options.append({"name": f.name.replace("_", "-"), "default": default,
                            "type": getattr(tp, "__name__", str(tp))})
        rows.append({
            "name": name,
            "kind": cls.kind.value,
            "level": level_of_pass(name),
            "description": cls.description(),
            "options": options,
            "module": cls.__module__,
        })
    return rows
