"""The ``irc`` command: inspect, compile, --version, and its error boundary.

Most tests drive the command in-process through click's ``CliRunner``; one runs the installed
``irc`` executable in a subprocess, as a user would.
"""

from __future__ import annotations

import inspect as _inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import irc
import irc.cli
import irlib
from irc.cli import main
from irc.compile import LEVELS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.onnx"


def runner() -> CliRunner:
    if "mix_stderr" in _inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def run_ort(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def if_model() -> onnx.ModelProto:
    """``y = If(sum(x) > 0, then: x + 1, else: Neg(x) * 2)``: 3 top-level nodes, 3 in subgraphs."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    then = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["n"]),
                             helper.make_node("Mul", ["n", "two"], ["e"])], "else", [],
                            [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els)],
        "main", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[one, two, numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# -- --version ----------------------------------------------------------------------------
def test_version():
    result = runner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"irc {irc.__version__}\n"


def test_no_command_shows_help():
    result = runner().invoke(main, [])
    assert result.exit_code in (0, 2)  # click >= 8.2 exits 2 when a group gets no command
    assert "inspect" in result.output and "compile" in result.output


# -- inspect ------------------------------------------------------------------------------
def test_inspect_json_matches_onnx():
    """The JSON summary agrees with counts taken directly from the ONNX protobuf."""
    result = runner().invoke(main, ["inspect", "--json", str(EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    s = json.loads(result.stdout)
    assert list(s) == ["producer", "ir_version", "opsets", "inputs", "outputs", "nodes",
                       "subgraph_nodes", "op_histogram", "parameters", "parameter_bytes"]
    proto = onnx.load(str(EXAMPLE))
    arrays = [numpy_helper.to_array(t) for t in proto.graph.initializer]
    assert s["producer"] == f"{proto.producer_name} {proto.producer_version}"
    assert s["ir_version"] == proto.ir_version == 8
    assert s["opsets"] == {"ai.onnx": 17}
    assert s["inputs"] == [{"name": "x", "dtype": "f32", "shape": ["N", 3, 32, 32]}]
    assert s["outputs"] == [{"name": "logits", "dtype": "f32", "shape": ["N", 10]}]
    assert s["nodes"] == len(proto.graph.node)
    assert s["subgraph_nodes"] == 0
    expected = {}
    for n in proto.graph.node:
        expected[n.op_type] = expected.get(n.op_type, 0) + 1
    assert s["op_histogram"] == expected
    assert list(s["op_histogram"].values()) == sorted(s["op_histogram"].values(), reverse=True)
    assert s["parameters"] == sum(a.size for a in arrays)
    assert s["parameter_bytes"] == sum(a.nbytes for a in arrays)


def test_inspect_counts_subgraph_nodes(tmp_path):
    path = tmp_path / "if.onnx"
    onnx.save(if_model(), path)
    s = json.loads(runner().invoke(main, ["inspect", "--json", str(path)]).stdout)
    assert (s["nodes"], s["subgraph_nodes"]) == (6, 3)
    assert s["op_histogram"]["If"] == 1 and s["op_histogram"]["Neg"] == 1
    assert s["parameters"] == 3 and s["parameter_bytes"] == 12

    text = runner().invoke(main, ["inspect", str(path)]).stdout
    assert "6 (3 of them in subgraphs)" in text


def test_inspect_counts_constant_nodes(tmp_path):
    value = helper.make_tensor("c", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=value),
         helper.make_node("Add", ["x", "c"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    path = tmp_path / "c.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    s = json.loads(runner().invoke(main, ["inspect", "--json", str(path)]).stdout)
    assert (s["parameters"], s["parameter_bytes"]) == (4, 16)


def test_inspect_summary_text():
    result = runner().invoke(main, ["inspect", str(EXAMPLE)])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for expected in ("irc-make-example 1", "IR version   8", "ai.onnx 17",
                     "24 (no subgraphs)", "12,730", "[N,3,32,32]", "logits",
                     "BatchNormalization", "GlobalAveragePool"):
        assert expected in out, expected
    assert result.stderr == ""


def test_inspect_print_is_format_model():
    result = runner().invoke(main, ["inspect", "--print", str(EXAMPLE)])
    assert result.exit_code == 0
    assert result.stdout == irlib.format_model(irlib.load(EXAMPLE))
    assert "%stem.bn: f32[N,16,32,32] = BatchNormalization(%stem.conv," in result.stdout


def test_inspect_print_indents_subgraphs(tmp_path):
    path = tmp_path / "if.onnx"
    onnx.save(if_model(), path)
    lines = runner().invoke(main, ["inspect", "--print", str(path)]).stdout.splitlines()
    neg = next(line for line in lines if "= Neg(" in line)
    if_line = next(line for line in lines if "= If(" in line)
    indent = len(neg) - len(neg.lstrip())
    assert indent > len(if_line) - len(if_line.lstrip())


def test_inspect_print_and_json_conflict():
    result = runner().invoke(main, ["inspect", "--print", "--json", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "cannot be combined" in result.stderr


# -- compile ------------------------------------------------------------------------------
def test_compile_o0_runs_the_same(tmp_path):
    out = tmp_path / "tiny.irc.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "-O0", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"irc: wrote {out} (-O0: 24 -> 24 nodes)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.irc.onnx"]  # no temp files
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(run_ort(out, x), run_ort(EXAMPLE, x))
    assert irlib.format_model(irlib.load(out)) == irlib.format_model(irlib.load(EXAMPLE))


def test_compile_long_option_and_default_level(tmp_path):
    out = tmp_path / "a.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "--opt-level", "0", "--output", str(out)])
    assert result.exit_code == 0 and out.exists()
    out2 = tmp_path / "b.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "-o", str(out2)])
    assert result.exit_code == 0 and out2.exists()


def test_compile_keeps_external_data(tmp_path):
    src = tmp_path / "ext.onnx"
    onnx.save(onnx.load(str(EXAMPLE)), src, save_as_external_data=True, location="ext.onnx.data",
              size_threshold=1024)
    out = tmp_path / "out.onnx"
    result = runner().invoke(main, ["compile", str(src), "-O0", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out.onnx.data").exists()
    x = np.ones((1, 3, 32, 32), np.float32)
    np.testing.assert_array_equal(run_ort(out, x), run_ort(EXAMPLE, x))


def test_compile_unknown_level_is_usage_error(tmp_path):
    out = tmp_path / "o.onnx"
    level = str(max(LEVELS) + 1)
    result = runner().invoke(main, ["compile", str(EXAMPLE), f"-O{level}", "-o", str(out)])
    assert result.exit_code == 2
    assert f"'{level}' is not" in result.stderr
    assert not out.exists()


def test_compile_needs_output():
    result = runner().invoke(main, ["compile", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "Missing option '-o'" in result.stderr


def test_compile_model_api_refuses_unknown_level():
    with pytest.raises(irc.CompileError, match="optimization level 7 is not available"):
        irc.compile_model(irlib.load(EXAMPLE), 7)


def test_compile_refuses_broken_ir(tmp_path, monkeypatch):
    """A model that loads but breaks an IR invariant is refused before anything is written."""
    real_load = irlib.load

    def broken_load(path):
        model = real_load(path)
        node = next(iter(model.graph))
        node.inputs[0]._uses.clear()  # corrupt the use list behind the API's back
        return model

    monkeypatch.setattr(irc.cli.irlib, "load", broken_load)
    out = tmp_path / "o.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("irc: error: ") and "does not record this use" in result.stderr
    assert not out.exists()


# -- error boundary -----------------------------------------------------------------------
def test_internal_error_is_one_line_with_distinct_status(tmp_path, monkeypatch):
    def boom(model, level, **kw):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(irc.cli, "compile_model", boom)
    out = tmp_path / "o.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == irc.cli.EXIT_INTERNAL
    assert result.stderr == ("irc: internal error: RuntimeError: something broke"
                             " (run with --debug for a traceback)\n")
    assert not out.exists()

    result = runner().invoke(main, ["--debug", "compile", str(EXAMPLE), "-o", str(out)])
    assert isinstance(result.exception, RuntimeError)  # --debug lets it through
    assert not out.exists()


def test_verbose_logs_to_stderr(tmp_path):
    out = tmp_path / "o.onnx"
    result = runner().invoke(main, ["-v", "compile", str(EXAMPLE), "-O1", "-o", str(out)])
    assert result.exit_code == 0
    assert "irc: passes.manager: eliminate-identity:" in result.stderr  # one line per pass
    assert "nodes -> 20 nodes" in result.stderr  # and the pipeline's total


# -- the real executable ------------------------------------------------------------------
def _irc_executable() -> str | None:
    beside_python = Path(sys.executable).with_name("irc")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("irc")


@pytest.mark.skipif(_irc_executable() is None,
                    reason="the irc console script is not installed (pip install -e .)")
def test_executable_end_to_end(tmp_path):
    exe = _irc_executable()
    out = tmp_path / "tiny.irc.onnx"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ok = subprocess.run([exe, "compile", str(EXAMPLE), "-O0", "-o", str(out)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert out.exists()

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    fail = subprocess.run([exe, "compile", str(bad), "-o", str(tmp_path / "x.onnx")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert fail.returncode == 1
    assert fail.stderr.startswith(f"irc: error: {bad}: not an ONNX model")
    assert len(fail.stderr.splitlines()) == 1 and "Traceback" not in fail.stderr
    assert not (tmp_path / "x.onnx").exists()

    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"irc {irc.__version__}"
