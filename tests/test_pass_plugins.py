"""Third-party passes through the ``irc.passes`` entry-point group.

tests/plugins/irc_test_plugin is a package of its own whose pyproject.toml declares::

    [project.entry-points."irc.passes"]
    test-plugin-double-neg = "irc_test_plugin.passes:RemoveDoubleNeg"     # a Pass subclass
    test-plugin-extras = "irc_test_plugin.passes:register_extras"         # registers passes itself

The session fixture ``plugin_site`` (tests/conftest.py) installs it once with pip, exactly as a
user would, but into a temporary ``--prefix`` that only this test process sees; the ``plugin``
fixture puts it on ``sys.path`` for one test and takes it out of the registry again at the end.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import onnxruntime as ort
import pytest

import irlib
import passes
import passes.registry
from helpers import assert_valid, parse_ir
from passes import PassError, PassManager

PLUGIN_PASSES = ("test-plugin-double-neg", "test-plugin-count-ops")


def test_the_plugin_is_installed_with_its_entry_points(plugin):
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=passes.ENTRY_POINT_GROUP)}
    assert eps["test-plugin-double-neg"] == "irc_test_plugin.passes:RemoveDoubleNeg"
    assert eps["test-plugin-extras"] == "irc_test_plugin.passes:register_extras"


def test_all_passes_lists_plugin_passes(plugin):
    passes.registry.load_plugins(force=True)
    found = passes.all_passes()
    for name in PLUGIN_PASSES:
        assert name in found
    assert found["test-plugin-double-neg"].__module__ == "irc_test_plugin.passes"
    assert found["test-plugin-double-neg"].description() == (
        "Remove pairs of negations (from the irc-test-plugin package).")
    # loading again is harmless: the same classes register again
    passes.registry.load_plugins(force=True)
    assert passes.all_passes()["test-plugin-double-neg"] is found["test-plugin-double-neg"]


def test_plugin_passes_run_in_a_pipeline(plugin):
    passes.registry.load_plugins(force=True)
    model = assert_valid(parse_ir("""
        main (float[2,3] x) => (float[2,3] y) {
            a = Neg(x)
            b = Neg(a)
            y = Relu(b)
        }"""))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    want = np.maximum(x, 0)
    report = PassManager("test-plugin-double-neg,test-plugin-count-ops,dce").run(model)
    assert [r.name for r in report.passes] == ["test-plugin-double-neg", "test-plugin-count-ops", "dce"]
    assert report.passes[0].stats["applied:neg-neg"] == 1
    assert report.passes[1].stats == {"nodes": 1}
    assert [n.op_type for n in model.graph] == ["Relu"]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(irlib.to_onnx(model).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], want)


def test_a_plugin_taking_a_builtin_name_is_an_error(plugin, monkeypatch):
    """``irc_test_plugin.clash.ShadowDce`` calls itself ``dce``. Its entry point is not in the
    plugin's pyproject.toml (it would break every irc run); we add it to what the loader sees."""
    shadow = importlib.metadata.EntryPoint(
        name="dce", value="irc_test_plugin.clash:ShadowDce", group=passes.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        found = list(real(**kw))
        return found + [shadow] if kw.get("group") == passes.ENTRY_POINT_GROUP else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with pytest.raises(PassError) as e:
        passes.registry.load_plugins(force=True)
    message = str(e.value)
    assert "\n" not in message
    assert message == ("pass name 'dce' is registered twice: passes.transforms.dce.DeadCodeElimination"
                       " and irc_test_plugin.clash.ShadowDce")
    assert passes.all_passes()["dce"].__module__ == "passes.transforms.dce"


def test_an_entry_point_must_carry_the_pass_name(plugin, monkeypatch):
    wrong = importlib.metadata.EntryPoint(
        name="test-plugin-other-name", value="irc_test_plugin.passes:RemoveDoubleNeg",
        group=passes.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [wrong] if kw.get("group") == passes.ENTRY_POINT_GROUP else [])
    with pytest.raises(PassError, match="entry point 'test-plugin-other-name' names a pass called"
                                        " 'test-plugin-double-neg'"):
        passes.registry.load_plugins(force=True)


def test_a_broken_plugin_is_named_in_the_error(plugin, monkeypatch):
    broken = importlib.metadata.EntryPoint(
        name="test-plugin-broken", value="irc_test_plugin.no_such_module:Pass",
        group=passes.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [broken] if kw.get("group") == passes.ENTRY_POINT_GROUP else [])
    with pytest.raises(PassError) as e:
        passes.registry.load_plugins(force=True)
    assert str(e.value).startswith(
        "cannot load pass plugin 'test-plugin-broken' (irc_test_plugin.no_such_module:Pass): ")
    assert "\n" not in str(e.value)
