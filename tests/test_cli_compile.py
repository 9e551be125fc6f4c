"""`irc compile` with pass pipelines: levels, --passes, --disable, --print-after, --report,
verification after every pass, and the reproducer written when a pass fails."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import irlib
from irc.cli import main
from passes import Pass, PassResult, register_pass
from passes.registry import _registry

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.onnx"


def run(*args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args])


@dataclasses.dataclass(frozen=True)
class _BreakGraph(Pass):
    """Test only: removes the first node without rewiring its readers (leaves the IR invalid)."""

    name = "test-break-graph"

    def run(self, model, ctx):
        node = next(iter(model.graph))
        for v in node.outputs:  # drop the uses by hand, the way a buggy pass would
            v._uses.clear()
        model.graph.remove(node, safe=False)
        return PassResult(True)


@dataclasses.dataclass(frozen=True)
class _Crash(Pass):
    """Test only: raises."""

    name = "test-crash"

    def run(self, model, ctx):
        raise RuntimeError("boom")


@dataclasses.dataclass(frozen=True)
class _ReluToAbs(Pass):
    """Test only: a wrong rewrite that keeps the IR valid (the first Relu becomes Abs)."""

    name = "test-relu-to-abs"

    def run(self, model, ctx):
        node = next(n for n in model.graph if n.op_type == "Relu")
        node.op_type = "Abs"
        return PassResult(True)


@dataclasses.dataclass(frozen=True)
class _AlwaysChanged(Pass):
    """Test only: claims a change every time (never converges in a fixpoint group)."""

    name = "test-always-changed"

    def run(self, model, ctx):
        return PassResult(True)


_TEST_PASSES = (_BreakGraph, _Crash, _ReluToAbs, _AlwaysChanged)


@pytest.fixture
def broken_passes():
    for cls in _TEST_PASSES:
        register_pass(cls)
    yield
    for cls in _TEST_PASSES:
        _registry.pop(cls.name, None)


def ort_outputs(path, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


@pytest.mark.parametrize("level", ["0", "1", "2", "3"])
def test_every_level_keeps_the_outputs(tmp_path, level):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, f"-O{level}", "-o", out)
    assert result.exit_code == 0, result.stderr
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want, got = ort_outputs(EXAMPLE, x), ort_outputs(out, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)


def test_report_json_has_the_contract_keys(tmp_path):
    out, rep = tmp_path / "o.onnx", tmp_path / "report.json"
    result = run("compile", EXAMPLE, "-O1", "-o", out, "--report", rep, "-q")
    assert result.exit_code == 0, result.stderr
    report = json.loads(rep.read_text())
    assert {"passes", "input", "output", "total_seconds"} <= set(report)
    first = report["passes"][0]
    assert {"name", "seconds", "nodes_before", "nodes_after", "changed"} <= set(first)
    assert report["input"]["nodes"] == 24 and report["output"]["nodes"] < 24
    assert report["output"]["op_histogram"].get("Identity") is None
    assert any(p["name"] == "eliminate-identity" and p["changed"] for p in report["passes"])


def test_explicit_pipeline_and_disable(tmp_path):
    out, rep = tmp_path / "o.onnx", tmp_path / "r.json"
    result = run("compile", EXAMPLE, "--passes", "fixpoint(eliminate-identity,dce)",
                 "--disable", "dce", "-o", out, "--report", rep, "-q")
    assert result.exit_code == 0, result.stderr
    names = {p["name"] for p in json.loads(rep.read_text())["passes"]}
    assert names == {"eliminate-identity"}


def test_print_after_changed_prints_only_changing_passes(tmp_path):
    result = run("compile", EXAMPLE, "--passes", "dce,eliminate-identity", "--print-after",
                 "changed", "-o", tmp_path / "o.onnx", "-q")
    assert result.exit_code == 0, result.stderr
    assert "IR after eliminate-identity" in result.stdout
    assert "IR after dce" not in result.stdout  # the example has no dead code
    assert "Identity(" not in result.stdout.split("IR after eliminate-identity")[1]


def test_print_after_named_pass(tmp_path):
    result = run("compile", EXAMPLE, "--passes", "dce", "--print-after", "dce",
                 "-o", tmp_path / "o.onnx", "-q")
    assert "IR after dce (unchanged)" in result.stdout
    assert "graph tiny_cnn(%x: f32[N,3,32,32])" in result.stdout


def test_verify_each_names_the_broken_pass(tmp_path, broken_passes):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, "--passes", "dce,test-break-graph", "--verify-each",
                 "-o", out, "--reproducer-dir", tmp_path / "repro")
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "IR is invalid after pass 'test-break-graph'" in err
    assert "passes run before it: dce" in err
    assert not out.exists()


def test_no_verify_still_refuses_to_write_an_invalid_model(tmp_path, broken_passes):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, "--passes", "test-break-graph", "--no-verify", "-o", out)
    assert result.exit_code == 1
    assert "IR is invalid after pass" not in result.stderr  # no per-pass check ran ...
    assert "invalid after the pipeline (rerun with --verify-each" in result.stderr  # ... one at the end
    assert not out.exists()


def test_crashing_pass_writes_a_replayable_reproducer(tmp_path, broken_passes):
    repro = tmp_path / "repro"
    result = run("compile", EXAMPLE, "--passes", "eliminate-identity,test-crash",
                 "-o", tmp_path / "o.onnx", "--reproducer-dir", repro)
    assert result.exit_code == 1
    assert "pass 'test-crash' failed: RuntimeError: boom" in result.stderr
    assert f"reproducer: {repro}" in result.stderr
    pipeline = (repro / "pipeline.txt").read_text().strip()
    assert pipeline == "eliminate-identity,test-crash"
    assert irlib.load(repro / "input.onnx").graph.name == "tiny_cnn"
    replay = run("compile", repro / "input.onnx", "--passes", pipeline, "-o", tmp_path / "r.onnx",
                 "--reproducer-dir", tmp_path / "again")
    assert replay.exit_code == 1 and "test-crash" in replay.stderr


@pytest.mark.parametrize("pipeline, message", [
    ("dce,nope", "unknown pass 'nope'"),
    ("dce{x=1}", "pass 'dce' has no option 'x'"),
    ("fixpoint(dce", "expected ')'"),
    ("infer-shapes{data-prop=maybe}", "'maybe' is not a valid bool"),
])
def test_bad_pipelines_are_usage_errors(tmp_path, pipeline, message):
    result = run("compile", EXAMPLE, "--passes", pipeline, "-o", tmp_path / "o.onnx")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_passes_command_lists_kind_and_level():
    result = run("passes", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["dce"]["kind"] == "transform" and rows["dce"]["level"] == 1
    assert rows["dce"]["description"]
    assert rows["infer-shapes"]["options"][0]["name"] == "data-prop"
    table = run("passes").stdout
    assert "eliminate-identity" in table and "-O1" in table


def test_verify_numerics_stops_at_the_wrong_pass(tmp_path, broken_passes):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, "--passes", "eliminate-identity,test-relu-to-abs,dce",
                 "--verify-numerics", "--dim", "N=2", "-o", out)
    assert result.exit_code == 1, result.stderr
    assert "after pass 'test-relu-to-abs'" in result.stderr
    assert "passes run before it: eliminate-identity" in result.stderr
    assert not out.exists()


def test_verify_numerics_passes_the_real_pipeline(tmp_path):
    result = run("compile", EXAMPLE, "-O2", "--verify-numerics", "-o", tmp_path / "o.onnx", "-q")
    assert result.exit_code == 0, result.stderr


def test_backend_ort_writes_the_artifact_and_report_section(tmp_path):
    out, rep = tmp_path / "o.onnx", tmp_path / "r.json"
    result = run("compile", EXAMPLE, "--backend", "ort", "--backend-option", "threads=1",
                 "-o", out, "--report", rep, "-q")
    assert result.exit_code == 0, result.stderr
    section = json.loads(rep.read_text())["backend"]
    assert section["name"] == "ort" and section["options"]["threads"] == 1
    assert section["artifact"] == str(out)
    x = np.ones((1, 3, 32, 32), np.float32)
    np.testing.assert_allclose(ort_outputs(out, x)[0], ort_outputs(EXAMPLE, x)[0],
                               rtol=1e-4, atol=1e-5)


def test_unavailable_backend_fails_before_writing(tmp_path):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, "--backend", "tensorrt", "-o", out)
    assert result.exit_code == 1
    assert "tensorrt: unavailable" in result.stderr
    assert not out.exists()


def test_backend_option_without_backend_is_a_usage_error(tmp_path):
    result = run("compile", EXAMPLE, "--backend-option", "threads=1", "-o", tmp_path / "o.onnx")
    assert result.exit_code == 2


def test_non_converging_fixpoint_is_one_line_with_a_reproducer(tmp_path, broken_passes):
    repro = tmp_path / "repro"
    result = run("compile", EXAMPLE, "--passes", "fixpoint{max-iterations=3}(dce,test-always-changed)",
                 "-o", tmp_path / "o.onnx", "--reproducer-dir", repro)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "did not converge in 3 iterations; still changing: test-always-changed" in err
    assert (repro / "pipeline.txt").read_text().strip() == \
        "fixpoint{max-iterations=3}(dce,test-always-changed)"
