"""``irc check``: numerical alignment of a compiled model with ONNX Runtime's unoptimized run.

The model used throughout is ``y = 2 * Relu(x @ W + b)``. A deliberately wrong rewrite, the pass
``test-flip-add-sign`` (``Add(a, b) -> Sub(a, b)``), is registered here so that a check has
something to catch: the tests show that ``irc check`` exits 1, that the first-divergence report
names the node the rule created, and that ``--bisect`` names the pass.
"""

from __future__ import annotations

import dataclasses
import inspect as _inspect
import json
import math

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import irlib
import passes
from backends.numerics import NumericsCheck, compare, default_tolerance
from helpers import make_model
from irc import check
from irc.cli import main
from passes import PassFailure, PassManager, PatternPass, RewriteRule

# -- a deliberately wrong rewrite -----------------------------------------------------------


class FlipAddSign(RewriteRule):
    """Add(a, b) -> Sub(a, b): wrong on purpose."""

    name = "flip-add-sign"

    def pattern(self, op, a, b):
        return op.Add(a, b)

    def rewrite(self, op, a, b):
        return op.Sub(a, b)


@passes.register_pass
@dataclasses.dataclass(frozen=True)
class TestFlipAddSign(PatternPass):
    """Test only: turn every Add into a Sub (a wrong rewrite for irc check to catch)."""

    __test__ = False  # not a pytest test class
    name = "test-flip-add-sign"
    rules = (FlipAddSign,)


CLEANUP = "infer-shapes,fixpoint(eliminate-identity,dce)"
WRONG = f"{CLEANUP},test-flip-add-sign,{CLEANUP}"

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
B = np.array([0.5, -0.25, 1.0], np.float32)


def mlp(batch=2) -> onnx.ModelProto:
    return make_model(
        [helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
         helper.make_node("Add", ["mm", "b"], ["h"], name="bias"),
         helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("Mul", ["r", "two"], ["y"], name="scale")],
        inputs=[("x", TensorProto.FLOAT, [batch, 4])],
        outputs=[("y", TensorProto.FLOAT, [batch, 3])],
        initializers={"W": W, "b": B, "two": np.array(2.0, np.float32)},
    )


@pytest.fixture
def mlp_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp(), path)
    return str(path)


def runner() -> CliRunner:
    if "mix_stderr" in _inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def irc(*args):
    return runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# -- comparing arrays -----------------------------------------------------------------------


def test_default_tolerances_by_dtype():
    f32 = default_tolerance(np.float32)
    assert (f32.rtol, f32.atol) == (1e-4, 1e-5)
    f16 = default_tolerance(np.float16)
    assert (f16.rtol, f16.atol) == (1e-2, 1e-3)
    for dt in (np.int64, np.int8, np.uint8, np.bool_):
        t = default_tolerance(dt)
        assert (t.rtol, t.atol) == (0.0, 0.0)
    t = default_tolerance(np.float32, rtol=0.5)
    assert (t.rtol, t.atol) == (0.5, 1e-5)


def test_compare_reports_errors_mismatches_and_cosine():
    ref = np.array([1.0, 2.0, 0.0, -4.0], np.float32)
    got = ref + np.array([0.0, 1e-6, 0.0, 0.5], np.float32)
    c = compare("y", ref, got)
    assert c.mismatches == 1 and not c.aligned
    assert c.max_abs_error == pytest.approx(0.5)
    assert c.max_rel_error == pytest.approx(0.125)  # 0.5 / 4; the zero element is skipped
    assert 0.98 < c.cosine < 1.0
    assert compare("y", ref, got, atol=1.0).aligned  # an override makes it pass


def test_compare_is_exact_for_ints_and_treats_equal_nans_as_equal():
    assert not compare("i", np.array([1, 2]), np.array([1, 3])).aligned
    assert compare("i", np.array([2**60 + 1]), np.array([2**60 + 1])).aligned
    assert not compare("i", np.array([2**60 + 1]), np.array([2**60])).aligned  # no float rounding
    nan = np.array([np.nan, np.inf, 1.0], np.float32)
    assert compare("f", nan, nan.copy()).aligned
    c = compare("f", nan, np.array([0.0, np.inf, 1.0], np.float32))
    assert not c.aligned and c.max_abs_error == math.inf and c.as_json()["max_abs_error"] == "inf"


def test_compare_shape_or_dtype_mismatch_is_misaligned():
    c = compare("y", np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32))
    assert not c.aligned and c.max_abs_error is None and "shape" in c.note
    c = compare("y", np.zeros(3, np.float32), np.zeros(3, np.float64))
    assert not c.aligned and "dtype" in c.note


