"""The backend API: the registry, the ONNX Runtime backend, and the TensorRT/TVM availability
probes.

    exe = backends.get_backend("ort").compile(model, {"threads": 1})
    exe.run({"x": x})["y"]; exe.save(path)
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import backends
import backends.registry as registry
import irlib
from backends import Backend, BackendError, BackendUnavailable, Executable
from helpers import make_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"


def relu_model():
    return irlib.load(make_model([helper.make_node("Relu", ["x"], ["y"])],
                                 inputs=[("x", TensorProto.FLOAT, [2, 3])],
                                 outputs=[("y", TensorProto.FLOAT, [2, 3])]))


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as a scratch copy, so a test may register or break things."""
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setattr(registry, "_origin", dict(registry._origin))
    monkeypatch.setattr(registry, "_plugins_loaded", registry._plugins_loaded)


# -- registry -------------------------------------------------------------------------------


def test_builtins_are_registered():
    names = backends.backend_names()
    assert {"ort", "tensorrt", "tvm"} <= set(names)
    assert names == sorted(names)
    b = backends.get_backend("ort")
    assert b.name == "ort" and b is backends.get_backend("ort")  # one instance


def test_listing_imports_no_backend_module():
    code = ("import sys, backends; backends.backend_names(); "
            "print(sorted(m for m in sys.modules if m.startswith('backends.') or "
            "m in ('tensorrt', 'tvm', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['backends.base', 'backends.registry']"


def test_unknown_backend_suggests_close_names():
    with pytest.raises(BackendError, match=r"unknown backend 'otr' .*did you mean ort"):
        backends.get_backend("otr")


class Toy(Backend):
    name = "toy"
    description = "returns zeros"

    def compile(self, model, options=None):
        self.check_options(options)
        raise BackendError("toy: cannot compile")


def test_register_and_clash(scratch_registry):
    backends.register_backend(Toy)
    assert isinstance(backends.get_backend("toy"), Toy)
    backends.register_backend(Toy)  # the same class again is fine

    class OtherToy(Toy):
        pass

    with pytest.raises(BackendError, match="backend name 'toy' is registered twice"):
        backends.register_backend(OtherToy)

    class FakeOrt(Toy):
        name = "ort"

    with pytest.raises(BackendError, match="backend name 'ort' is registered twice"):
        backends.register_backend(FakeOrt)
    with pytest.raises(BackendError, match="invalid name"):
        backends.register_backend(type("Bad", (Toy,), {"name": "Not Valid"}))
    with pytest.raises(BackendError, match="is not a backends.Backend"):
        backends.register_backend(object())


def test_entry_point_clash_with_a_builtin_is_an_error(scratch_registry, monkeypatch):
    ep = importlib.metadata.EntryPoint("ort", "somepkg.mod:Ort", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points",
                        lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    with pytest.raises(BackendError, match=r"'ort' is registered twice: backends.ort:OrtBackend"
                                           r" and plugin somepkg.mod:Ort"):
        registry.load_plugins(force=True)


def test_entry_points_load_lazily_and_are_checked(scratch_registry, monkeypatch, tmp_path):
    pkg = tmp_path / "lazy_backend_pkg.py"
    pkg.write_text(
        "from backends import Backend\n"
        "class Lazy(Backend):\n"
        "    name = 'lazy'\n"
        "    def compile(self, model, options=None):\n"
        "        raise NotImplementedError\n"
        "class Misnamed(Lazy):\n"
        "    name = 'other'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [importlib.metadata.EntryPoint("lazy", "lazy_backend_pkg:Lazy", registry.ENTRY_POINT_GROUP),
           importlib.metadata.EntryPoint("misnamed", "lazy_backend_pkg:Misnamed",
                                         registry.ENTRY_POINT_GROUP),
           importlib.metadata.EntryPoint("broken", "no_such_module_xyz:B", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: eps)
    registry.load_plugins(force=True)
    assert {"lazy", "misnamed", "broken"} <= set(backends.backend_names())
    assert "lazy_backend_pkg" not in sys.modules  # listed, not imported
    assert backends.get_backend("lazy").name == "lazy"
    with pytest.raises(BackendError, match="entry point 'misnamed' names a backend called 'other'"):
        backends.get_backend("misnamed")
    with pytest.raises(BackendError, match="cannot load backend plugin 'broken'"):
        backends.get_backend("broken")
    sys.modules.pop("lazy_backend_pkg", None)


# -- ONNX Runtime -----------------------------------------------------------------------------


def test_ort_compile_run_save(tmp_path):
    model = irlib.load(str(EXAMPLE))
    b = backends.get_backend("ort")
    assert b.is_available() == (True, "") and b.version() == ort.__version__
    exe = b.compile(model, {"threads": 1, "graph_optimization_level": "basic"})
    assert isinstance(exe, Executable) and exe.artifact_suffix == ".onnx"
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    (name,) = exe.input_names
    y = exe.run({name: x})
    assert list(y) == exe.output_names
    path = exe.save(str(tmp_path / "out.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {name: x})[0], y[exe.output_names[0]], rtol=1e-5)
    assert exe.options == {"threads": 1, "providers": ["CPUExecutionProvider"],
                           "graph_optimization_level": "basic", "session_config": {}}


def test_ort_options_are_checked():
    b = backends.get_backend("ort")
    m = relu_model()
    with pytest.raises(BackendError, match="backend 'ort' has no option 'thread' "
                                           r"\(options: graph_optimization_level, providers,"):
        b.compile(m, {"thread": 2})
    with pytest.raises(BackendError, match="threads must be an integer"):
        b.compile(m, {"threads": "many"})
    with pytest.raises(BackendError, match="not one of disable|basic|extended|all"):
        b.compile(m, {"graph_optimization_level": "O3"})
    with pytest.raises(BackendError, match="execution provider NoSuchExecutionProvider is not in"):
        b.compile(m, {"providers": "NoSuchExecutionProvider,CPUExecutionProvider"})
    exe = b.compile(m, {"providers": "CPUExecutionProvider",
                        "session_config": {"session.intra_op.allow_spinning": "0"}})
    assert exe.session.get_providers() == ["CPUExecutionProvider"]
    assert exe.options["session_config"] == {"session.intra_op.allow_spinning": "0"}


def test_ort_run_errors_are_one_line():
    exe = backends.get_backend("ort").compile(relu_model())
    with pytest.raises(BackendError) as e:
        exe.run({"x": np.ones((2, 3), np.float64)})
    assert str(e.value).startswith("ort: run failed: ") and "\n" not in str(e.value)


def test_ort_supports_uses_registered_kernels():
    b = backends.get_backend("ort")
    model = relu_model()
    relu = model.graph.nodes[0]
    assert b.supports(relu, model) is True
    assert b.supports(irlib.Node("FusedConv", [], domain="com.microsoft")) is True
    reason = b.supports(irlib.Node("NoSuchOp", []))
    assert reason == "ORT has no CPU kernel for ai.onnx::NoSuchOp"
    assert "no CPU kernel" in b.supports(irlib.Node("Foo", [], domain="my.domain"))


def test_build_artifact_returns_the_report_section(tmp_path):
    section = backends.build_artifact(relu_model(), "ort", str(tmp_path / "r.onnx"), {"threads": 1})
    assert section["name"] == "ort" and section["version"] == ort.__version__
    assert section["options"]["threads"] == 1 and section["artifact"] == str(tmp_path / "r.onnx")
    onnx.checker.check_model(onnx.load(section["artifact"]))
    json.dumps(section)  # goes into the JSON compile report as it is
    if importlib.util.find_spec("tvm") is None:  # tests/test_tvm_backend.py covers it installed
        with pytest.raises(BackendUnavailable, match="tvm: unavailable: apache-tvm not installed"):
            backends.build_artifact(relu_model(), "tvm", str(tmp_path / "t.so"))


# -- TensorRT and TVM: honest availability, no heavy imports --------------------------------


def test_tensorrt_and_tvm_report_unavailable_here():
    trt = backends.get_backend("tensorrt")
    ok, reason = trt.is_available()
    assert not ok
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt not installed" in reason
    assert "later issue" in trt.description
    tvm = backends.get_backend("tvm")  # implemented: unavailable only without apache-tvm
    unavailable = [trt] + ([tvm] if importlib.util.find_spec("tvm") is None else [])
    for b in unavailable:
        with pytest.raises(BackendUnavailable) as e:
            b.compile(relu_model())
        assert str(e.value).startswith(f"{b.name}: unavailable: ") and "\n" not in str(e.value)


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """Importable ``tensorrt`` and ``tvm`` packages that fail loudly if anything imports them."""
    for name in ("tensorrt", "tvm"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise RuntimeError('{name} must not be imported by irc')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    importlib.invalidate_caches()


def test_probes_find_installed_packages_without_importing_them(fake_packages, monkeypatch):
    import backends.tensorrt as trt_mod

    tvm_loaded = "tvm" in sys.modules  # by an earlier TVM test in this process

    trt = backends.get_backend("tensorrt")
    monkeypatch.setattr(trt_mod, "cuda_device_present", lambda: False)
    assert trt.is_available() == (False, "no CUDA device")
    monkeypatch.setattr(trt_mod, "cuda_device_present", lambda: True)
    ok, reason = trt.is_available()
    assert not ok and reason == "irc's TensorRT lowering is not implemented yet"
    backends.get_backend("tvm").is_available()  # probes versions, imports nothing
    assert "tensorrt" not in sys.modules and ("tvm" not in sys.modules or tvm_loaded)


# -- the CLI ----------------------------------------------------------------------------------


def test_irc_backends_lists_availability():
    from click.testing import CliRunner

    from irc.cli import main

    r = CliRunner().invoke(main, ["backends"])
    assert r.exit_code == 0
    assert f"ort {ort.__version__}: available" in r.output
    assert "tensorrt: unavailable: " in r.output
    if importlib.util.find_spec("tvm") is None:
        assert "tvm: unavailable: apache-tvm not installed" in r.output
    r = CliRunner().invoke(main, ["backends", "--json"])
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["ort"]["available"] is True and rows["tensorrt"]["available"] is False
    assert set(rows["ort"]) == {"name", "available", "reason", "version", "description"}
