"""Instruments: hooks the pass manager calls around every pass.

Built in: :class:`PrintAfter` (IR text after chosen passes, or only after passes that changed
the model) and :class:`DumpDir` (numbered IR text files, one per pass). The CLI adds its own
(numerical checks after every pass). Instruments never print themselves: they hand text to a
``sink`` callable so that only the command line decides where output goes.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from irlib import Model, format_model

__all__ = ["Instrument", "PrintAfter", "DumpDir"]


class Instrument:
    """Base class; override what you need."""

    def before_pass(self, p, model: Model) -> None:
        pass

    def after_pass(self, p, model: Model, record) -> None:
        pass

    def on_failure(self, p, message: str) -> None:
        pass


class PrintAfter(Instrument):
    """Send the IR text to ``sink`` after the passes in ``which``.

    ``which`` holds pass names, or ``"all"``, or ``"changed"`` (every pass that changed the
    model).
    """

    def __init__(self, which: Iterable[str], sink: Callable[[str], None]):
        self.which = set(which)
        self.sink = sink

    def after_pass(self, p, model, record) -> None:
        if "all" in self.which or p.name in self.which or ("changed" in self.which and record.changed):
            self.sink(f"// ----- IR after {p.name}{'' if record.changed else ' (unchanged)'} -----\n"
                      + format_model(model))


class DumpDir(Instrument):
    """Write ``NN-<pass>.txt`` with the IR after each pass into ``folder`` (``00-input.txt`` first)."""

    def __init__(self, folder: str):
        self.folder = folder
        self.count = 0
        os.makedirs(folder, exist_ok=True)

    def _write(self, label: str, model: Model) -> None:
        path = os.path.join(self.folder, f"{self.count:02d}-{label}.txt")
        with open(path, "w") as f:
            f.write(format_model(model))
        self.count += 1

    def before_pass(self, p, model) -> None:
        if self.count == 0:
            self._write("input", model)

    def after_pass(self, p, model, record) -> None:
        self._write(p.name, model)
