"""The TVM backend end to end on examples/tiny_cnn.onnx: compile, run, align with ONNX Runtime,
export ``.so`` + sidecar, reload in a fresh process, the CLI (``irc compile --backend tvm``,
``irc check --backend tvm``), options, unsupported ops and the ONNX-frontend fallback.

One module-scoped compile of tiny_cnn (at -O2, symbolic batch ``N``) is shared by the tests that
only run it. Tolerances: irc's defaults for float32 (rtol 1e-4, atol 1e-5). Skipped, with the
reason "apache-tvm not installed", where TVM is missing (tests/test_tvm_unavailable.py covers
that case).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import irlib
from backends.tvm._env import availability
from helpers import make_model

_ok, _why = availability()
if not _ok:
    pytest.skip(_why, allow_module_level=True)

from backends import BackendError, build_artifact, get_backend  # noqa: E402
from backends.numerics import compare_outputs, run_reference  # noqa: E402
from backends.tvm import load_module  # noqa: E402
from irc.check import random_inputs  # noqa: E402
from irc.cli import main  # noqa: E402
from irc.compile import compile_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "examples" / "tiny_cnn.onnx")


@pytest.fixture(scope="module")
def tiny():
    """(original IR, -O2 IR, TVM executable) for tiny_cnn."""
    original = irlib.load(TINY)
    optimized = compile_model(irlib.load(TINY), 2).model
    exe = get_backend("tvm").compile(optimized, {"threads": 2})
    return original, optimized, exe


@pytest.mark.parametrize("batch", [1, 3])
def test_tiny_cnn_aligns_with_ort_for_any_batch(tiny, batch):
    original, _, exe = tiny
    x = random_inputs(original, {"N": batch}, seed=batch)
    ref = run_reference(irlib.to_onnx(original).SerializeToString(), x)
    got = exe.run(x)
    comps = compare_outputs(ref, got)
    assert all(c.aligned for c in comps), [c.summary() for c in comps]
    assert got["logits"].shape == (batch, 10)
    assert comps[0].max_abs_error < 1e-5 and comps[0].cosine > 0.999999


def test_executable_interface(tiny):
    _, _, exe = tiny
    assert exe.input_names == ["x"] and exe.output_names == ["logits"]
    assert exe.artifact_suffix == ".so" and exe.options["threads"] == 2
    with pytest.raises(BackendError, match="missing input 'x'"):
        exe.run({})
    with pytest.raises(BackendError, match="dtype float64"):
        exe.run({"x": np.zeros((1, 3, 32, 32))})
    with pytest.raises(BackendError, match=r"shape \[1, 3, 8, 8\]"):
        exe.run({"x": np.zeros((1, 3, 8, 8), np.float32)})
    assert min(exe.benchmark({"x": np.zeros((1, 3, 32, 32), np.float32)}, repeat=2)) > 0


def test_export_writes_library_and_sidecar_and_reloads_in_a_fresh_process(tiny, tmp_path):
    original, optimized, exe = tiny
    path = exe.save(str(tmp_path / "tiny.so"))
    assert path == str(tmp_path / "tiny.so") and os.path.getsize(path) > 10_000
    meta = json.loads((tmp_path / "tiny.so.json").read_text())
    assert meta["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["N", 10]}]
    assert meta["tvm_version"].startswith("0.27") and meta["tvm_ffi_version"].startswith("0.1.14")
    assert meta["target"]["kind"] == "llvm" and meta["target"]["mcpu"]
    assert meta["irc_version"] and len(meta["model_sha256"]) == 64 and meta["threads"] == 2
    import hashlib

    assert meta["source_model_sha256"] == hashlib.sha256(open(TINY, "rb").read()).hexdigest()
    assert meta["lowering"] == "irc-converters"
    x = random_inputs(original, {"N": 2}, seed=7)
    np.savez(tmp_path / "x.npz", **x)
    script = (
        "import sys, numpy as np\n"
        "from backends.tvm import load_module\n"
        "exe = load_module(sys.argv[1], threads=1)\n"
        "x = dict(np.load(sys.argv[2]))\n"
        "np.savez(sys.argv[3], **exe.run(x))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, path, str(tmp_path / "x.npz"),
                        str(tmp_path / "y.npz")], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    again = dict(np.load(tmp_path / "y.npz"))
    np.testing.assert_array_equal(again["logits"], exe.run(x)["logits"])


def test_load_module_without_sidecar_is_one_line(tmp_path):
    with pytest.raises(BackendError, match="cannot read the sidecar"):
        load_module(str(tmp_path / "nothing.so"))


def test_irc_compile_backend_tvm_writes_so_and_report(tmp_path):
    out, report = tmp_path / "m.so", tmp_path / "r.json"
    r = CliRunner().invoke(main, ["compile", TINY, "-O2", "-o", str(out), "--backend", "tvm",
                                  "--backend-option", "threads=2",
                                  "--backend-option", "target=generic", "--report", str(report),
                                  "-q"])
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "m.so.json").exists()
    section = json.loads(report.read_text())["backend"]
    assert section["name"] == "tvm" and section["artifact"] == str(out)
    assert section["options"]["threads"] == 2 and section["options"]["target"] == "generic"
    assert "mcpu" not in json.loads((tmp_path / "m.so.json").read_text())["target"]


def test_irc_check_backend_tvm_reports_alignment():
    r = CliRunner().invoke(main, ["check", TINY, "--backend", "tvm", "--backend-option",
                                  "threads=2", "--dim", "N=2", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["aligned"] is True and result["outputs"][0]["name"] == "logits"


# -- options ----------------------------------------------------------------------------------
def relu_model():
    return irlib.from_onnx(make_model([helper.make_node("Relu", ["x"], ["y"])],
                                      [("x", TensorProto.FLOAT, [2, 3])],
                                      [("y", TensorProto.FLOAT, [2, 3])]))


@pytest.mark.parametrize("options,message", [
    ({"thread": 2}, "has no option 'thread'"),
    ({"threads": "many"}, "threads must be an integer"),
    ({"fallback": "magic"}, "fallback 'magic' is not one of"),
    ({"target": "pentium-9000"}, "not a CPU LLVM knows"),
    ({"target": {"kind": "cuda"}}, "target kind 'cuda' is not supported"),
    ({"tune": 8}, "tune needs tuning_db=DIR"),
    ({"tuning_db": "/no/such/dir"}, "does not exist"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(BackendError, match=message) as e:
        get_backend("tvm").compile(relu_model(), options)
    assert "\n" not in str(e.value)


def test_target_forms():
    from backends.tvm.build import host_cpu, make_target, target_json

    assert target_json(make_target("native", 2)) == {"kind": "llvm", "mcpu": host_cpu(),
                                                      "num-cores": 2}
    assert target_json(make_target("llvm -mcpu=skylake-avx512 -mattr=+avx2"))["mcpu"] == \
        "skylake-avx512"
    assert target_json(make_target('{"kind": "llvm", "mcpu": "znver3"}'))["mcpu"] == "znver3"
    assert "mcpu" not in target_json(make_target("generic"))


# -- unsupported ops and the fallback ---------------------------------------------------------
def unsupported_model():
    nodes = [helper.make_node("CumSum", ["x", "axis"], ["c"]),
             helper.make_node("CumSum", ["c", "axis"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("Det", ["r"], ["y"])]
    return make_model(nodes, [("x", TensorProto.FLOAT, [3, 3])], [("y", TensorProto.FLOAT, [])],
                      {"axis": np.array(0, np.int64)})


def test_unsupported_ops_are_named_and_counted_before_building():
    be = get_backend("tvm")
    model = irlib.from_onnx(unsupported_model())
    assert be.supports(next(iter(model.graph))) == "no TVM converter for CumSum"
    assert be.supports(irlib.Node("Foo", [], domain="my.ops")) == "no TVM converter for my.ops::Foo"
    with pytest.raises(BackendError) as e:
        be.compile(model)
    msg = str(e.value)
    assert msg.startswith("tvm: 3 node(s) the converters cannot take: CumSum x2 (no TVM"
                          " converter for CumSum); Det x1 (no TVM converter for Det)")
    assert "fallback=onnx-frontend" in msg and "\n" not in msg


def test_unsupported_attribute_is_a_reason():
    model = irlib.from_onnx(make_model(
        [helper.make_node("ArgMax", ["x"], ["y"], select_last_index=1)],
        [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.INT64, None)]))
    assert get_backend("tvm").supports(next(iter(model.graph))) == \
        "ArgMax: select_last_index=1 is not supported"


def test_irc_compile_with_an_unsupported_op_is_a_clear_error(tmp_path):
    path = tmp_path / "u.onnx"
    onnx.save(unsupported_model(), str(path))
    r = CliRunner().invoke(main, ["compile", str(path), "-O0", "-o", str(tmp_path / "u.so"),
                                  "--backend", "tvm"])
    assert r.exit_code == 1
    assert "irc: error: tvm: 3 node(s) the converters cannot take: CumSum x2" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "u.so").exists()


def test_fallback_hands_the_model_to_tvms_onnx_importer():
    proto = make_model([helper.make_node("CumSum", ["x", "axis"], ["c"]),
                        helper.make_node("Relu", ["c"], ["y"])],
                       [("x", TensorProto.FLOAT, [3, 4])], [("y", TensorProto.FLOAT, [3, 4])],
                       {"axis": np.array(1, np.int64)})
    exe = get_backend("tvm").compile(irlib.from_onnx(proto), {"fallback": "onnx-frontend"})
    assert exe.meta["lowering"] == "onnx-frontend"
    x = {"x": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    ref = run_reference(proto.SerializeToString(), x)
    np.testing.assert_allclose(exe.run(x)["y"], ref["y"], rtol=1e-5, atol=1e-6)


def test_build_artifact_section(tmp_path):
    section = build_artifact(relu_model(), "tvm", str(tmp_path / "r.so"), {"threads": 1})
    assert section["name"] == "tvm" and section["version"].startswith("0.27")
    assert section["options"]["threads"] == 1 and section["artifact"] == str(tmp_path / "r.so")
    json.dumps(section)


def test_dims_bind_symbolic_dimensions_to_a_static_module(tiny):
    original, optimized, _ = tiny
    exe = get_backend("tvm").compile(optimized, {"threads": 1, "dims": "N=2"})
    assert exe.meta["inputs"][0]["shape"] == [2, 3, 32, 32]
    x = random_inputs(original, {"N": 2}, seed=3)
    ref = run_reference(irlib.to_onnx(original).SerializeToString(), x)
    assert all(c.aligned for c in compare_outputs(ref, exe.run(x)))
    with pytest.raises(BackendError, match=r"shape \[1, 3, 32, 32\]"):
        exe.run(random_inputs(original, {"N": 1}))
    with pytest.raises(BackendError, match="expected NAME=SIZE"):
        get_backend("tvm").compile(optimized, {"dims": "N"})
