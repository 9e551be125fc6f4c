"""Passes by name: registering, looking up, options, and the pipeline text that names them.

A pass is a frozen dataclass with a kebab-case ``name``; its fields are its options, so the text
``b{opt=1}`` builds ``B(opt=1)``. Every mistake in a pipeline string is a one-line ``PassError``.

Each test registers its passes into a scratch copy of the registry (the ``registry`` fixture), so
nothing here leaks into ``irc passes`` or into other tests.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import pytest

import passes
import passes.registry
from helpers import parse_ir
from passes import (
    FixedPoint, Pass, PassError, PassFailure, PassKind, PassManager, PassResult,
    PipelineSyntaxError, format_pipeline, function_pass, get_pass, make_pass, parse_pipeline,
    register_pass,
)


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the registry (built-ins and plugins loaded), dropped after the test."""
    passes.all_passes()
    monkeypatch.setattr(passes.registry, "_registry", dict(passes.registry._registry))
    return passes.registry._registry


def make_noop(pass_name: str, **options):
    """A do-nothing pass class called ``pass_name`` with the given ``option=default`` fields."""
    ns = {"name": pass_name, "__doc__": f"The test pass {pass_name}.",
          "__annotations__": {k: type(v) for k, v in options.items()},
          "run": lambda self, model, ctx: PassResult(False), **options}
    return dataclasses.dataclass(frozen=True)(type(pass_name.title().replace("-", ""), (Pass,), ns))


@dataclasses.dataclass(frozen=True)
class Tunable(Pass):
    """A pass with one option of every supported type."""

    name: ClassVar[str] = "test-tunable"
    count: int = 1
    scale: float = 1.0
    enabled: bool = True
    mode: str = "fast"
    axes: tuple[int, ...] = ()
    limit: int | None = None
    legacy_limit: Optional[int] = None

    def run(self, model, ctx):
        return PassResult(False)


# -- registration and lookup --------------------------------------------------------------------
def test_builtins_are_registered_by_kebab_case_name():
    found = passes.all_passes()
    assert {"dce", "eliminate-identity", "infer-shapes"} <= set(found)
    assert list(found) == sorted(found)
    assert get_pass("dce") is found["dce"]
    assert get_pass("dce").description().startswith("Remove nodes with no used outputs")


def test_register_pass_returns_the_class_and_is_idempotent(registry):
    cls = make_noop("test-register")
    assert register_pass(cls) is cls
    assert register_pass(cls) is cls  # the same class again is fine (modules get re-imported)
    assert get_pass("test-register") is cls


@pytest.mark.parametrize("bad", ["Fold", "fold_constants", "fold--x", "-fold", "fold-", "9fold", ""])
def test_names_must_be_kebab_case(registry, bad):
    with pytest.raises(PassError, match=f"has an invalid name {bad!r} \\(use kebab-case\\)"):
        register_pass(type("Bad", (Pass,), {"name": bad}))
    assert bad not in registry


def test_two_passes_with_one_name_is_an_error(registry):
    register_pass(make_noop("test-twice"))
    with pytest.raises(PassError) as e:
        register_pass(make_noop("test-twice"))
    message = str(e.value)
    assert "'test-twice' is registered twice" in message and "\n" not in message


def test_unknown_pass_suggests_close_names():
    with pytest.raises(PassError) as e:
        get_pass("eliminate-identiy")
    assert str(e.value) == "unknown pass 'eliminate-identiy'; did you mean eliminate-identity?"
    with pytest.raises(PassError, match=r"unknown pass 'zzzz'; see `irc passes`"):
        get_pass("zzzz")


# -- function passes ----------------------------------------------------------------------------
def test_function_pass_turns_a_function_into_a_pass(registry):
    @register_pass
    @function_pass("test-drop-doc-strings")
    def drop_doc_strings(model, ctx):
        """Clear every node's doc string."""
        changed = any(n.doc_string for n in model.graph)
        for n in model.graph:
            n.doc_string = ""
        return changed  # a bool is accepted for PassResult(changed)

    assert issubclass(drop_doc_strings, Pass) and dataclasses.is_dataclass(drop_doc_strings)
    assert drop_doc_strings.name == "test-drop-doc-strings"
    assert drop_doc_strings.description() == "Clear every node's doc string."
    model = parse_ir("main (float[2] x) => (float[2] y) { y = Relu(x) }")
    next(iter(model.graph)).doc_string = "from the exporter"
    report = PassManager("test-drop-doc-strings").run(model)
    assert [r.changed for r in report.passes] == [True]
    assert PassManager("test-drop-doc-strings").run(model).passes[0].changed is False


def test_function_pass_of_kind_analysis_may_not_change_the_model(registry):
    @register_pass
    @function_pass("test-lying-analysis", kind=PassKind.ANALYSIS)
    def lying(model, ctx):
        """Claims a change."""
        return PassResult(True)

    with pytest.raises(PassFailure, match="analysis pass 'test-lying-analysis' reported a change"):
        PassManager("test-lying-analysis").run(parse_ir("main (float[2] x) => (float[2] x) {}"))


def test_function_pass_must_return_a_result(registry):
    @register_pass
    @function_pass("test-returns-none")
    def returns_none(model, ctx):
        """Forgets to return."""

    with pytest.raises(PassFailure) as e:
        PassManager("test-returns-none").run(parse_ir("main (float[2] x) => (float[2] x) {}"))
    assert "returned NoneType, not PassResult or bool" in str(e.value)
    assert e.value.pass_name == "test-returns-none"


