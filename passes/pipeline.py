"""Pipeline strings: the text form of a pass pipeline, parsed into pass instances and back.

Grammar::

    pipeline := item ("," item)*
    item     := NAME options?                       a pass, e.g. cse or fold-constants{max-bytes=1024}
              | "fixpoint" options? "(" pipeline ")" repeat until nothing changes
    options  := "{" KEY "=" VALUE ("," KEY "=" VALUE)* "}"

Option keys are the pass's dataclass fields in kebab-case (``max_iterations`` -> ``max-iterations``)
and values are converted to the field's type (int, float, bool, str, or a tuple of those written
``[a,b]``). ``format_pipeline(parse_pipeline(s))`` gives back an equivalent, normalized string.

>>> format_pipeline(parse_pipeline("fixpoint{max-iterations=4}(dce, cse)"))   # doctest: +SKIP
'fixpoint{max-iterations=4}(dce,cse)'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Union

from passes.base import Pass
from passes.errors import PassError, PipelineSyntaxError
from passes.registry import get_pass

__all__ = ["FixedPoint", "PipelineItem", "parse_pipeline", "format_pipeline", "make_pass",
           "without_passes"]


@dataclasses.dataclass
class FixedPoint:
    """A group of passes run again and again until none of them changes the model."""

    items: list["PipelineItem"]
    max_iterations: int = 10

    name = "fixpoint"

    def pass_names(self) -> list[str]:
        out = []
        for it in self.items:
            out.extend(it.pass_names() if isinstance(it, FixedPoint) else [it.name])
        return out


PipelineItem = Union[Pass, FixedPoint]


def make_pass(name: str, options: dict[str, str] | None = None) -> Pass:
    """Instantiate registered pass ``name`` from textual options (kebab-case keys)."""
    cls = get_pass(name)
    return cls(**_convert_options(cls, name, options or {}))


def _convert_options(cls, name: str, options: dict[str, str]) -> dict:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init} if dataclasses.is_dataclass(cls) else {}
    hints = typing.get_type_hints(cls) if fields else {}
    out = {}
    for key, text in options.items():
        field = key.replace("-", "_")
        if field not in fields:
            valid = ", ".join(f.replace("_", "-") for f in fields) or "none"
            raise PassError(f"pass {name!r} has no option {key!r} (options: {valid})")
        out[field] = _convert(text, hints.get(field, str), f"option {key!r} of pass {name!r}")
    return out


def _convert(text, tp, what: str):
    if not isinstance(text, str):
        return text
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:  # Optional[int] and int | None alike
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text in ("none", "None") and len(args) < len(typing.get_args(tp)):
            return None
        tp, origin = args[0], typing.get_origin(args[0])
    if origin in (tuple, list):
        args = typing.get_args(tp)
        elem = args[0] if args else str
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        items = [s.strip() for s in body.split(",") if s.strip()] if body else []
        return tuple(_convert(s, elem, what) for s in items)
    try:
        if tp is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            return int(text, 0)
        if tp is float:
            return float(text)
    except ValueError:
        raise PassError(f"{what}: {text!r} is not a valid {tp.__name__}") from None
    return text


def parse_pipeline(text: str) -> list[PipelineItem]:
    """Parse a pipeline string into pass instances (unknown passes and bad options raise)."""
    parser = _Parser(text)
    items = parser.pipeline()
    parser.skip_ws()
    if parser.pos != len(text):
        parser.fail("unexpected text")
    return items


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, msg: str):
        raise PipelineSyntaxError(
            f"bad pipeline {self.text!r}: {msg} at column {self.pos + 1}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            self.fail(f"expected {ch!r}")
        self.pos += 1

    def name(self) -> str:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "-_."):
            self.pos += 1
        if start == self.pos:
            self.fail("expected a pass name")
        return self.text[start:self.pos]

    def pipeline(self) -> list[PipelineItem]:
        if self.peek() in ("", ")"):
            return []
        items = [self.item()]
        while self.peek() == ",":
            self.pos += 1
            items.append(self.item())
        return items

    def item(self) -> PipelineItem:
        name = self.name()
        options = self.options() if self.peek() == "{" else {}
        if name == FixedPoint.name:
            self.expect("(")
            inner = self.pipeline()
            self.expect(")")
            unknown = set(options) - {"max-iterations"}
            if unknown:
                raise PassError(f"fixpoint has no option {sorted(unknown)[0]!r} (options: max-iterations)")
            limit = _convert(options.get("max-iterations", "10"), int, "option 'max-iterations' of fixpoint")
            if limit < 1:
                raise PassError("fixpoint: max-iterations must be at least 1")
            return FixedPoint(inner, limit)
        return make_pass(name, options)

    def options(self) -> dict[str, str]:
        self.expect("{")
        opts: dict[str, str] = {}
        while True:
            key = self.name()
            self.expect("=")
            opts[key] = self.value()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect("}")
            return opts

    def value(self) -> str:
        self.skip_ws()
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch in ",}" and depth == 0:
                break
            self.pos += 1
        if depth != 0:
            self.fail("unbalanced '['")
        value = self.text[start:self.pos].strip()
        if not value:
            self.fail("expected an option value")
        return value


def _format_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(_format_value(x) for x in v) + "]"
    return str(v)


def format_pipeline(items: list[PipelineItem]) -> str:
    """The normalized text of a pipeline (only non-default options are written)."""
    parts = []
    for it in items:
        if isinstance(it, FixedPoint):
            opts = "" if it.max_iterations == 10 else f"{{max-iterations={it.max_iterations}}}"
            parts.append(f"fixpoint{opts}({format_pipeline(it.items)})")
        else:
            vals = it.option_values()
            opts = ",".join(f"{k.replace('_', '-')}={_format_value(v)}" for k, v in vals.items())
            parts.append(it.name + (f"{{{opts}}}" if opts else ""))
    return ",".join(parts)


def without_passes(items: list[PipelineItem], names) -> list[PipelineItem]:
    """``items`` minus every pass named in ``names`` (emptied fixpoint groups disappear)."""
    names = set(names)
    out: list[PipelineItem] = []
    for it in items:
        if isinstance(it, FixedPoint):
            inner = without_passes(it.items, names)
            if inner:
                out.append(FixedPoint(inner, it.max_iterations))
        elif it.name not in names:
            out.append(it)
    return out