def test_fp16_uses_looser_tolerance():
    ref = np.array([1.0, 2.0], np.float16)
    assert compare("h", ref, ref * np.float16(1.004)).aligned
    assert not compare("f", ref.astype(np.float32), (ref * np.float16(1.004)).astype(np.float32)).aligned


# -- aligned models -------------------------------------------------------------------------


def test_check_model_aligned_at_O2(mlp_path):
    result = check.check_model(mlp_path, level=2)
    assert result.aligned
    assert [c.name for c in result.outputs] == ["y"]
    assert result.outputs[0].max_abs_error < 1e-5 and result.first_divergence is None


def test_cli_check_aligned_exit_0_and_json_keys(mlp_path):
    r = irc("check", mlp_path, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    data = json.loads(r.output)
    assert set(data) == {"aligned", "outputs", "first_divergence", "bisect"}
    assert data["aligned"] is True and data["first_divergence"] is None and data["bisect"] is None
    (out,) = data["outputs"]
    assert set(out) == {"name", "dtype", "shape", "max_abs_error", "max_rel_error", "mismatches",
                        "cosine", "aligned"}
    assert out["name"] == "y" and out["dtype"] == "float32" and out["shape"] == [2, 3]
    assert out["mismatches"] == 0 and out["aligned"] is True and out["cosine"] > 0.999999


def test_cli_check_text_output(mlp_path):
    r = irc("check", mlp_path, "-O", "1")
    assert r.exit_code == 0
    assert "aligned: 1 output(s) within tolerance" in r.output
    assert "infer-shapes" in r.output  # the pipeline is shown


# -- a wrong rewrite is caught --------------------------------------------------------------


def test_wrong_rewrite_fails_with_exit_1_and_names_the_node(mlp_path):
    r = irc("check", mlp_path, "--passes", WRONG, "--json")
    assert r.exit_code == 1, r.output + r.stderr
    data = json.loads(r.output)
    assert data["aligned"] is False and data["outputs"][0]["mismatches"] > 0
    d = data["first_divergence"]
    assert d["op"] == "Sub" and d["output"] == "h"       # the node the rule created
    assert d["rule"] == "flip-add-sign" and d["replaced"] == ["bias"]
    assert d["inputs"] == ["mm", "b"]
    assert d["max_abs_error"] > 0.1
    assert data["bisect"] is None  # only with --bisect


def test_bisect_names_the_wrong_pass_and_its_changes(mlp_path):
    r = irc("check", mlp_path, "--passes", WRONG, "--bisect")
    assert r.exit_code == 1
    out = r.output
    assert "MISALIGNED" in out
    assert "first divergence: %h: f32[2,3] = Sub(%mm, %b)" in out
    assert "created by rule 'flip-add-sign' (replaced bias)" in out
    assert "bisect: first diverging pass: test-flip-add-sign" in out
    assert "  + %h: f32[2,3] = Sub(%mm, %b)" in out
    assert "  - %h: f32[2,3] = Add(%mm, %b)" in out


def test_bisect_json(mlp_path):
    r = irc("check", mlp_path, "--passes", WRONG, "--bisect", "--json")
    b = json.loads(r.output)["bisect"]
    assert b["pass"] == "test-flip-add-sign"
    # infer-shapes, eliminate-identity, dce = 3 runs before it; the wrong pass is run 4
    assert b["index"] == 4 and b["runs"] > 4
    assert b["added"] == ["%h: f32[2,3] = Sub(%mm, %b)"]
    assert b["removed"] == ["%h: f32[2,3] = Add(%mm, %b)"]
    steps = {s["max_pass_runs"]: s["aligned"] for s in b["steps"]}
    assert steps[0] is True and steps[b["runs"]] is False


def test_bisect_library_finds_pass_at_any_position():
    for before in ("", "infer-shapes,", f"{CLEANUP},infer-shapes,"):
        items = passes.parse_pipeline(f"{before}test-flip-add-sign,{CLEANUP}")
        x = {"x": np.ones((2, 4), np.float32)}
        res = check.bisect(mlp(), items, x)
        assert res.pass_name == "test-flip-add-sign"


def test_bisect_when_aligned_names_no_pass(mlp_path):
    proto = mlp()
    res = check.bisect(proto, passes.parse_pipeline(CLEANUP), {"x": np.ones((2, 4), np.float32)})
    assert res.pass_name is None and res.runs == res.index


def test_tolerance_override_accepts_the_difference(mlp_path):
    assert irc("check", mlp_path, "--passes", WRONG, "--atol", "1e6").exit_code == 0


def test_two_models(tmp_path, mlp_path):
    other = tmp_path / "other.onnx"
    m = irlib.load(mlp_path)
    irlib.save(m, other)
    assert irc("check", mlp_path, other).exit_code == 0
    wrong = irlib.load(mlp_path)
    PassManager(WRONG).run(wrong)
    irlib.save(wrong, other)
    r = irc("check", mlp_path, other, "--json")
    assert r.exit_code == 1
    d = json.loads(r.output)["first_divergence"]
    assert d["op"] == "Sub" and d["output"] == "h"
    r = irc("check", mlp_path, other, "-O", "2")
    assert r.exit_code == 2 and "not to MODEL OTHER" in r.stderr


def test_numerics_instrument_names_the_pass():
    proto = mlp()
    model = irlib.load(proto)
    inst = NumericsCheck(proto, {"x": np.ones((2, 4), np.float32)})
    with pytest.raises(PassFailure) as e:
        PassManager(WRONG, instruments=[inst]).run(model)
    assert e.value.pass_name == "test-flip-add-sign"
    msg = str(e.value)
    assert "\n" not in msg and "after pass 'test-flip-add-sign'" in msg and "y:" in msg
    assert "passes run before it: infer-shapes, eliminate-identity, dce" in msg
    # only the passes that changed the model were run and compared
    assert inst.checked == ["infer-shapes", "test-flip-add-sign"]
    # the same instrument lets a correct pipeline through
    good = NumericsCheck(proto, {"x": np.ones((2, 4), np.float32)}, only_changed=False)
    report = PassManager(passes.level_pipeline(2), instruments=[good]).run(irlib.load(proto))
    assert good.checked == [r.name for r in report.passes]


# -- inputs ---------------------------------------------------------------------------------


def test_random_inputs_respect_dtypes_shapes_and_seed():
    proto = make_model(
        [helper.make_node("Cast", ["i"], ["ic"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "ic"], ["y"]),
         helper.make_node("Not", ["m"], ["nm"])],
        inputs=[("x", TensorProto.FLOAT, ["N", 3]), ("i", TensorProto.INT64, ["N", 3]),
                ("m", TensorProto.BOOL, [2, None])],
        outputs=[("y", TensorProto.FLOAT, ["N", 3]), ("nm", TensorProto.BOOL, [2, None])])
    model = irlib.load(proto)
    a = check.random_inputs(model, {"N": 5}, seed=1)
    assert a["x"].shape == (5, 3) and a["x"].dtype == np.float32
    assert a["i"].dtype == np.int64 and a["i"].min() >= 0 and a["m"].dtype == np.bool_
    assert a["m"].shape == (2, 1)  # an unknown dim is 1
    assert check.random_inputs(model, seed=1)["x"].shape == (1, 3)  # a symbolic dim defaults to 1
    b = check.random_inputs(model, {"N": 5}, seed=1)
    c = check.random_inputs(model, {"N": 5}, seed=2)
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])


