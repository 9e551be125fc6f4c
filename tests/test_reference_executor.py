"""The numpy reference executor against ONNX Runtime, with every intermediate in the planned arena
and without a plan; a corrupted plan gives wrong numbers."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import make_model
from onnx import TensorProto, helper

import irlib
import passes.transforms  # noqa: F401
from backends.reference import ExecutionError, ReferenceExecutor, UnsupportedOpError
from passes.memory import check_plan, plan_memory, plan_model

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT = sorted(f[:-5] for f in os.listdir(LIGHT_DIR) if f.endswith(".onnx")) if os.path.isdir(LIGHT_DIR) else []


def ort_run(proto_or_path, feeds):
    data = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def assert_close(got, expected, rtol=1e-4):
    """Elementwise, relative to the tensor's largest magnitude (float32 sums of many terms)."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


# -- tiny_cnn ---------------------------------------------------------------------------------

def test_tiny_cnn_plain_and_in_the_arena_match_onnxruntime(verified):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = ort_run("examples/tiny_cnn.onnx", {"x": x})
    model = verified(irlib.load("examples/tiny_cnn.onnx"))
    plain = ReferenceExecutor(model).run({"x": x})
    plan, summary = plan_model(model, shapes={"N": 2})
    assert check_plan(plan) == [] and summary["inplace_count"] > 0
    executor = ReferenceExecutor(model, plan)
    arena = executor.run({"x": x})
    assert executor.arena.nbytes == plan.arena_bytes
    for name, value in expected.items():
        assert_close(plain[name], value)
        assert_close(arena[name], value)


def test_a_plan_with_overlapping_live_tensors_gives_wrong_outputs():
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    model = irlib.load("examples/tiny_cnn.onnx")
    plan, _ = plan_model(model, shapes={"N": 1})
    good = ReferenceExecutor(model, plan).run({"x": x})
    # The residual input (stem.identity's buffer) is live across block1; put block1.b.conv on it.
    t = {t.name: t for t in plan.tensors}
    skip, victim = t["stem.identity"], t["block1.b.conv"]
    assert skip.first < victim.first <= skip.last
    victim.offset = skip.offset
    assert any("overlap" in p for p in check_plan(plan))
    bad = ReferenceExecutor(model, plan).run({"x": x})
    name = model.graph.outputs[0].name
    assert not np.allclose(bad[name], good[name], atol=1e-3)


def test_plan_for_another_order_and_unknown_ops_are_refused(verified):
    model = irlib.load("examples/tiny_cnn.onnx")
    plan, _ = plan_model(model, shapes={"N": 1})
    nodes = list(model.graph)
    model.graph.move_after(nodes[-1], nodes[-2])  # swap the last two (still a valid order? no)
    with pytest.raises(ExecutionError, match="another node order"):
        ReferenceExecutor(model, plan)
    proto = make_model([helper.make_node("Einsum", ["x"], ["y"], equation="i->i")],
                       [("x", TensorProto.FLOAT, [4])], [("y", TensorProto.FLOAT, [4])])
    with pytest.raises(UnsupportedOpError, match="no Einsum"):
        ReferenceExecutor(irlib.from_onnx(proto))


# -- single ops with their attribute variants ------------------------------------------------

