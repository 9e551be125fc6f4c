"""The model zoo end to end: ``irc compile -O2`` on real exported architectures (ResNet-50,
MobileNetV2, EfficientNet-B0, ViT-B/16, BERT-base, GPT-2), checked under ONNX Runtime against the
original on the seeded inputs the export wrote beside each model.

The zoo is generated, not committed (it is about 1.5 GB), and these tests take minutes, so they
are opt-in::

    python tools/export_zoo.py          # once: writes zoo/*.onnx and zoo/*.npz
    python -m pytest -m zoo -q          # these tests (IRC_ZOO=DIR to use another folder)

A plain ``python -m pytest`` skips them: the module when ``zoo/`` holds no model, each test
when the marker expression does not select ``zoo``.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import irlib
from irc.cli import main

pytestmark = pytest.mark.zoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.environ.get("IRC_ZOO", os.path.join(ROOT, "zoo"))
MODELS = sorted(p for p in glob.glob(os.path.join(ZOO, "*.onnx"))
                if os.path.exists(p[:-5] + ".npz"))

if not MODELS:
    pytest.skip("zoo models not generated: run tools/export_zoo.py", allow_module_level=True)

#: Largest output difference allowed, relative to the largest magnitude of the reference output.
#: -O2 folds BatchNormalization into Conv weights and reassociates bias adds, which changes float32
#: rounding; measured errors are below 1e-5 on every zoo model (docs/benchmarks.md).
REL_TOL = 1e-4


def selects_zoo(markexpr: str) -> bool:
    """Whether ``-m markexpr`` asks for the zoo tests (``zoo``, ``zoo and not slow``; not
    ``not zoo``)."""
    return re.search(r"(?<!not )\bzoo\b", markexpr or "") is not None


@pytest.fixture(autouse=True)
def _opt_in(request):
    if not selects_zoo(request.config.getoption("markexpr")):
        pytest.skip("zoo tests are opt-in (minutes per model): run pytest -m zoo")


def ort_outputs(path: str, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def load_feeds(path: str) -> dict[str, np.ndarray]:
    with np.load(path[:-5] + ".npz") as data:
        return {k: data[k] for k in data.files}


def test_selects_zoo():
    assert selects_zoo("zoo") and selects_zoo("zoo and not slow") and selects_zoo("slow or zoo")
    assert not selects_zoo("") and not selects_zoo("not zoo") and not selects_zoo("zookeeper")


@pytest.mark.parametrize("path", MODELS, ids=lambda p: os.path.basename(p)[:-5])
def test_compile_o2(path, tmp_path):
    out, report_path = str(tmp_path / "o2.onnx"), str(tmp_path / "report.json")
    result = CliRunner().invoke(main, ["compile", path, "-O2", "-o", out, "--report",
                                       report_path, "-q"])
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(out, full_check=True)  # by path: works past 2 GB as well
    model = irlib.load(out)
    irlib.verify(model)
    with open(report_path) as f:
        report = json.load(f)
    before, after = report["input"]["nodes"], report["output"]["nodes"]
    assert after == len(list(model.graph)) and after < before

    original = onnx.load(path, load_external_data=False)
    compiled = onnx.load(out, load_external_data=False)
    assert [o.name for o in compiled.graph.output] == [o.name for o in original.graph.output]
    feeds = load_feeds(path)
    want, got = ort_outputs(path, feeds), ort_outputs(out, feeds)
    assert len(want) == len(got)
    for name, w, g in zip([o.name for o in original.graph.output], want, got):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        assert np.isfinite(w).all(), f"{name}: the original's output is not finite"
        scale = max(float(np.abs(w).max()), 1e-6)
        err = float(np.abs(g.astype(np.float64) - w).max()) / scale
        assert err <= REL_TOL, f"{name}: max |diff| / max |ref| = {err:.3g}"


def test_irc_check_with_zoo_inputs():
    """``irc check --inputs`` takes the .npz the export wrote (on the smallest model)."""
    path = min(MODELS, key=os.path.getsize)
    result = CliRunner().invoke(main, ["check", path, "--inputs", path[:-5] + ".npz", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["aligned"] is True
