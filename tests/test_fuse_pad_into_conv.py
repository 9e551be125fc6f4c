"""fuse-pad-into-conv: a zero, constant-mode spatial Pad -> pads of the Conv/AveragePool/MaxPool."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# Padding is exact: the fused op reads the same values (fp32 rtol 1e-5, atol 1e-6).


def pad_then(consumer="Conv", *, pads=(0, 0, 1, 2, 0, 0, 2, 1), value=None, mode=None,
             opset=17, axes=None, attrs=None, relu=False, spatial=(6, 6), pads_input=False,
             second_user=False, indices_used=False):
    """x [2,3,*spatial] -> (Relu) -> Pad -> consumer -> y."""
    rng = np.random.default_rng(0)
    rank = 2 + len(spatial)
    inits, inputs, nodes = {}, [("x", F32, [2, 3, *spatial])], []
    src = "x"
    if relu:
        nodes.append(helper.make_node("Relu", ["x"], ["r"]))
        src = "r"
    pad_attrs = {} if mode is None else {"mode": mode}
    if opset < 11:
        pad_attrs["pads"] = list(pads)
        if value is not None:
            pad_attrs["value"] = float(value)
        nodes.append(helper.make_node("Pad", [src], ["p"], **pad_attrs))
    else:
        ins = [src, "pads"]
        if pads_input:
            inputs.append(("pads", TensorProto.INT64, [len(pads)]))
        else:
            inits["pads"] = np.array(pads, np.int64)
        if value is not None or axes is not None:
            ins.append("" if value is None else "value")
            if value is not None:
                inits["value"] = np.array(value, np.float32)
        if axes is not None:
            ins.append("axes")
            inits["axes"] = np.array(axes, np.int64)
        nodes.append(helper.make_node("Pad", ins, ["p"], **pad_attrs))
    attrs = dict(attrs or {})
    outs = ["y"]
    if consumer == "Conv":
        inits["w"] = rng.standard_normal([4, 3] + [3] * (rank - 2)).astype(np.float32)
        nodes.append(helper.make_node("Conv", ["p", "w"], ["y"], name="conv", **attrs))
    else:
        attrs.setdefault("kernel_shape", [3] * (rank - 2))
        if indices_used:
            outs = ["y", "idx"]
        nodes.append(helper.make_node(consumer, ["p"], outs, name="pool", **attrs))
    outputs = [("y", F32, None)]
    if indices_used:
        outputs.append(("idx", TensorProto.INT64, None))
    if second_user:
        nodes.append(helper.make_node("Neg", ["p"], ["z"]))
        outputs.append(("z", F32, None))
    return make_model(nodes, inputs, outputs, inits, opset=opset)


def fused(proto, **tol):
    model, result = check_rewrite(proto, "fuse-pad-into-conv", **tol)
    assert result.changed and "Pad" not in op_counts(model)
    return next(n for n in model.graph if n.op_type != "Relu")


@pytest.mark.parametrize("kw,pads", [
    (dict(), [1, 2, 2, 1]),
    (dict(attrs={"pads": [1, 1, 1, 1]}), [2, 3, 3, 2]),
    (dict(opset=9), [1, 2, 2, 1]),
    (dict(opset=9, value=0.0), [1, 2, 2, 1]),
    (dict(value=0.0), [1, 2, 2, 1]),
    (dict(opset=18, axes=[2, 3], pads=(1, 2, 2, 1)), [1, 2, 2, 1]),
    (dict(opset=18, axes=[-1], pads=(3, 0)), [0, 3, 0, 0]),
    (dict(spatial=(7,), pads=(0, 0, 2, 0, 0, 1)), [2, 1]),
    (dict(spatial=(4, 4, 4), pads=(0, 0, 1, 0, 1, 0, 0, 1, 0, 1)), [1, 0, 1, 1, 0, 1]),
    (dict(attrs={"auto_pad": "VALID"}), [1, 2, 2, 1]),
    (dict(attrs={"strides": [2, 2], "dilations": [2, 1]}), [1, 2, 2, 1]),
])
def test_pad_into_conv(kw, pads):
    node = fused(pad_then("Conv", **kw))
    assert node.op_type == "Conv" and list(node.attr("pads")) == pads
    assert "auto_pad" not in node.attributes


def test_text_in_text_out():
    proto = pad_then("Conv", pads=(0, 0, 1, 1, 0, 0, 1, 1), attrs={"kernel_shape": [3, 3]})
    model, _ = check_rewrite(proto, "fuse-pad-into-conv")
    run_pass(model, "dce")
    assert irlib.format_graph(model.graph) == """\
