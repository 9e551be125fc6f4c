"""A third-party backend through the ``irc.backends`` entry points, end to end.

tests/plugins/irc_test_plugin is a package of its own whose pyproject.toml declares::

    [project.entry-points."irc.backends"]
    onnx-reference = "irc_test_plugin.backend:OnnxReferenceBackend"

The session fixture ``plugin_site`` (tests/conftest.py) installs it once with pip, as a user
would, into a temporary ``--prefix``: other test processes never meet it. The in-process tests put that prefix on ``sys.path``; the end-to-end
tests run the ``irc`` command in a subprocess whose ``PYTHONPATH`` holds it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import backends
import irlib
from irc.check import check_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"


def irc_subprocess(plugin_site, *args):
    """Run the installed ``irc`` as a user would, with the plugin's prefix on the path."""
    purelib, src = plugin_site
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([purelib, src, str(ROOT)]))
    return subprocess.run([sys.executable, "-c", "from irc.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_the_entry_point_is_installed(plugin):
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="irc.backends")}
    assert eps["onnx-reference"] == "irc_test_plugin.backend:OnnxReferenceBackend"


def test_the_registry_finds_and_runs_the_plugin(plugin, tmp_path):
    assert "onnx-reference" in backends.backend_names()
    b = backends.get_backend("onnx-reference")
    assert type(b).__module__ == "irc_test_plugin.backend" and b.is_available() == (True, "")
    model = irlib.load(str(EXAMPLE))
    exe = b.compile(model)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = exe.run({exe.input_names[0]: x})
    want = backends.get_backend("ort").compile(model).run({exe.input_names[0]: x})
    np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-4, atol=1e-5)
    assert exe.save(str(tmp_path / "a.onnx")) == str(tmp_path / "a.onnx")


def test_check_library_with_the_plugin(plugin):
    assert check_model(str(EXAMPLE), backend="onnx-reference").aligned
    wrong = check_model(str(EXAMPLE), backend="onnx-reference",
                        backend_options={"scale_outputs": 1.01})
    assert not wrong.aligned
    # the graph is fine: no intermediate differs under ORT, so the backend is to blame
    assert wrong.first_divergence is None


def test_irc_backends_lists_the_plugin(plugin_site):
    done = irc_subprocess(plugin_site, "backends")
    assert done.returncode == 0, done.stderr
    assert "onnx-reference" in done.stdout
    assert "ONNX's Python reference evaluator (test plugin)" in done.stdout


def test_irc_check_runs_the_plugin(plugin_site):
    done = irc_subprocess(plugin_site, "check", str(EXAMPLE), "--backend", "onnx-reference",
                          "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["aligned"] is True and data["outputs"][0]["name"] == "logits"
    done = irc_subprocess(plugin_site, "check", str(EXAMPLE), "--backend", "onnx-reference",
                          "--backend-option", "scale_outputs=2")
    assert done.returncode == 1, done.stderr
    assert "MISALIGNED" in done.stdout
    assert "no same-named intermediate tensor differs under ORT" in done.stdout
