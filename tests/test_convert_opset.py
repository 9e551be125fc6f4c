"""convert-opset{target=N}: raise the ai.onnx opset with onnx.version_converter, in place.

The numerical checks compare ORT (optimizations off) on the original and the converted model:
the adapters used here (ReduceMean axes -> input, Softmax, Gemm) keep the computation, so the
outputs agree to rtol 1e-6 / atol 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes import PassError, PassFailure, level_of_pass, make_pass, run_passes
from test_fuse_support import op_counts, ort_run, random_feeds

F32 = TensorProto.FLOAT


def ln_decomposition(opset=13):
    """LayerNorm as a pre-17 exporter writes it (ReduceMean axes as an attribute)."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
        helper.make_node("Sub", ["x", "mean"], ["d"]),
        helper.make_node("Mul", ["d", "d"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["std"]),
        helper.make_node("Div", ["d", "std"], ["y"]),
    ]
    return make_model(nodes, [("x", F32, [2, 3, 8])], [("y", F32, [2, 3, 8])],
                      {"eps": np.array(1e-5, np.float32)}, opset=opset)


def gelu_decomposition(opset=13):
    nodes = [
        helper.make_node("Div", ["x", "s2"], ["a"]),
        helper.make_node("Erf", ["a"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["u"]),
        helper.make_node("Mul", ["x", "u"], ["xu"]),
        helper.make_node("Mul", ["xu", "half"], ["y"]),
    ]
    inits = {"s2": np.array(math.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
             "half": np.array(0.5, np.float32)}
    return make_model(nodes, [("x", F32, [2, 5])], [("y", F32, [2, 5])], inits, opset=opset)


def convert(proto, target):
    model = irlib.from_onnx(proto)
    result = make_pass("convert-opset", {"target": str(target)}).run(model, None)
    return model, result


def assert_same_outputs(before, model):
    after = irlib.to_onnx(model)
    onnx.checker.check_model(after, full_check=True)
    feeds = random_feeds(before)
    for e, g in zip(ort_run(before, feeds), ort_run(after, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_raises_opset_in_place():
    proto = ln_decomposition(13)
    model, result = convert(proto, 18)
    assert result.changed and result.stats == {"from": 13, "to": 18}
    assert model.opset() == 18
    irlib.verify(model)
    # ReduceMean-18 takes its axes as an input
    means = [n for n in model.graph if n.op_type == "ReduceMean"]
    assert all(len(n.inputs) == 2 and "axes" not in n.attributes for n in means)
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert_same_outputs(proto, model)


def test_then_the_fusion_fires():
    """The point of the pass: reach the opset where the standard op exists, then fuse."""
    proto = ln_decomposition(13)
    model = irlib.from_onnx(proto)
    run_passes(model, "convert-opset{target=17},infer-shapes,fuse-layer-norm,dce")
    assert op_counts(model) == {"LayerNormalization": 1}
    out = irlib.to_onnx(model)
    feeds = random_feeds(proto)
    np.testing.assert_allclose(ort_run(out, feeds)[0], ort_run(proto, feeds)[0], rtol=1e-5,
                               atol=1e-5)


def test_gelu_after_conversion_to_20():
    model = irlib.from_onnx(gelu_decomposition(13))
    run_passes(model, "convert-opset{target=20},fuse-gelu,dce")
    assert op_counts(model) == {"Gelu": 1} and model.opset() == 20


def test_same_opset_is_no_change():
    model, result = convert(gelu_decomposition(17), 17)
    assert not result.changed and model.opset() == 17


@pytest.mark.parametrize("target,message", [
    (11, "only raises the opset: the model is at 13, the target is 11"),
    (99, "newer than this onnx"),
    (0, "needs a target opset"),
])
def test_refused_targets(target, message):
    model = irlib.from_onnx(gelu_decomposition(13))
    before = irlib.format_model(model)
    with pytest.raises(PassError, match=message) as err:
        make_pass("convert-opset", {"target": str(target)}).run(model, None)
    assert "\n" not in str(err.value)
    assert irlib.format_model(model) == before


def test_converter_failure_is_one_line_and_leaves_the_model():
    """Gemm-6 with broadcast=1 and a C that does not broadcast: the 6->7 adapter refuses."""
    proto = make_model(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], broadcast=1)],
        [("a", F32, [2, 3]), ("b", F32, [3, 4]), ("c", F32, [2, 3])], [("y", F32, None)],
        opset=6)
    model = irlib.from_onnx(proto)
    before = irlib.format_model(model)
    with pytest.raises(PassFailure) as err:
        run_passes(model, "convert-opset{target=13}")
    msg = str(err.value)
    assert "cannot convert opset 6 to 13" in msg and "\n" not in msg
    assert irlib.format_model(model) == before


def test_not_in_any_level():
    assert level_of_pass("convert-opset") is None


def test_option_is_typed():
    with pytest.raises(PassError, match="not a valid int"):
        make_pass("convert-opset", {"target": "twenty"})
