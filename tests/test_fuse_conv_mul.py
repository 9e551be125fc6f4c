"""fuse-conv-mul: Conv followed by Mul by a constant per-channel scale -> scaled weights/bias."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# fp32 tolerance: (W*s) rounds once per weight, then the Conv sums; the products summed have
# |W||x| ~ 10, so outputs near zero need atol 1e-5 (rtol 1e-5).
TOL = dict(rtol=1e-5, atol=1e-5)


def conv_mul(c_shape, *, bias=True, group=1, cout=4, swap=False, seed=0, second_user=False,
             weight_input=False):
    rng = np.random.default_rng(seed)
    cin = 4
    w_shape = [cout, cin // group, 3, 3]
    inits = {"s": rng.uniform(-2, 2, c_shape).astype(np.float32)}
    inputs = [("x", F32, [2, cin, 5, 5])]
    if weight_input:
        inputs.append(("w", F32, w_shape))
    else:
        inits["w"] = rng.standard_normal(w_shape).astype(np.float32)
    ins = ["x", "w"]
    if bias:
        inits["b"] = rng.standard_normal(cout).astype(np.float32)
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["conv_out"], group=group, pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s", "conv_out"] if swap else ["conv_out", "s"], ["y"])]
    outputs = [("y", F32, None)]
    if second_user:
        nodes.append(helper.make_node("Relu", ["conv_out"], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, inputs, outputs, inits)


@pytest.mark.parametrize("kw", [
    dict(c_shape=(4, 1, 1)), dict(c_shape=(1, 4, 1, 1)), dict(c_shape=()), dict(c_shape=(1, 1, 1)),
    dict(c_shape=(4, 1, 1), bias=False), dict(c_shape=(4, 1, 1), swap=True),
    dict(c_shape=(4, 1, 1), group=2), dict(c_shape=(4, 1, 1), group=4),
])
def test_scales_fold(kw):
    model, result = check_rewrite(conv_mul(**kw), "fuse-conv-mul", **TOL)
    assert result.stats["applied:conv-mul-scale"] == 1
    assert op_counts(model) == {"Conv": 1}
    conv = model.graph.nodes[0]
    assert len([v for v in conv.inputs if v is not None]) == (3 if kw.get("bias", True) else 2)


def test_text_in_text_out():
    proto = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1]),
         helper.make_node("Mul", ["c", "s"], ["y"])],
        [("x", F32, [1, 1, 3])], [("y", F32, [1, 2, 3])],
        {"w": np.array([1.0, 2.0], np.float32).reshape(2, 1, 1),
         "b": np.array([1.0, -1.0], np.float32),
         "s": np.array([3.0, 0.5], np.float32).reshape(1, 2, 1)})
    model, _ = check_rewrite(proto, "fuse-conv-mul", **TOL)
    run_pass(model, "dce")
    w, b = model.graph.nodes[0].inputs[1:]
    assert irlib.format_graph(model.graph) == f"""\
graph main(%x: f32[1,1,3]) {{
  %{w.name}: f32[2,1,1] = const [3.0, 1.0]
  %{b.name}: f32[2] = const [3.0, -0.5]
  %y: f32[1,2,3] = Conv(%x, %{w.name}, %{b.name}) {{kernel_shape=[1]}}
  return %y
}}
"""


@pytest.mark.parametrize("c_shape", [(4,), (1, 4, 5, 1), (2, 4, 1, 1), (1, 1, 4, 1, 1)])
def test_wrong_broadcast_shapes_are_refused(c_shape):
    model = irlib.from_onnx(conv_mul((4, 1, 1)))
    s = next(v for v in model.graph.initializers if v.name == "s")
    s.const_value = irlib.Tensor(np.full(c_shape, 2.0, np.float32), name="s")
    s.type = irlib.TensorType(irlib.DType.FLOAT, c_shape)
    result = run_pass(model, "fuse-conv-mul")
    assert not result.changed and result.stats["refused:conv-mul-scale"] == 1


def test_conv_with_second_user_is_not_fused():
    model = irlib.from_onnx(conv_mul((4, 1, 1), second_user=True))
    assert not run_pass(model, "fuse-conv-mul").changed


def test_runtime_weight_is_not_folded():
    model = irlib.from_onnx(conv_mul((4, 1, 1), weight_input=True))
    result = run_pass(model, "fuse-conv-mul")
    assert not result.changed and result.stats["refused:conv-mul-scale"] == 1
