"""fuse-conv-add: Conv + Add of a constant per-channel bias -> the Conv's bias."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes.transforms.fuse_conv_add import per_channel
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# Adding c to b before the Conv's sum rather than after: exact up to one rounding (fp32 default
# tolerance rtol 1e-5, atol 1e-6 holds).


def conv_add(c_shape, *, bias=True, spatial=(5, 5), cout=4, swap=False, weight_input=False,
             seed=0, c_dtype=np.float32, second_user=False):
    rng = np.random.default_rng(seed)
    rank = len(spatial)
    inits = {"c": rng.standard_normal(c_shape).astype(c_dtype)}
    inputs = [("x", F32, [2, 3, *spatial])]
    w_shape = [cout, 3] + [3] * rank
    if weight_input:
        inputs.append(("w", F32, w_shape))
    else:
        inits["w"] = rng.standard_normal(w_shape).astype(np.float32)
    ins = ["x", "w"]
    if bias:
        inits["b"] = rng.standard_normal(cout).astype(np.float32)
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["conv_out"], name="conv", pads=[1] * (2 * rank)),
             helper.make_node("Add", ["c", "conv_out"] if swap else ["conv_out", "c"], ["y"])]
    outputs = [("y", F32, None)]
    if second_user:
        nodes.append(helper.make_node("Relu", ["conv_out"], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, inputs, outputs, inits)


@pytest.mark.parametrize("c_shape", [(4, 1, 1), (1, 4, 1, 1), (1, 1, 1), (), (1,), (1, 1, 1, 1)])
def test_per_channel_shapes_fold(c_shape):
    model, result = check_rewrite(conv_add(c_shape), "fuse-conv-add")
    assert result.stats["applied:conv-add-bias"] == 1
    assert op_counts(model) == {"Conv": 1}
    assert model.graph.nodes[0].output.name == "y"


@pytest.mark.parametrize("kw", [
    dict(bias=False), dict(swap=True), dict(spatial=(7,), c_shape=(4, 1)),
    dict(spatial=(3, 3, 3), c_shape=(1, 4, 1, 1, 1)), dict(weight_input=True),
])
def test_variants(kw):
    kw.setdefault("c_shape", (4, 1, 1))
    model, _ = check_rewrite(conv_add(**kw), "fuse-conv-add")
    assert op_counts(model) == {"Conv": 1}


def test_text_in_text_out():
    proto = make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("Add", ["c", "bias"], ["y"])],
        [("x", F32, [1, 1, 2, 2])], [("y", F32, [1, 2, 2, 2])],
        {"w": np.ones((2, 1, 1, 1), np.float32),
         "bias": np.array([1.5, -2.0], np.float32).reshape(2, 1, 1)})
    model, _ = check_rewrite(proto, "fuse-conv-add")
    run_pass(model, "dce")
    b = model.graph.nodes[0].inputs[2]
    assert irlib.format_graph(model.graph) == f"""\
graph main(%x: f32[1,1,2,2]) {{
  %w: f32[2,1,1,1] = const [1.0, 1.0]
  %{b.name}: f32[2] = const [1.5, -2.0]
  %y: f32[1,2,2,2] = Conv(%x, %w, %{b.name}) {{kernel_shape=[1,1]}}
  return %y
}}
"""


@pytest.mark.parametrize("c_shape", [
    (4,),            # broadcasts along the last spatial axis, not the channels
    (4, 5, 1),       # varies along a spatial axis
    (2, 4, 1, 1),    # varies along the batch axis
    (3, 1, 1),       # wrong channel count (would not even broadcast)
    (1, 1, 4, 1, 1), # rank 5 would grow the output's rank
])
def test_wrong_broadcast_shapes_are_refused(c_shape):
    model = irlib.from_onnx(conv_add((4, 1, 1)))
    c = next(v for v in model.graph.initializers if v.name == "c")
    c.const_value = irlib.Tensor(np.ones(c_shape, np.float32), name="c")
    c.type = irlib.TensorType(irlib.DType.FLOAT, c_shape)
    result = run_pass(model, "fuse-conv-add")
    assert not result.changed and result.stats["refused:conv-add-bias"] == 1


def test_conv_with_second_user_is_not_fused():
    model = irlib.from_onnx(conv_add((4, 1, 1), second_user=True))
    result = run_pass(model, "fuse-conv-add")
    assert not result.changed and op_counts(model)["Add"] == 1


def test_runtime_addend_is_not_fused():
    proto = conv_add((4, 1, 1))
    c = next(t for t in proto.graph.initializer if t.name == "c")
    proto.graph.initializer.remove(c)
    proto.graph.input.append(helper.make_tensor_value_info("c", F32, [4, 1, 1]))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-conv-add").changed


def test_per_channel_helper():
    np.testing.assert_array_equal(per_channel(np.arange(3.0).reshape(3, 1, 1), 4, 3), [0, 1, 2])
    np.testing.assert_array_equal(per_channel(np.array(2.0), 4, 3), [2, 2, 2])
    assert isinstance(per_channel(np.arange(3.0), 4, 3), str)
    assert isinstance(per_channel(np.ones((1, 3, 1, 1, 1)), 4, 3), str)