def _case(op, inputs, attrs=None, init=None, opset=17):
    """(proto, feeds): one ``op`` node reading the graph inputs ``inputs`` {name: array} and
    the initializers ``init``."""
    init = init or {}
    names = list(inputs) + list(init)
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    proto = make_model([node], [(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs.items()],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init, opset=opset)
    return proto, inputs


R = np.random.default_rng(2)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


OP_CASES = {
    "conv-group-stride-dilation": _case(
        "Conv", {"x": f32(1, 4, 11, 9)}, dict(group=2, strides=[2, 1], dilations=[1, 2],
                                              pads=[1, 2, 0, 1]), {"w": f32(6, 2, 3, 3), "b": f32(6)}),
    "conv-depthwise-same": _case(
        "Conv", {"x": f32(2, 3, 7, 7)}, dict(group=3, auto_pad="SAME_UPPER", strides=[2, 2]),
        {"w": f32(3, 1, 3, 3)}),
    "conv-1d": _case("Conv", {"x": f32(1, 2, 10)}, dict(pads=[1, 1]), {"w": f32(4, 2, 3)}),
    "maxpool-ceil-pads": _case(
        "MaxPool", {"x": f32(1, 2, 9, 9)}, dict(kernel_shape=[3, 3], strides=[2, 2],
                                                 pads=[1, 1, 1, 1], ceil_mode=1)),
    "avgpool-exclude-pad": _case(
        "AveragePool", {"x": f32(1, 2, 8, 7)}, dict(kernel_shape=[3, 2], strides=[2, 2],
                                                     pads=[1, 0, 1, 1])),
    "avgpool-include-pad-ceil": _case(
        "AveragePool", {"x": f32(1, 2, 8, 8)}, dict(kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 1, 1, 1], count_include_pad=1,
                                                    ceil_mode=1)),
    "gap": _case("GlobalAveragePool", {"x": f32(2, 3, 5, 4)}),
    "gemm-trans": _case("Gemm", {"a": f32(5, 3)}, dict(transA=1, transB=1, alpha=0.5, beta=2.0),
                        {"b": f32(4, 5), "c": f32(4)}),
    "matmul-batched": _case("MatMul", {"a": f32(2, 3, 4)}, None, {"b": f32(4, 5)}),
    "lrn": _case("LRN", {"x": f32(1, 7, 3, 3)}, dict(size=5, alpha=0.01, beta=0.6, bias=1.5)),
    "softmax-13": _case("Softmax", {"x": f32(2, 3, 4)}, dict(axis=1)),
    "softmax-11-coerced": _case("Softmax", {"x": f32(2, 3, 4)}, dict(axis=1), opset=11),
    "batchnorm": _case("BatchNormalization", {"x": f32(2, 3, 4, 4)}, dict(epsilon=1e-3),
                       {"s": f32(3), "b": f32(3), "m": f32(3), "v": np.abs(f32(3)) + 0.5}),
    "clip-inputs": _case("Clip", {"x": f32(3, 4)}, None,
                         {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}),
    "clip-attrs": _case("Clip", {"x": f32(3, 4)}, dict(min=-0.2, max=0.1), opset=6),
    "sum-broadcast": _case("Sum", {"a": f32(3, 4), "b": f32(4)}, None, {"c": f32(3, 1)}),
    "transpose": _case("Transpose", {"x": f32(2, 3, 4)}, dict(perm=[2, 0, 1])),
    "concat-neg-axis": _case("Concat", {"a": f32(2, 3), "b": f32(2, 5)}, dict(axis=-1)),
    "flatten": _case("Flatten", {"x": f32(2, 3, 4)}, dict(axis=2)),
    "sigmoid": _case("Sigmoid", {"x": f32(3, 4)}),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_op_matches_onnxruntime(case):
    proto, feeds = OP_CASES[case]
    expected = ort_run(proto, feeds)["y"]
    model = irlib.from_onnx(proto)
    assert_close(ReferenceExecutor(model).run(feeds)["y"], expected, rtol=1e-5)


def test_views_squeeze_unsqueeze_reshape_in_the_arena():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Unsqueeze", ["a", "ax"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["r"]),
        helper.make_node("Identity", ["r"], ["i"]),
        helper.make_node("Mul", ["i", "i"], ["y"]),
    ]
    proto = make_model(nodes, [("x", TensorProto.FLOAT, [3, 4])], [("y", TensorProto.FLOAT, None)],
                       {"ax": np.array([0, 2], np.int64), "shape": np.array([0, 2, -1], np.int64)})
    x = f32(3, 4)
    expected = ort_run(proto, {"x": x})["y"]
    model = irlib.from_onnx(proto)
    passes.run_passes(model, "infer-shapes")
    plan = plan_memory(model)
    assert plan.alias_count == 4 and len({t.offset for t in plan.tensors}) == 1
    assert_close(ReferenceExecutor(model, plan).run({"x": x})["y"], expected, rtol=1e-6)


# -- ONNX's light_* models ------------------------------------------------------------------

def light_feeds(proto):
    """The inputs ONNX's backend test runner generates for the light models (it stores no
    test_data_set): ``arange(n).reshape(shape) / n`` for every input that is not an initializer."""
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for i in proto.graph.input:
        if i.name not in inits:
            shape = tuple(d.dim_value or 1 for d in i.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            feeds[i.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


@pytest.mark.skipif(not LIGHT, reason="this onnx build ships no backend/test/data/light models")
@pytest.mark.parametrize("name", LIGHT)
def test_light_model_plain_and_in_the_arena_match_onnxruntime(name):
    path = os.path.join(LIGHT_DIR, f"{name}.onnx")
    proto = onnx.load(path)
    feeds = light_feeds(proto)
    # The light models' weights are all 0.02: logits reach 1e10 and a softmax over them is
    # decided by float32 rounding. So the logits (softmax input) are compared too, as an extra
    # output, and the softmax output only where the logits are small enough to decide it.
    last = proto.graph.node[-1]
    logits = last.input[0] if last.op_type == "Softmax" else None
    if logits:
        proto.graph.output.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT, None))
    expected = ort_run(proto, feeds)
    model = irlib.from_onnx(proto)
    plain = ReferenceExecutor(model).run(feeds)
    plan, summary = plan_model(model, reorder=True)
    assert check_plan(plan) == []
    arena = ReferenceExecutor(model, plan).run(feeds)
    for out, value in expected.items():
        if out != logits and logits and np.abs(expected[logits]).max() > 1e5:
            continue
        assert_close(plain[out], value)
        assert_close(arena[out], value)
    assert summary["peak_bytes"] < summary["naive_bytes"]