def test_cli_dim_and_seed(tmp_path):
    proto = make_model([helper.make_node("Relu", ["x"], ["y"])],
                       inputs=[("x", TensorProto.FLOAT, ["N", 3])],
                       outputs=[("y", TensorProto.FLOAT, ["N", 3])])
    path = tmp_path / "dyn.onnx"
    onnx.save(proto, path)
    r = irc("check", path, "--dim", "N=4", "--seed", "7", "--json")
    assert r.exit_code == 0
    assert json.loads(r.output)["outputs"][0]["shape"] == [4, 3]
    r = irc("check", path, "--dim", "N")
    assert r.exit_code == 2 and "expected NAME=INTEGER" in r.stderr


def test_inputs_from_npz(tmp_path, mlp_path):
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    r = irc("check", mlp_path, "--inputs", tmp_path / "in.npz")
    assert r.exit_code == 0, r.stderr


def test_inputs_from_npy_folder_with_unsafe_names(tmp_path):
    proto = make_model([helper.make_node("Add", ["gpu_0/x", "b"], ["y"])],
                       inputs=[("gpu_0/x", TensorProto.FLOAT, [3]), ("b", TensorProto.FLOAT, [3])],
                       outputs=[("y", TensorProto.FLOAT, [3])])
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "gpu_0_x.npy", np.ones(3, np.float32))  # '/' cannot be in a file name
    np.save(folder / "b.npy", np.arange(3, dtype=np.float32))
    arrays = check.load_inputs(str(folder), irlib.load(str(path)))
    assert set(arrays) == {"gpu_0/x", "b"}
    assert irc("check", path, "--inputs", folder).exit_code == 0