graph main(%x: f32[2,3,6,6]) {
  %w: f32[4,3,3,3] = const
  %y: f32[2,4,6,6] = Conv(%x, %w) {kernel_shape=[3,3], pads=[1,1,1,1]}
  return %y
}
"""


@pytest.mark.parametrize("attrs", [
    {"count_include_pad": 1},
    {"count_include_pad": 1, "pads": [1, 0, 0, 1]},
    {},                                  # no own padding: switched to count_include_pad=1
    {"strides": [2, 2]},
])
def test_pad_into_average_pool(attrs):
    node = fused(pad_then("AveragePool", attrs=attrs))
    assert node.attr("count_include_pad") == 1


@pytest.mark.parametrize("attrs", [
    {"pads": [1, 1, 1, 1]},              # own pads not counted, the Pad's zeros are
    {"ceil_mode": 1},
    {"count_include_pad": 1, "pads": [2, 0, 0, 0]},  # 2 + 1 reaches the kernel (3)
])
def test_average_pool_refusals(attrs):
    model = irlib.from_onnx(pad_then("AveragePool", attrs=attrs))
    result = run_pass(model, "fuse-pad-into-conv")
    assert not result.changed and result.stats["refused:pad-into-average-pool"] == 1


def test_average_pool_refusal_is_needed():
    """Forcing the fusion with count_include_pad=0 and own pads changes the numbers: the guard
    above protects a real difference (ORT check of the hand-made wrong graph)."""
    from test_fuse_support import ort_run, random_feeds

    proto = pad_then("AveragePool", pads=(0, 0, 1, 1, 0, 0, 1, 1), attrs={"pads": [1, 1, 1, 1]})
    wrong = pad_then("AveragePool", pads=(0,) * 8, attrs={"pads": [2, 2, 2, 2]})
    feeds = random_feeds(proto)
    assert not np.allclose(ort_run(proto, feeds)[0], ort_run(wrong, feeds)[0])


@pytest.mark.parametrize("kw", [
    dict(relu=True),
    dict(relu=True, attrs={"pads": [1, 0, 0, 1]}, pads=(0, 0, 1, 0, 0, 0, 0, 1)),
    dict(value=-math.inf),
    dict(value=-math.inf, opset=9),
    dict(relu=True, attrs={"strides": [2, 2]}),
])
def test_pad_into_max_pool(kw):
    node = fused(pad_then("MaxPool", **kw))
    assert node.op_type == "MaxPool"


@pytest.mark.parametrize("kw", [
    dict(),                                          # zero pad, input may be negative
    dict(relu=True, pads=(0, 0, 3, 0, 0, 0, 0, 0)),  # a window could be all padding
    dict(relu=True, attrs={"ceil_mode": 1}),
    dict(relu=True, attrs={"dilations": [2, 2]}),
    dict(relu=True, indices_used=True),
])
def test_max_pool_refusals(kw):
    model = irlib.from_onnx(pad_then("MaxPool", **kw))
    result = run_pass(model, "fuse-pad-into-conv")
    assert not result.changed and result.stats["refused:pad-into-max-pool"] == 1


def test_max_pool_zero_pad_on_signed_input_would_be_wrong():
    """Why the non-negativity guard exists: MaxPool's own padding never wins, a zero Pad does."""
    from test_fuse_support import ort_run, random_feeds

    proto = pad_then("MaxPool")
    wrong = pad_then("MaxPool", pads=(0,) * 8, attrs={"pads": [1, 2, 2, 1]})
    feeds = random_feeds(proto)
    assert not np.allclose(ort_run(proto, feeds)[0], ort_run(wrong, feeds)[0])


@pytest.mark.parametrize("kw", [
    dict(mode="reflect"),
    dict(mode="edge"),
    dict(value=1.0),
    dict(pads=(0, 1, 1, 1, 0, 0, 1, 1)),     # pads the channel axis
    dict(pads=(1, 0, 1, 1, 0, 0, 1, 1)),     # pads the batch axis
    dict(pads=(0, 0, -1, 1, 0, 0, 1, 1)),    # crops
    dict(pads_input=True),
    dict(attrs={"auto_pad": "SAME_UPPER"}),
    dict(second_user=True),
    dict(opset=18, axes=[1], pads=(1, 1)),   # the channel axis through axes
])
def test_conv_refusals(kw):
    model = irlib.from_onnx(pad_then("Conv", **kw))
    result = run_pass(model, "fuse-pad-into-conv")
    assert not result.changed and op_counts(model)["Pad"] == 1
