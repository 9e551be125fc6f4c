"""The bundled example, ``examples/tiny_cnn.onnx``: loads, verifies, runs, and is reproducible."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import irlib

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"


def _make_example_module():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "tools" / "make_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loads_verifies_and_is_small():
    model = irlib.load(EXAMPLE)
    irlib.verify(model)
    assert model.ir_version == 8 and model.opset() == 17
    assert EXAMPLE.stat().st_size < 300_000
    onnx.checker.check_model(onnx.load(str(EXAMPLE)), full_check=True)


def test_runs_under_onnxruntime():
    sess = ort.InferenceSession(str(EXAMPLE), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    (y,) = sess.run(None, {"x": x})
    assert y.shape == (3, 10) and y.dtype == np.float32
    assert np.isfinite(y).all()
    assert not np.allclose(y[0], y[1])  # different images, different logits


def test_committed_file_matches_generator(tmp_path):
    """Re-running tools/make_example.py gives the committed bytes (seeded, deterministic)."""
    out = tmp_path / "tiny_cnn.onnx"
    assert _make_example_module().main(["-o", str(out)]) == 0
    assert out.read_bytes() == EXAMPLE.read_bytes(), \
        "examples/tiny_cnn.onnx is stale: run python tools/make_example.py and commit it"


def test_holds_what_the_passes_look_for():
    """Identity, Dropout, Conv->BatchNormalization, MatMul->Add, a Transpose pair, a residual Add."""
    graph = irlib.load(EXAMPLE).graph
    ops = [n.op_type for n in graph]
    assert {"Identity", "Dropout", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm"} <= set(ops)

    def followed_by(first: str, second: str) -> bool:
        return any(n.op_type == first and any(u.op_type == second for u in n.output.users())
                   for n in graph)

    assert followed_by("Conv", "BatchNormalization")
    assert followed_by("BatchNormalization", "Relu")
    assert followed_by("MatMul", "Add")
    assert followed_by("Transpose", "Transpose")
    residual = [n for n in graph if n.op_type == "Add"
                and all(v.producer() is not None and v.producer().op_type != "MatMul"
                        for v in n.inputs)]
    assert len(residual) == 1
