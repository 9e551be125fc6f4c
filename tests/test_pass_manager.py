"""The pass manager: analyses cached between passes, fixed-point groups, the verifier after every
pass, the crash reproducer, instruments and the report.

A pipeline can be a string of registered names or a list of pass instances; the tests here use
instances of small passes defined in this file, so they need no registry entry.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

import irlib
import passes
import passes.registry
from helpers import assert_valid, parse_ir
from irlib import Value
from passes import (
    AnalysisManager, ConvergenceError, DumpDir, FixedPoint, OpHistogram, Pass, PassFailure,
    PassManager, PassResult, PrintAfter, UseCounts, register_pass,
)
from passes.transforms.dce import DeadCodeElimination
from passes.transforms.eliminate_identity import EliminateIdentity

CHAIN = """
    main (float[2,3] x) => (float[2,3] y) {
        a = Identity(x)
        b = Relu(a)
        c = Identity(b)
        dead = Neg(c)
        y = Tanh(c)
    }"""


@pytest.fixture
def model():
    return assert_valid(parse_ir(CHAIN))


# -- analyses -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReadAnalyses(Pass):
    """Reads two analyses; reports how often each has been computed so far."""

    name = "test-read-analyses"
    requires = (UseCounts, OpHistogram)

    def run(self, model, ctx):
        uses, hist = ctx.analysis(UseCounts), ctx.analysis(OpHistogram)
        assert hist == {op: n for op, n in OpHistogram.compute(model).items()}  # never stale
        assert len(uses) == sum(1 for g in model.graph.all_graphs() for _ in g.values())
        return PassResult(False, {"use-counts": ctx.analyses.computed[UseCounts],
                                  "op-histogram": ctx.analyses.computed[OpHistogram]})


@dataclasses.dataclass(frozen=True)
class AppendRelu(Pass):
    """Changes the model (one more node): every analysis is stale afterwards."""

    name = "test-append-relu"

    def run(self, model, ctx):
        g = model.graph
        old = g.outputs[0]
        relu = g.append(irlib.Node("Relu", [old]))
        relu.output.type = old.type
        g.outputs[0] = relu.output
        return PassResult(True)


@dataclasses.dataclass(frozen=True)
class RenameNodes(Pass):
    """Changes the model without touching ops or uses, and says so with ``preserves``."""

    name = "test-rename-nodes"
    preserves = (UseCounts, OpHistogram)

    def run(self, model, ctx):
        for i, n in enumerate(model.graph):
            n.name = f"n{i}"
        return PassResult(True)


@dataclasses.dataclass(frozen=True)
class Nothing(Pass):
    """Changes nothing (and says so)."""

    name = "test-nothing"

    def run(self, model, ctx):
        return PassResult(False)


def computed(report):
    """(use-counts, op-histogram) computation counts seen by each ReadAnalyses run."""
    return [(r.stats["use-counts"], r.stats["op-histogram"])
            for r in report.passes if r.name == ReadAnalyses.name]


def test_analyses_are_computed_once_until_a_pass_changes_the_model(model):
    read = ReadAnalyses()
    report = PassManager([read, read, Nothing(), read, AppendRelu(), read, read]).run(model)
    assert computed(report) == [(1, 1), (1, 1), (1, 1), (2, 2), (2, 2)]


def test_preserved_analyses_survive_a_change(model):
    read = ReadAnalyses()
    report = PassManager([read, RenameNodes(), read, AppendRelu(), read]).run(model)
    assert [r.changed for r in report.passes] == [False, True, False, True, False]
    assert computed(report) == [(1, 1), (1, 1), (2, 2)]


def test_analysis_manager_caches_and_invalidates(model):
    am = AnalysisManager(model)
    first = am.get(UseCounts)
    assert am.get(UseCounts) is first and am.computed[UseCounts] == 1
    assert am.is_cached(UseCounts) and not am.is_cached(OpHistogram)
    am.get(OpHistogram)
    am.invalidate(preserved=[OpHistogram])
    assert not am.is_cached(UseCounts) and am.is_cached(OpHistogram)
    assert am.get(UseCounts) is not first and am.computed[UseCounts] == 2
    a = model.graph.inputs[0]
    assert am.get(UseCounts)[a] == 1


# -- fixed-point groups -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PeelIdentity(Pass):
    """Bypasses the first Identity it finds: one change per run."""

    name = "test-peel-identity"

    def run(self, model, ctx):
        for n in model.graph:
            if n.op_type == "Identity" and not n.output.is_graph_output():
                n.output.replace_all_uses_with(n.inputs[0])
                model.graph.remove(n)
                return PassResult.from_counts(removed=1)
        return PassResult.from_counts(removed=0)


@dataclasses.dataclass(frozen=True)
class AlwaysChanges(Pass):
    """A buggy pass: claims a change every time."""

    name = "test-always-changes"

    def run(self, model, ctx):
        return PassResult(True)


def test_fixpoint_repeats_until_nothing_changes(model):
    report = PassManager([FixedPoint([PeelIdentity(), DeadCodeElimination()])]).run(model)
    rounds = [(r.name, r.iteration, r.changed) for r in report.passes]
    assert rounds == [
        ("test-peel-identity", 1, True), ("dce", 1, True),     # a, then the dead Neg
        ("test-peel-identity", 2, True), ("dce", 2, False),    # c
        ("test-peel-identity", 3, False), ("dce", 3, False),   # nothing: converged
    ]
    assert [n.op_type for n in model.graph] == ["Relu", "Tanh"]
    assert report.to_json()["passes"][0]["iteration"] == 1


def test_fixpoint_with_too_few_iterations_is_a_convergence_error(model):
    group = FixedPoint([PeelIdentity()], max_iterations=2)
    with pytest.raises(ConvergenceError) as e:
        PassManager([group]).run(model)
    assert str(e.value) == ("fixpoint(test-peel-identity) did not converge in 2 iterations;"
                            " still changing: test-peel-identity")


def test_a_pass_that_always_reports_a_change_never_converges(model):
    group = FixedPoint([DeadCodeElimination(), AlwaysChanges()], max_iterations=3)
    with pytest.raises(ConvergenceError) as e:
        PassManager([group]).run(model)
    assert str(e.value) == ("fixpoint(dce,test-always-changes) did not converge in 3 iterations;"
                            " still changing: test-always-changes")


def test_nested_fixpoint_groups(model):
    inner = FixedPoint([PeelIdentity()], max_iterations=5)
    report = PassManager([FixedPoint([inner, DeadCodeElimination()], max_iterations=3)]).run(model)
    assert [n.op_type for n in model.graph] == ["Relu", "Tanh"]
    assert report.passes[-1].name == "dce" and not report.passes[-1].changed


# -- the verifier after each pass, and the reproducer ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class DanglingInput(Pass):
    """Broken on purpose: makes the last node read a value that nothing defines."""

    name = "test-dangling-input"

    def run(self, model, ctx):
        last = list(model.graph)[-1]
        last.replace_input_with(0, Value("ghost", last.inputs[0].type))
        return PassResult(True)


@dataclasses.dataclass(frozen=True)
class RemoveWithoutRewiring(Pass):
    """Broken on purpose: removes the Relu although its output is still read."""

    name = "test-remove-without-rewiring"

    def run(self, model, ctx):
        relu = next(n for n in model.graph if n.op_type == "Relu")
        model.graph.remove(relu, safe=False)
        return PassResult(True)


@pytest.mark.parametrize("broken, problem", [
    (DanglingInput(), "Tanh node -> %y: input 0 ('ghost') is not defined"),
    (RemoveWithoutRewiring(), "input 0 ('b') is not defined"),
])
def test_verify_each_names_the_broken_pass_and_what_ran_before(model, broken, problem):
    pm = PassManager([EliminateIdentity(), DeadCodeElimination(), broken])
    with pytest.raises(PassFailure) as e:
        pm.run(model)
    err = e.value
    assert err.pass_name == broken.name
    assert err.before == ["eliminate-identity", "dce"]
    assert str(err).startswith(f"IR is invalid after pass {broken.name!r}: graph 'main': ")
    assert problem in str(err)
    assert str(err).endswith("(passes run before it: eliminate-identity, dce)")
    assert "\n" not in str(err) and err.reproducer is None


def test_without_verify_each_a_broken_pass_goes_unnoticed(model):
    PassManager([DanglingInput()], verify_each=False).run(model)
    problems = irlib.check(model)
    assert any("input 0 ('ghost') is not defined" in p for p in problems), problems


def test_a_pass_that_raises_is_a_pass_failure(model):
    @dataclasses.dataclass(frozen=True)
    class Crash(Pass):
        name = "test-crash"

        def run(self, model, ctx):
            raise RuntimeError("boom")

    with pytest.raises(PassFailure) as e:
        PassManager([Crash()]).run(model)
    assert str(e.value) == "pass 'test-crash' failed: RuntimeError: boom (passes run before it: none)"
    assert isinstance(e.value.cause, RuntimeError) and e.value.__cause__ is e.value.cause


def test_the_reproducer_replays_the_failure(model, tmp_path, monkeypatch):
    # registered, so that pipeline.txt can be parsed back (scratch registry: nothing leaks)
    passes.all_passes()
    monkeypatch.setattr(passes.registry, "_registry", dict(passes.registry._registry))
    register_pass(DanglingInput)
    original = irlib.format_model(model)
    pipeline = "fixpoint{max-iterations=4}(eliminate-identity,dce),test-dangling-input"
    folder = tmp_path / "repro"
    with pytest.raises(PassFailure) as e:
        PassManager(pipeline, reproducer_dir=str(folder)).run(model)
    assert e.value.reproducer == str(folder)
    assert str(e.value).endswith(f"; reproducer: {folder}")
    assert sorted(os.listdir(folder)) == ["README.txt", "input.onnx", "pipeline.txt"]
    assert (folder / "pipeline.txt").read_text() == pipeline + "\n"
    assert "--passes" in (folder / "README.txt").read_text()
    replay = irlib.load(str(folder / "input.onnx"))
    assert irlib.format_model(replay) == original  # the input, not the half-compiled model
    with pytest.raises(PassFailure) as again:
        PassManager((folder / "pipeline.txt").read_text().strip()).run(replay)
    assert again.value.pass_name == "test-dangling-input"
    assert again.value.before == e.value.before


# -- instruments and the report -----------------------------------------------------------------
def test_print_after_changed_and_dump_dir(model, tmp_path):
    printed = []
    dump = tmp_path / "ir"
    pm = PassManager([Nothing(), EliminateIdentity(), DeadCodeElimination()],
                     instruments=[PrintAfter(["changed"], printed.append), DumpDir(str(dump))])
    pm.run(model)
    assert [t.splitlines()[0] for t in printed] == [
        "// ----- IR after eliminate-identity -----", "// ----- IR after dce -----"]
    assert "Neg" not in printed[-1]
    assert sorted(os.listdir(dump)) == [
        "00-input.txt", "01-test-nothing.txt", "02-eliminate-identity.txt", "03-dce.txt"]
    assert (dump / "03-dce.txt").read_text() == irlib.format_model(model)


def test_report_counts_nodes_and_serializes(model):
    report = PassManager("eliminate-identity,dce").run(model)
    data = json.loads(json.dumps(report.to_json()))
    assert data["pipeline"] == "eliminate-identity,dce"
    assert data["input"]["nodes"] == 5 and data["output"]["nodes"] == 2
    assert data["output"]["op_histogram"] == {"Relu": 1, "Tanh": 1}
    ei, dce = data["passes"]
    assert (ei["nodes_before"], ei["nodes_after"], dce["nodes_after"]) == (5, 3, 2)
    assert ei["stats"]["applied:remove-identity"] == 2
    assert dce["stats"] == {"nodes_removed": 1, "initializers_removed": 0}
    assert report.changed
