"""Bad models get one clear line and a non-zero exit from every command, never a traceback.

Each case writes a broken model file and runs ``irc inspect`` and ``irc compile`` on it. Both must
exit with status 1, print exactly one line ``irc: error: ...`` on stderr naming the problem, and
``compile`` must leave no output file behind (and must not touch one that was already there).
"""

from __future__ import annotations

import inspect as _inspect
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from irc.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.onnx"


def runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click 8.1 needs to be asked)."""
    if "mix_stderr" in _inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def _model(nodes, out="y", inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2])],
        initializer=list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def not_protobuf(path: Path) -> None:
    path.write_text("this is a text file, not an ONNX model\n")


def truncated(path: Path) -> None:
    data = EXAMPLE.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def cycle(path: Path) -> None:
    onnx.save(_model([
        helper.make_node("Add", ["x", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node("Neg", ["b"], ["y"], name="neg"),
    ]), path)


def undefined_value(path: Path) -> None:
    onnx.save(_model([helper.make_node("Relu", ["nowhere"], ["y"], name="relu")]), path)


def duplicate_names(path: Path) -> None:
    onnx.save(_model([
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        helper.make_node("Neg", ["x"], ["y"], name="neg"),
    ]), path)


def missing_external_data(path: Path) -> None:
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])],
                   inits=[numpy_helper.from_array(np.ones(2, np.float32), "w")])
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.name + ".data", size_threshold=0)
    os.remove(path.parent / (path.name + ".data"))


def unknown_opset(path: Path) -> None:
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])], opset=99), path)


# (writer, words the one-line error must contain)
CASES = {
    "not-protobuf": (not_protobuf, ["not an ONNX model"]),
    "truncated": (truncated, ["not an ONNX model", "truncated"]),
    "cycle": (cycle, ["cycle", "add", "relu"]),
    "undefined-value": (undefined_value, ["undefined value", "nowhere"]),
    "duplicate-names": (duplicate_names, ["'y'", "defined twice"]),
    "missing-external-data": (missing_external_data, ["external data file", "not found"]),
    "unknown-opset": (unknown_opset, ["opset", "99"]),
}


def _check_error(result, path: Path, words: list[str]) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"irc: error: {path}:"), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert result.stdout == ""


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_model_is_one_line_error(tmp_path, case):
    write, words = CASES[case]
    model = tmp_path / "bad.onnx"
    write(model)
    out = tmp_path / "out.onnx"

    result = runner().invoke(main, ["inspect", str(model)])
    _check_error(result, model, words)

    result = runner().invoke(main, ["inspect", "--json", str(model)])
    _check_error(result, model, words)

    result = runner().invoke(main, ["compile", str(model), "-O0", "-o", str(out)])
    _check_error(result, model, words)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "bad.onnx") == [], \
        "compile left files behind"

    out.write_bytes(b"previous contents")
    result = runner().invoke(main, ["compile", str(model), "-o", str(out)])
    _check_error(result, model, words)
    assert out.read_bytes() == b"previous contents"


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    result = runner().invoke(main, ["compile", str(missing), "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1
    assert result.stderr == f"irc: error: {missing}: no such file\n"
    assert not (tmp_path / "o.onnx").exists()


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    result = runner().invoke(main, ["inspect", str(empty)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"irc: error: {empty}: not an ONNX model")
    assert "empty" in result.stderr


def test_output_folder_missing(tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "o.onnx"
    result = runner().invoke(main, ["compile", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("irc: error: ") and "does not exist" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not out.parent.exists()
