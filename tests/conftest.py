"""Fixtures shared by the whole suite. Plain helpers (building ONNX models, checking IR models)
live in ``tests/helpers.py``; import them with ``from helpers import make_model, assert_valid``.

``verified`` checks a model when the test hands it over *and again when the test ends*, so a
test that goes on mutating a model after checking it still fails if the model ends up broken::

    def test_fold(verified):
        model = verified(parse_ir(TEXT))    # fails now if the IR is broken
        run_my_pass(model)                  # ... and at teardown if this broke it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from helpers import assert_valid

PLUGIN_SRC = os.path.join(os.path.dirname(__file__), "plugins", "irc_test_plugin")


@pytest.fixture
def verified():
    """A function ``verified(model) -> model``: verify now and again at the end of the test."""
    models = []

    def check(model):
        assert_valid(model)
        models.append(model)
        return model

    yield check
    for model in models:
        assert_valid(model)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """Install tests/plugins/irc_test_plugin once per session, as a user would
    (``pip install --no-deps --no-build-isolation -e``), from a copy (the source tree stays clean)
    into a private ``--prefix`` that no other process sees. Returns (site-packages folder, the
    plugin's source folder); tests put the first on ``sys.path`` themselves."""
    root = tmp_path_factory.mktemp("irc_plugin")
    src = root / "irc_test_plugin"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    prefix = root / "prefix"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-input", "--no-deps", "--no-build-isolation", "--no-index",
           "--prefix", str(prefix), "-e", str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"pip could not install the test plugin:\n{done.stderr[-2000:]}"
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    assert os.path.isdir(purelib), f"pip installed nothing under {purelib}"
    return purelib, str(src)


@pytest.fixture
def plugin(plugin_site, monkeypatch):
    """The test plugin visible to this process for one test: its prefix on ``sys.path`` and both
    registries (passes and backends) scratch copies, so whatever the test registers - through
    the entry points or by hand - is gone afterwards. Yields the plugin's site-packages folder."""
    import importlib
    import site

    import backends
    import backends.registry
    import passes
    import passes.registry

    purelib, _ = plugin_site
    passes.all_passes()  # built-ins and real plugins, loaded before this one is visible
    backends.backend_names()
    monkeypatch.setattr(passes.registry, "_registry", dict(passes.registry._registry))
    monkeypatch.setattr(passes.registry, "_plugins_loaded", True)
    monkeypatch.setattr(backends.registry, "_registry", dict(backends.registry._registry))
    monkeypatch.setattr(backends.registry, "_origin", dict(backends.registry._origin))
    monkeypatch.setattr(sys, "path", list(sys.path))
    site.addsitedir(purelib)  # processes the editable install's .pth file
    importlib.invalidate_caches()
    backends.registry.load_plugins(force=True)  # pass tests load theirs explicitly
    yield purelib
    for name in [m for m in sys.modules if m.split(".")[0] == "irc_test_plugin"]:
        del sys.modules[name]
    importlib.invalidate_caches()
