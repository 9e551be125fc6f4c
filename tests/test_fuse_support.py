"""What every fusion test checks, in one place: run a pass on a model, then

1. the IR verifies and the exported proto passes ``onnx.checker`` (full check);
2. ONNX Runtime, with its own optimizations off (so ORT's fusions cannot hide ours), computes the
   same outputs before and after, within per-test tolerances;
3. a second run changes nothing (idempotence).

Fusion tests import :func:`check_rewrite` (pytest puts ``tests/`` on ``sys.path``)::

    from test_fuse_support import check_rewrite
    model, result = check_rewrite(proto, "fuse-conv-bn")
    assert result.stats["applied:conv-bn"] == 1

The tests at the bottom check that the checker itself catches a wrong rewrite.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import irlib
from passes import PassContext, PassResult, make_pass

__all__ = ["ort_run", "random_feeds", "run_pass", "check_rewrite", "op_counts"]


def ort_run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``proto`` under ONNX Runtime (CPU) with graph optimizations disabled."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3  # no warnings about initializers a rewrite left unused
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feeds(proto: onnx.ModelProto, seed: int = 0, dim: int = 2) -> dict[str, np.ndarray]:
    """Seeded random data for the graph inputs that are not initializers (symbolic dims -> dim)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else dim for d in tt.shape.dim]
        np_type = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(np_type, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(np_type)
        else:
            feeds[vi.name] = rng.integers(-5, 6, shape).astype(np_type)
    return feeds


def run_pass(model: irlib.Model, name: str) -> PassResult:
    """Run registered pass ``name`` once (``name`` may carry options: ``x{a=1}`` is not needed
    here) and return its result."""
    return make_pass(name).run(model, PassContext(model))


def op_counts(model: irlib.Model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph)


def check_rewrite(proto: onnx.ModelProto, *passes: str, feeds=None, rtol=1e-5, atol=1e-6,
                  prepare=("infer-shapes",)):
    """Run ``prepare`` then ``passes`` on ``proto``; check verify/checker/ORT/idempotence.

    Returns ``(model, result)``: the transformed IR model and the last pass's ``PassResult``.
    """
    model = irlib.from_onnx(proto)
    for name in prepare:
        run_pass(model, name)
    result = None
    for name in passes:
        result = run_pass(model, name)
    irlib.verify(model)
    out = irlib.to_onnx(model)
    onnx.checker.check_model(out, full_check=True)
    feeds = random_feeds(proto) if feeds is None else feeds
    expected = ort_run(proto, feeds)
    got = ort_run(out, feeds)
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert e.shape == g.shape and e.dtype == g.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
    again = [run_pass(model, name) for name in passes]
    assert not any(r.changed for r in again), f"second run changed the model: {again}"
    irlib.verify(model)
    return model, result


# -- the checker catches a wrong rewrite ----------------------------------------------------------

def _relu_model():
    return helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_ort_run_disables_optimizations_and_matches_numpy():
    proto = _relu_model()
    feeds = random_feeds(proto)
    (y,) = ort_run(proto, feeds)
    np.testing.assert_array_equal(y, np.maximum(feeds["x"], 0))


def test_check_rewrite_flags_a_numerical_change(monkeypatch):
    """A 'pass' that turns Relu into Sigmoid must fail the numerical comparison."""
    import test_fuse_support as mod

    def wrong(model, name):
        for n in model.graph:
            n.op_type = "Sigmoid"
        return PassResult(True)

    monkeypatch.setattr(mod, "run_pass", lambda model, name: (
        PassResult(False) if name == "infer-shapes" or any(
            n.op_type == "Sigmoid" for n in model.graph) else wrong(model, name)))
    with pytest.raises(AssertionError):
        mod.check_rewrite(_relu_model(), "anything")
