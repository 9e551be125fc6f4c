"""Without apache-tvm, the TVM backend says so in one line, everywhere, and nothing imports TVM.

These tests run whether or not TVM is installed: they hide it by making ``find_spec("tvm")``
return nothing, as on a machine without the ``tvm`` extra. The converter registry and the
support check need no TVM either, and the generated table of supported ops in
docs/backends/tvm.md is current.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import irlib
from backends import BackendUnavailable, get_backend
from backends.tvm import _env
from irc.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "examples" / "tiny_cnn.onnx")


@pytest.fixture
def no_tvm(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "tvm" or name.startswith("tvm."):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(_env, "_imported", None)


def test_availability_names_the_missing_package(no_tvm):
    ok, reason = get_backend("tvm").is_available()
    assert not ok and reason.startswith("apache-tvm not installed")


def test_compile_raises_unavailable_in_one_line(no_tvm):
    model = irlib.load(TINY)
    with pytest.raises(BackendUnavailable) as e:
        get_backend("tvm").compile(model)
    assert str(e.value).startswith("tvm: unavailable: apache-tvm not installed")
    assert "\n" not in str(e.value)


def test_irc_compile_and_check_say_tvm_is_missing(no_tvm, tmp_path):
    r = CliRunner().invoke(main, ["compile", TINY, "-o", str(tmp_path / "m.so"), "--backend",
                                  "tvm"])
    assert r.exit_code == 1
    assert r.output.strip() == ("irc: error: tvm: unavailable: apache-tvm not installed"
                                " (pip install -e \".[tvm]\")")
    r = CliRunner().invoke(main, ["check", TINY, "--backend", "tvm"])
    assert r.exit_code == 2 and "tvm: unavailable: apache-tvm not installed" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(main, ["backends"])
    assert "unavailable: apache-tvm not installed" in r.output


def test_wrong_tvm_ffi_version_is_refused_with_the_reason(monkeypatch):
    if importlib.util.find_spec("tvm") is None:
        pytest.skip("apache-tvm not installed")
    monkeypatch.setattr(_env, "ffi_version", lambda: "0.1.15")
    ok, reason = _env.availability()
    assert not ok and reason.startswith("apache-tvm-ffi 0.1.15 is installed; irc needs 0.1.14.x")


def test_registry_and_support_check_do_not_import_tvm():
    code = ("import sys, irlib\n"
            "from backends import get_backend\n"
            "from backends.tvm.converters import CONVERTERS\n"
            f"m = irlib.load({TINY!r})\n"
            "be = get_backend('tvm'); be.is_available()\n"
            "assert all(be.supports(n) is True for n in m.graph), 'unsupported'\n"
            "assert len(CONVERTERS) > 100\n"
            "assert 'tvm' not in sys.modules, 'tvm imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_supported_ops_table_is_current():
    r = subprocess.run([sys.executable, "tools/gen_tvm_docs.py", "--check"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
