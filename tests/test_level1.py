"""-O1 end to end: the cleanup pipeline on the bundled example, on ONNX's own "light" model zoo,
and on a PyTorch-style graph, with outputs checked against the original under ONNX Runtime.

The light models (``onnx/backend/test/data/light/light_*.onnx``, opset 9, IR version 3) ship
without input data (ONNX's runner feeds them random inputs), so each is run on seeded random
inputs, before and after -O1, under ORT with graph optimizations off.
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import LEVELS, PassManager, level_pipeline, level_pipeline_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "tiny_cnn.onnx")
LIGHT = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__),
                                      "backend", "test", "data", "light", "light_*.onnx")))


def ort_run(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3  # the light models carry unused initializers ORT warns about
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def random_feeds(proto: onnx.ModelProto, seed: int = 0) -> dict:
    inits = {t.name for t in proto.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tt.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(
            helper.tensor_dtype_to_np_dtype(tt.elem_type))
    return feeds


def run_o1(proto: onnx.ModelProto):
    model = irlib.from_onnx(proto)
    report = PassManager(level_pipeline(1)).run(model)  # verifies the IR after every pass
    irlib.verify(model)
    out = irlib.to_onnx(model)
    onnx.checker.check_model(out)
    return model, out, report


def assert_outputs_match(before, after, feeds, rtol=0.0, atol=0.0):
    want, got = ort_run(before, feeds), ort_run(after, feeds)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_level1_pipeline_text():
    assert level_pipeline_text(1) == \
        "infer-shapes,fixpoint(fold-constants,eliminate-identity,cse,dce),infer-shapes"
    for level in (2, 3):  # the higher levels start from the same cleanup
        assert LEVELS[level].startswith(LEVELS[1])


def test_tiny_cnn():
    proto = onnx.load(EXAMPLE)
    model, out, report = run_o1(proto)
    ops = [n.op_type for n in model.graph]
    assert "Identity" not in ops and "Dropout" not in ops and "Transpose" not in ops
    assert len(ops) == len(proto.graph.node) - 4
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    # Only bypasses: the same kernels run on the same data, so the logits are bit-identical.
    assert_outputs_match(proto, out, {"x": x})
    second = PassManager(level_pipeline(1)).run(model)
    assert not any(r.changed and r.name != "infer-shapes" for r in second.passes)


@pytest.mark.parametrize("path", LIGHT, ids=lambda p: os.path.basename(p)[6:-5])
def test_light_model_zoo(path):
    """As shipped: weights are ConstantOfShape of initializers that are also graph inputs
    (overridable, so not constants); -O1 removes Dropout and Reshapes that change nothing."""
    proto = onnx.load(path)
    model, out, _ = run_o1(proto)
    assert [v.name for v in model.graph.outputs] == [o.name for o in proto.graph.output]
    assert "Dropout" not in {n.op_type for n in model.graph}
    assert_outputs_match(proto, out, random_feeds(proto))


# The branchy ones (the plain chains alexnet/vgg/zfnet are slow to run and add nothing here).
_BRANCHY = [p for p in LIGHT if any(k in p for k in ("densenet", "inception_v1", "shufflenet", "squeezenet"))]


@pytest.mark.parametrize("path", _BRANCHY, ids=lambda p: os.path.basename(p)[6:-5])
def test_light_model_zoo_with_constant_weights(path):
    """The same models with the weight initializers made true constants (removed from the graph
    inputs, IR version 4): now ConstantOfShape folds for every weight within the 1 MiB budget and stays for
    the larger ones, and cse shares the equal weights ConstantOfShape makes."""
    proto = onnx.load(path)
    inits = {t.name for t in proto.graph.initializer}
    keep = [vi for vi in proto.graph.input if vi.name not in inits]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    proto.ir_version = 4  # IR 3 requires every initializer to be a graph input
    model, out, report = run_o1(proto)
    folded = sum(r.stats.get("folded", 0) for r in report.passes if r.name == "fold-constants")
    assert folded > 0
    big = [n for n in model.graph if n.op_type == "ConstantOfShape"]
    assert all(n.output.type.nbytes > (1 << 20) for n in big)
    for v in model.graph.initializers:
        assert v.const_value.nbytes <= (1 << 20) or any(
            t.name == v.name for t in proto.graph.initializer)
    # Folded weights hold the values ConstantOfShape would make: same kernels, same data.
    assert_outputs_match(proto, out, random_feeds(proto))


def test_pytorch_style_graph_text_in_text_out():
    """The shapes of a torch.onnx export of ``x.view(x.size(0), -1)`` and friends: a static
    Shape chain, an Identity, a Cast to the same type, a duplicate and a constant subexpression."""
    proto = make_model(
        [
            helper.make_node("Identity", ["x"], ["xi"]),
            helper.make_node("Shape", ["xi"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
            helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
            helper.make_node("Reshape", ["xi", "target"], ["flat"]),
            helper.make_node("Cast", ["flat"], ["flat32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["scale", "scale"], ["scale2"]),
            helper.make_node("Mul", ["flat32", "scale2"], ["a"]),
            helper.make_node("Mul", ["flat32", "scale2"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ],
        inputs=[("x", TensorProto.FLOAT, [2, 3, 4])],
        outputs=[("y", TensorProto.FLOAT, [2, 12])],
        initializers={"zero": np.array(0, np.int64), "axes0": np.array([0], np.int64),
                      "minus_one": np.array([-1], np.int64),
                      "scale": np.array(1.5, np.float32)},
    )
    model, out, _ = run_o1(proto)
    assert irlib.format_graph(model.graph) == (
        "graph main(%x: f32[2,3,4]) {\n"
        "  %target: i64[2] = const [2, -1]\n"
        "  %scale2: f32[] = const 2.25\n"
        "  %flat: f32[2,12] = Reshape(%x, %target)\n"
        "  %a: f32[2,12] = Mul(%flat, %scale2)\n"
        "  %y: f32[2,12] = Add(%a, %a)\n"
        "  return %y\n"
        "}\n"
    )
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    assert_outputs_match(proto, out, {"x": x})


def test_level1_is_fast_on_the_largest_light_model():
    """densenet121 (1746 nodes): -O1 takes well under the time ORT needs to load it."""
    proto = onnx.load(next(p for p in LIGHT if "densenet" in p))
    t0 = time.perf_counter()
    run_o1(proto)
    assert time.perf_counter() - t0 < 20.0
