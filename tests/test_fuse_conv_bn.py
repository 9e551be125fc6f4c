"""fuse-conv-bn: Conv + inference BatchNormalization -> Conv with folded weights and bias."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import irlib
from helpers import make_model
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT

# Tolerance (fp32): folding rounds W * s once where ORT rounds Conv's sum and BN's affine map
# separately. The difference is a few ulps of the products summed by the Conv (|W||x| ~ 10 here),
# so an output that is small after cancellation needs an absolute tolerance: rtol 1e-5, atol 1e-5.
TOL = dict(rtol=1e-5, atol=1e-5)


def conv_bn_model(*, spatial=(6, 6), cin=4, cout=6, group=1, kernel=3, pads=None, bias=True,
                  eps=None, dtype=np.float32, seed=0, strides=None, dilations=None,
                  bn_inputs=(), extra_outputs=(), training_mode=None, opset=17):
    """x -> Conv -> BatchNormalization -> y; ``bn_inputs`` makes those BN params graph inputs."""
    rng = np.random.default_rng(seed)
    rank = len(spatial)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = rng.standard_normal((cout, cin // group) + (kernel,) * rank).astype(dtype)
    inits = {"w": w}
    conv_inputs = ["x", "w"]
    if bias:
        inits["b"] = rng.standard_normal(cout).astype(dtype)
        conv_inputs.append("b")
    params = {
        "scale": rng.uniform(0.5, 2.0, cout), "beta": rng.standard_normal(cout),
        "mean": rng.standard_normal(cout), "var": rng.uniform(0.1, 2.0, cout),
    }
    inputs = [("x", elem, [2, cin, *spatial])]
    for k, v in params.items():
        if k in bn_inputs:
            inputs.append((k, elem, [cout]))
        else:
            inits[k] = v.astype(dtype)
    conv_attrs = {"kernel_shape": [kernel] * rank, "group": group}
    if pads is not None:
        conv_attrs["pads"] = list(pads)
    if strides is not None:
        conv_attrs["strides"] = list(strides)
    if dilations is not None:
        conv_attrs["dilations"] = list(dilations)
    bn_attrs = {} if eps is None else {"epsilon": eps}
    if training_mode is not None:
        bn_attrs["training_mode"] = training_mode
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c"], name="conv", **conv_attrs),
        helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"],
                         name="bn", **bn_attrs),
    ]
    nodes += [helper.make_node("Relu", ["c"], ["z"])] if "conv-second-user" in extra_outputs else []
    outputs = [("y", elem, None)] + ([("z", elem, None)] if "conv-second-user" in extra_outputs else [])
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def test_folds_into_one_conv():
    model, result = check_rewrite(conv_bn_model(pads=[1, 1, 1, 1]), "fuse-conv-bn", **TOL)
    assert result.stats["applied:conv-bn"] == 1
    assert result.stats["inserted"] == 1 and result.stats["removed"] == 2
    assert op_counts(model) == {"Conv": 1}
    conv = model.graph.nodes[0]
    assert conv.output.is_graph_output() and conv.output.name == "y"
    assert conv.meta["irc.rule"] == "conv-bn" and conv.meta["irc.replaced"] == ["conv", "bn"]


def test_text_in_text_out():
    """A 1-D, 1x1 Conv with two output channels; BN with s = scale/sqrt(var) = [2, 3]:
    W' = W * s = [2, 6], b' = (b - mean) * s + beta = [0*2 + 0.5, 2*3 - 1] = [0.5, 5]."""
    inits = {"w": np.array([[[1.0]], [[2.0]]], np.float32), "b": np.array([1.0, 2.0], np.float32),
             "scale": np.array([4.0, 3.0], np.float32), "beta": np.array([0.5, -1.0], np.float32),
             "mean": np.array([1.0, 0.0], np.float32), "var": np.array([4.0, 1.0], np.float32)}
    proto = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1]),
         helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"],
                          epsilon=0.0)],
        [("x", F32, [1, 1, 3])], [("y", F32, [1, 2, 3])], inits)
    model, _ = check_rewrite(proto, "fuse-conv-bn", **TOL)
    run_pass(model, "dce")
    w, b = model.graph.nodes[0].inputs[1:]
    assert irlib.format_graph(model.graph) == f"""\