# -- options ------------------------------------------------------------------------------------
def test_options_are_converted_to_the_field_types(registry):
    register_pass(Tunable)
    p = make_pass("test-tunable", {"count": "0x10", "scale": "2.5", "enabled": "off",
                                   "mode": "slow", "axes": "[0, 2,3]", "limit": "7",
                                   "legacy-limit": "none"})
    assert p == Tunable(count=16, scale=2.5, enabled=False, mode="slow", axes=(0, 2, 3), limit=7,
                        legacy_limit=None)
    assert isinstance(p.limit, int)
    for text, value in [("true", True), ("1", True), ("yes", True), ("on", True),
                        ("false", False), ("0", False), ("no", False)]:
        assert make_pass("test-tunable", {"enabled": text}).enabled is value
    assert make_pass("test-tunable", {"axes": "[]"}).axes == ()
    assert make_pass("test-tunable", {"legacy-limit": "3"}).legacy_limit == 3


def test_a_builtin_int_or_none_option_is_an_int():
    """``PatternPass.max_rewrites: int | None`` (PEP 604): the text "5" must become 5."""
    (p,) = parse_pipeline("eliminate-identity{max-rewrites=5}")
    assert p.max_rewrites == 5
    assert parse_pipeline("eliminate-identity{max-rewrites=none}")[0].max_rewrites is None


@pytest.mark.parametrize("text, message", [
    ("test-tunable{count=many}", "option 'count' of pass 'test-tunable': 'many' is not a valid int"),
    ("test-tunable{scale=wide}", "option 'scale' of pass 'test-tunable': 'wide' is not a valid float"),
    ("test-tunable{enabled=maybe}",
     "option 'enabled' of pass 'test-tunable': 'maybe' is not a valid bool"),
    ("test-tunable{axes=[0,x]}", "option 'axes' of pass 'test-tunable': 'x' is not a valid int"),
    ("test-tunable{limit=lots}", "option 'limit' of pass 'test-tunable': 'lots' is not a valid int"),
    ("test-tunable{max_count=1}", "pass 'test-tunable' has no option 'max_count' (options: count,"
     " scale, enabled, mode, axes, limit, legacy-limit)"),
    ("dce{aggressive=1}", "pass 'dce' has no option 'aggressive' (options: none)"),
    ("fixpoint{max-iterations=0}(dce)", "fixpoint: max-iterations must be at least 1"),
    ("fixpoint{rounds=2}(dce)", "fixpoint has no option 'rounds' (options: max-iterations)"),
    ("dcee", "unknown pass 'dcee'; did you mean dce?"),
])
def test_bad_options_and_names_are_one_line_errors(registry, text, message):
    register_pass(Tunable)
    with pytest.raises(PassError) as e:
        parse_pipeline(text)
    assert str(e.value) == message


# -- pipeline text ------------------------------------------------------------------------------
@pytest.fixture
def abcd(registry):
    """Passes named a, b, c, d; ``b`` has an int option ``opt`` (default 0)."""
    for n in "acd":
        register_pass(make_noop(n))
    register_pass(make_noop("b", opt=0))


def test_pipeline_text_round_trips(abcd):
    text = "a,b{opt=1},fixpoint{max-iterations=3}(c,d)"
    items = parse_pipeline(text)
    a, b, group = items
    assert (a.name, b.name, b.opt) == ("a", "b", 1)
    assert isinstance(group, FixedPoint) and group.max_iterations == 3
    assert [p.name for p in group.items] == ["c", "d"] and group.pass_names() == ["c", "d"]
    assert format_pipeline(items) == text
    assert PassManager(text).pipeline_text == text


@pytest.mark.parametrize("text, normal", [
    (" a , b{ opt = 1 } ", "a,b{opt=1}"),
    ("b{opt=0}", "b"),                                   # defaults are not written
    ("fixpoint{max-iterations=10}(a)", "fixpoint(a)"),
    ("fixpoint(a,fixpoint{max-iterations=2}(b,c)),d", "fixpoint(a,fixpoint{max-iterations=2}(b,c)),d"),
    ("", ""),
    ("fixpoint()", "fixpoint()"),
])
def test_pipeline_text_is_normalized(abcd, text, normal):
    assert format_pipeline(parse_pipeline(text)) == normal


def test_typed_options_round_trip(registry):
    register_pass(Tunable)
    text = "test-tunable{count=3,scale=0.5,enabled=false,mode=slow,axes=[1,2],limit=4}"
    assert format_pipeline(parse_pipeline(text)) == text


@pytest.mark.parametrize("text, message", [
    ("a,,b", "expected a pass name at column 3"),
    ("a,", "expected a pass name at column 3"),
    ("fixpoint(a", "expected ')' at column 11"),
    ("fixpoint a", "expected '(' at column 10"),
    ("b{opt}", "expected '=' at column 6"),
    ("b{opt=}", "expected an option value at column 7"),
    ("b{opt=1", "expected '}' at column 8"),
    ("a)b", "unexpected text at column 2"),
    ("b{opt=[1}", "unbalanced '[' at column 10"),
])
def test_bad_syntax_points_at_the_column(abcd, text, message):
    with pytest.raises(PipelineSyntaxError) as e:
        parse_pipeline(text)
    assert str(e.value) == f"bad pipeline {text!r}: {message}"
    assert isinstance(e.value, PassError)  # one except clause catches every usage error