def test_inputs_from_pb_folder(tmp_path, mlp_path):
    folder = tmp_path / "test_data_set_0"
    folder.mkdir()
    x = np.full((2, 4), 0.5, np.float32)
    (folder / "input_0.pb").write_bytes(numpy_helper.from_array(x).SerializeToString())
    (folder / "output_0.pb").write_bytes(b"ignored: only input_*.pb files are read")
    arrays = check.load_inputs(str(folder), irlib.load(mlp_path))
    assert np.array_equal(arrays["x"], x)
    assert irc("check", mlp_path, "--inputs", folder).exit_code == 0
    # a named tensor picks its input by name, whatever the file is called
    (folder / "input_0.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    assert np.array_equal(check.load_inputs(str(folder), irlib.load(mlp_path))["x"], x)


@pytest.mark.parametrize("arrays, message", [
    ({"z": np.ones((2, 4), np.float32)}, "'z' is not an input of the model (inputs: x)"),
    ({}, "no data for input 'x'"),
    ({"x": np.ones((2, 5), np.float32)},
     "input 'x': shape [2, 5] does not match the model's [2, 4] (dim 1 is 5, not 4)"),
    ({"x": np.ones((2, 4, 1), np.float32)}, "input 'x': shape [2, 4, 1] does not match"),
    ({"x": np.ones((2, 4), np.float64)},
     "input 'x': dtype float64 does not match the model's float32"),
])
def test_bad_inputs_are_one_line_errors_with_exit_2(tmp_path, mlp_path, arrays, message):
    np.savez(tmp_path / "in.npz", **arrays)
    r = irc("check", mlp_path, "--inputs", tmp_path / "in.npz")
    assert r.exit_code == 2, r.output + r.stderr
    assert message in r.stderr
    assert r.stderr.startswith("irc: error: ") and r.stderr.count("\n") == 1


def test_unreadable_inputs_and_models_exit_2(tmp_path, mlp_path):
    r = irc("check", mlp_path, "--inputs", tmp_path / "nope.npz")
    assert r.exit_code == 2 and "no such file or directory" in r.stderr
    (tmp_path / "bad.pb").write_bytes(b"\xff\xff\xff")
    r = irc("check", mlp_path, "--inputs", tmp_path / "bad.pb")
    assert r.exit_code == 2 and "not an ONNX TensorProto" in r.stderr
    r = irc("check", tmp_path / "missing.onnx")
    assert r.exit_code == 2 and "no such file" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = irc("check", mlp_path, "--inputs", empty)
    assert r.exit_code == 2 and "no .npy or .pb files" in r.stderr


def test_bad_usage_exits_2(mlp_path):
    r = irc("check", mlp_path, "--passes", "no-such-pass")
    assert r.exit_code == 2 and "unknown pass 'no-such-pass'" in r.stderr
    r = irc("check", mlp_path, "--backend", "nope")
    assert r.exit_code == 2 and "unknown backend 'nope'" in r.stderr
    r = irc("check", mlp_path, "--backend", "tensorrt")  # no CUDA device on the test machines
    assert r.exit_code == 2 and "tensorrt: unavailable" in r.stderr
    r = irc("check", mlp_path, "--backend-option", "bogus=1")
    assert r.exit_code == 2 and "backend 'ort' has no option 'bogus'" in r.stderr
    r = irc("check", mlp_path, "-O", "2", "--passes", "dce")
    assert r.exit_code == 2


def test_a_model_the_reference_cannot_run_exits_2(tmp_path):
    proto = make_model([helper.make_node("NoSuchOp", ["x"], ["y"], domain="irc.test")],
                       inputs=[("x", TensorProto.FLOAT, [2])], outputs=[("y", TensorProto.FLOAT, [2])],
                       opsets={"irc.test": 1})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    r = irc("check", path, "-O", "0")
    assert r.exit_code == 2 and "reference" in r.stderr and r.stderr.count("\n") == 1


def test_backend_options_reach_the_backend(mlp_path):
    r = irc("check", mlp_path, "--backend-option", "threads=1",
            "--backend-option", "graph_optimization_level=all")
    assert r.exit_code == 0
    r = irc("check", mlp_path, "--backend-option", "graph_optimization_level=max")
    assert r.exit_code == 2 and "not one of disable|basic|extended|all" in r.stderr


# -- the alignment report only touches its own section of docs/conformance.md ---------------


def test_alignment_report_replaces_only_its_section():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "alignment_report", Path(__file__).resolve().parents[1] / "tools" / "alignment_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    new = f"## {tool.TITLE}\n\nnew figures\n"
    doc = "# Conformance\n\n## Figures\n\nsweep\n"
    once = tool.replace_section(doc, new)
    assert once == doc + "\n" + new
    middle = once + "\n## Later section\n\nkept\n"
    twice = tool.replace_section(middle.replace("new figures", "old figures"), new)
    assert twice == middle
    assert tool.replace_section("", new) == new
