"""ONNX's backend test corpus through irlib's round trip, checked under ONNX Runtime.

One test per case (~2,000: the node cases of ``onnx.backend.test.case.node`` and the model folders
of ``onnx/backend/test/data``). ORT running the *original* model is the baseline:

- where ORT reproduces the expected outputs, the round-tripped model
  (``irlib.load -> irlib.verify -> irlib.to_onnx``) must too, with the case's tolerance;
- where ORT cannot (no kernel, a runtime failure, outputs off the expected ones), the round trip
  must still succeed and behave under ORT as the original does, and the reason is recorded (as
  the test's ``ort_cannot_run`` property) and must be the one ``docs/conformance.md`` lists;
- everywhere, ``onnx.checker.check_model(full_check=True)`` must accept the round trip when it
  accepts the original.

The sweep itself lives in ``tools/conformance_report.py``, which writes ``docs/conformance.md``.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "conformance_report", os.path.join(ROOT, "tools", "conformance_report.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("conformance_report", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return sys.modules["conformance_report"]


conf = _load_tool()
CASES = conf.case_names()
_RESULTS: dict[str, object] = {}


@pytest.mark.parametrize("name", CASES)
def test_case(name, record_property):
    r = conf.run_named(name)
    _RESULTS[name] = r
    if not r.ort_passes:
        record_property("ort_cannot_run", f"{r.ort_original}: {r.ort_detail}")
    assert r.roundtrip_error is None, f"round trip failed: {r.roundtrip_error}"
    assert not r.checker_regressed, f"the checker rejects the round trip: {r.checker_roundtrip}"
    assert r.ort_roundtrip_error is None, (
        f"the round trip behaves differently under ORT ({r.compared_with} outputs):"
        f" {r.ort_roundtrip_error}")


def test_cases_ort_cannot_run_are_the_ones_documented():
    """Every case ORT cannot run is listed in docs/conformance.md under its reason, and every
    listed case still fails that way: the baseline is not hidden, and the report is current.
    (Regenerate it with ``python tools/conformance_report.py`` after upgrading ORT or onnx.)"""
    with open(os.path.join(ROOT, "docs", "conformance.md"), encoding="utf-8") as f:
        text = f.read()
    import re

    import onnxruntime

    made_with = re.search(r"^onnx (\S+), onnxruntime (\S+) ", text, re.M)
    here = (onnx.__version__, onnxruntime.__version__)
    if made_with is None or made_with.groups() != here:
        pytest.skip(f"docs/conformance.md was generated with onnx/onnxruntime "
                    f"{made_with.groups() if made_with else '?'}, this is {here}: which cases ORT"
                    " cannot run depends on its version (regenerate: tools/conformance_report.py)")
    documented = conf.parse_report(text)
    results = [_RESULTS.get(n) or conf.run_named(n) for n in CASES]  # those -k deselected too
    found = {r.name: r.ort_original for r in results if not r.ort_passes}
    assert found == documented
    assert len(found) < len(CASES) // 4  # the harness feeds ORT properly: most cases run


def test_corpus_is_complete():
    """The sweep sees every source: ~1,900 node cases and each model folder."""
    sources = {n.split("/")[0] for n in CASES}
    assert sources == {"node", *conf.MODEL_FOLDERS}
    assert sum(n.startswith("node/") for n in CASES) > 1800
    assert len(CASES) == len(set(CASES))


# -- the harness can fail ----------------------------------------------------------------------
def _add_case() -> "conf.Case":
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [onnx.numpy_helper.from_array(np.full((2, 3), 0.5, np.float32), "w")])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    return conf.Case("local/add", model, [([x], [x + 0.5])])


def test_a_faithful_round_trip_passes():
    r = conf.run_case(_add_case())
    assert r.ort_passes and r.roundtrip_ok, r


def test_harness_catches_a_round_trip_that_changes_numbers(monkeypatch):
    def lossy(proto):
        out = _real_round_trip(proto)
        out.graph.initializer[0].raw_data = np.full((2, 3), 0.25, np.float32).tobytes()
        return out

    monkeypatch.setattr(conf, "round_trip", lossy)
    r = conf.run_case(_add_case())
    assert r.ort_passes and not r.roundtrip_ok
    assert "output 0" in r.ort_roundtrip_error


def test_harness_catches_a_round_trip_the_checker_rejects(monkeypatch):
    def broken(proto):
        out = _real_round_trip(proto)
        out.graph.node[0].output[0] = "x"  # x is defined twice now
        return out

    monkeypatch.setattr(conf, "round_trip", broken)
    r = conf.run_case(_add_case())
    assert r.checker_original is None and r.checker_regressed


def test_baseline_failures_are_classified():
    case = _add_case()
    case.data_sets = [([case.data_sets[0][0][0]], [np.zeros((2, 3), np.float32)])]
    r = conf.run_case(case)
    assert r.ort_original == conf.MISMATCH and r.roundtrip_ok  # same outputs as the original

    unknown = _add_case()
    unknown.model.graph.node[0].op_type = "NoSuchOp"
    unknown.model.graph.node[0].domain = "no.such.domain"
    unknown.model.opset_import.add(domain="no.such.domain", version=1)
    r = conf.run_case(unknown)
    assert r.ort_original.startswith("ORT cannot load the model:") and r.roundtrip_ok


def test_compare_uses_the_tolerance_and_exotic_types():
    import ml_dtypes

    a = np.array([1.0, 2.0], np.float32)
    assert conf.compare([a], [a * (1 + 1e-4)], rtol=1e-3, atol=0) is None
    assert "output 0" in conf.compare([a], [a * 1.1], rtol=1e-3, atol=0)
    assert "dtype" in conf.compare([a], [a.astype(np.float64)], 1e-3, 0)
    bf = a.astype(ml_dtypes.bfloat16)
    assert conf.compare([bf], [bf], 1e-3, 0) is None
    i4 = np.array([1, -2], ml_dtypes.int4)
    assert conf.compare([i4], [np.array([1, -1], ml_dtypes.int4)], 1e-3, 0) is not None
    assert conf.compare([[a, a]], [[a, a]], 1e-3, 0) is None
    assert "sequence" in conf.compare([[a, a]], [[a]], 1e-3, 0)


def _real_round_trip(proto):
    import irlib

    model = irlib.load(proto)
    irlib.verify(model)
    return irlib.to_onnx(model)


def test_report_keeps_other_tools_sections():
    """docs/conformance.md is shared: regenerating the sweep's part keeps sections other tools
    write (tools/alignment_report.py's), and replaces the sweep's own."""
    old = "# title\n\n## Figures\n\nold figures\n\n## Numerical alignment\n\ntable\n"
    new = "# title\n\n## Figures\n\nnew figures\n"
    merged = conf.merge(old, new)
    assert "new figures" in merged and "old figures" not in merged
    assert merged.endswith("## Numerical alignment\n\ntable\n")
    assert conf.merge("", new) == new
