"""Models older than IR version 4 list every initializer as a graph input too. Runtimes treat those
as constants (ORT cannot override them), so passes fold and fuse them, dce drops unused ones, and
export keeps the IR-3 rule that every initializer is also an input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import irlib
import passes
from passes.constants import get_const


def conv_bn_model(ir_version: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "scale": rng.random(4).astype(np.float32) + 0.5,
        "bias": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.random(4).astype(np.float32) + 0.5,
    }
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    as_inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inits.items()]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"])],
        "g", [x] + (as_inputs if ir_version < 4 else []), [y],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    opset = 7 if ir_version < 4 else 13
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir_version)


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_initializer_inputs_are_constants_only_before_ir4():
    old = irlib.load(conv_bn_model(3))
    w = next(v for v in old.graph.inputs if v.name == "w")
    assert w.is_graph_input() and get_const(w) is not None
    new = irlib.load(conv_bn_model(8))
    new.graph.add_input(new.graph.initializers[0])  # an IR-8 default value stays overridable
    assert get_const(new.graph.initializers[0]) is None


def test_old_model_fuses_and_stays_valid():
    proto = conv_bn_model(3)
    model = irlib.load(proto)
    passes.PassManager(passes.level_pipeline(2)).run(model)
    assert [n.op_type for n in model.graph] == ["Conv"]
    out = irlib.to_onnx(model)
    assert out.ir_version == 3
    onnx.checker.check_model(out, full_check=True)  # every initializer is listed as an input
    inputs = {vi.name for vi in out.graph.input}
    assert {t.name for t in out.graph.initializer} <= inputs
    assert not {"scale", "bias", "mean", "var"} & inputs  # dce dropped the folded-away ones
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(out, x), run(proto, x), rtol=1e-5, atol=1e-5)