graph main(%x: f32[1,1,3]) {{
  %{w.name}: f32[2,1,1] = const [2.0, 6.0]
  %{b.name}: f32[2] = const [0.5, 5.0]
  %y: f32[1,2,3] = Conv(%x, %{w.name}, %{b.name}) {{kernel_shape=[1]}}
  return %y
}}
"""


def test_folded_values_by_hand():
    """1x1 Conv, one channel: W=2, b=1; BN scale=3, beta=0.5, mean=1, var=3, eps=1 -> s=1.5."""
    inits = {"w": np.array([[[[2.0]]]], np.float32), "b": np.array([1.0], np.float32),
             "scale": np.array([3.0], np.float32), "beta": np.array([0.5], np.float32),
             "mean": np.array([1.0], np.float32), "var": np.array([3.0], np.float32)}
    proto = make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
         helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"],
                          epsilon=1.0)],
        [("x", F32, [1, 1, 2, 2])], [("y", F32, [1, 1, 2, 2])], inits)
    model, _ = check_rewrite(proto, "fuse-conv-bn", **TOL)
    conv = model.graph.nodes[0]
    np.testing.assert_allclose(conv.inputs[1].const_value.numpy().ravel(), [3.0])
    np.testing.assert_allclose(conv.inputs[2].const_value.numpy(), [0.5])  # (1-1)*1.5+0.5


@pytest.mark.parametrize("kw", [
    dict(bias=False),
    dict(group=2, cin=4, cout=6),
    dict(group=4, cin=4, cout=4),  # depthwise
    dict(spatial=(9,), pads=[2, 1]),
    dict(spatial=(3, 4, 5), kernel=2, pads=[1, 0, 1, 0, 1, 0]),
    dict(eps=1e-3, strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2]),
])
def test_numerically_exact_variants(kw):
    model, result = check_rewrite(conv_bn_model(**kw), "fuse-conv-bn", **TOL)
    assert result.stats["applied:conv-bn"] == 1 and op_counts(model) == {"Conv": 1}


def test_epsilon_defaults_to_schema_value():
    """No epsilon attribute: the schema default 1e-5 is used (a tiny variance makes it matter)."""
    proto = conv_bn_model(bias=False, seed=3)
    var = next(t for t in proto.graph.initializer if t.name == "var")
    var.CopyFrom(numpy_helper.from_array(np.full(6, 1e-5, np.float32), "var"))
    check_rewrite(proto, "fuse-conv-bn", **TOL)


def test_float16_keeps_dtype():
    # fp16: the folded weights are rounded once to fp16 where ORT rounds Conv and BN outputs
    # separately, so results agree to fp16 precision (rtol 1e-2, atol 1e-2 on values ~10).
    model, _ = check_rewrite(conv_bn_model(dtype=np.float16, cin=2, cout=2), "fuse-conv-bn",
                             rtol=1e-2, atol=1e-2)
    conv = model.graph.nodes[0]
    assert conv.inputs[1].dtype == irlib.DType.FLOAT16 and conv.inputs[2].dtype == irlib.DType.FLOAT16


def test_conv_with_second_user_is_not_fused():
    model = irlib.from_onnx(conv_bn_model(extra_outputs=("conv-second-user",)))
    result = run_pass(model, "fuse-conv-bn")
    assert not result.changed
    assert result.stats["refused:conv-bn"] == 1
    assert op_counts(model)["BatchNormalization"] == 1


def test_conv_output_that_is_a_graph_output_is_not_fused():
    proto = conv_bn_model()
    proto.graph.output.append(helper.make_tensor_value_info("c", F32, None))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-conv-bn").changed


@pytest.mark.parametrize("param", ["scale", "mean", "var", "beta"])
def test_non_constant_bn_params_are_not_folded(param):
    model = irlib.from_onnx(conv_bn_model(bn_inputs=(param,)))
    result = run_pass(model, "fuse-conv-bn")
    assert not result.changed and op_counts(model)["BatchNormalization"] == 1


def test_initializer_that_is_also_an_input_is_not_constant():
    """An initializer listed as a graph input is a default the caller may override."""
    proto = conv_bn_model()
    proto.graph.input.append(helper.make_tensor_value_info("mean", F32, [6]))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-conv-bn").changed


def test_non_constant_weight_is_not_folded():
    proto = conv_bn_model(bias=False)
    w = next(t for t in proto.graph.initializer if t.name == "w")
    proto.graph.initializer.remove(w)
    proto.graph.input.append(helper.make_tensor_value_info("w", F32, list(w.dims)))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fuse-conv-bn").changed


def test_training_mode_is_refused():
    model = irlib.from_onnx(conv_bn_model(training_mode=1, opset=15))
    result = run_pass(model, "fuse-conv-bn")
    assert not result.changed
    assert result.stats["refused:conv-bn"] == 1


def test_opset_9_model_folds():
    check_rewrite(conv_bn_model(opset=9), "fuse-conv-bn", **TOL)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rank=st.integers(1, 3),
    group=st.sampled_from([1, 2, 3]),
    per_group_in=st.integers(1, 2),
    per_group_out=st.integers(1, 2),
    kernel=st.integers(1, 3),
    pad=st.integers(0, 2),
    bias=st.booleans(),
    eps=st.sampled_from([None, 1e-3, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_property_random_convs(rank, group, per_group_in, per_group_out, kernel, pad, bias,
                               eps, seed):
    """Any Conv (rank, groups, pads, bias) + BN folds to one Conv computing the same values."""
    spatial = (4,) * rank
    proto = conv_bn_model(spatial=spatial, cin=group * per_group_in, cout=group * per_group_out,
                          group=group, kernel=kernel, pads=[pad] * (2 * rank), bias=bias, eps=eps,
                          seed=seed)
    model, result = check_rewrite(proto, "fuse-conv-bn", **TOL)
    assert op_counts(model) == {"Conv": 1}
    onnx.checker.check_model(irlib.to_onnx(model), full_check=True)
