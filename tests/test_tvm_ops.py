"""Every TVM converter against ONNX Runtime, on small seeded random inputs.

Each case is a one- or few-node ONNX model (built with ``helpers.make_model``, IR version 10),
imported into irc's IR without any pass (so the converter sees the op as written), compiled by
the TVM backend and run by the Relax VM; the reference is ONNX Runtime with its optimizations
off. Hypothesis varies shapes and attributes for Conv, the pools, broadcasting binary ops,
Slice, Reduce*, Resize, Pad and MatMul.

Tolerances (|tvm - ort| <= atol + rtol * |ort|, elementwise):

- exact (rtol 0, atol 0): data movement, comparisons, integer ops, Relu/Max/Min/Abs/Neg,
  Floor/Ceil/Round, Cast;
- float32 rtol 1e-5, atol 1e-6: other elementwise math (TVM's and ORT's exp/tanh/erf differ in
  the last bits);
- float32 rtol 1e-4, atol 1e-5: reductions, Conv, MatMul, Gemm, normalizations, Softmax, Resize
  (different summation orders).

The module is skipped, with the reason "apache-tvm not installed", where TVM is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from backends.tvm._env import availability
from helpers import make_model

_ok, _why = availability()
if not _ok:
    pytest.skip(_why, allow_module_level=True)

from backends.numerics import run_reference  # noqa: E402
from backends.tvm import TVMBackend  # noqa: E402

F = TensorProto.FLOAT
EXACT = (0.0, 0.0)
MATH = (1e-5, 1e-6)
ACCUM = (1e-4, 1e-5)
NP = {F: np.float32, TensorProto.INT64: np.int64, TensorProto.INT32: np.int32,
      TensorProto.BOOL: np.bool_, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16,
      TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
HYP = settings(max_examples=8, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])
BACKEND = TVMBackend()


def run_case(nodes, inputs: dict, outputs, inits=None, opset=17, tol=ACCUM):
    """Build the model, run it on ORT and on TVM, compare every output. ``inputs``: name ->
    array (the input's ONNX type follows the array); ``outputs``: names or (name, elem type)."""
    elem = {v: k for k, v in NP.items()}
    ins = [(n, elem[a.dtype.type], list(a.shape)) for n, a in inputs.items()]
    outs = [(o, F, None) if isinstance(o, str) else (o[0], o[1], None) for o in outputs]
    proto = make_model(nodes, ins, outs, inits or {}, opset=opset)
    ref = run_reference(proto.SerializeToString(), inputs)
    model = irlib.from_onnx(proto)
    exe = BACKEND.compile(model, {"threads": 1})
    got = exe.run(inputs)
    rtol, atol = tol
    for name in ref:
        assert got[name].dtype == ref[name].dtype, f"{name}: dtype {got[name].dtype}"
        assert got[name].shape == ref[name].shape, f"{name}: shape {got[name].shape}"
        np.testing.assert_allclose(got[name], ref[name], rtol=rtol, atol=atol, err_msg=name)
    return got


def rnd(*shape, seed=0, dtype=np.float32, scale=1.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def node(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), **attrs)


# -- elementwise --------------------------------------------------------------------------
UNARY = {
    "Relu": EXACT, "Sigmoid": MATH, "Tanh": MATH, "Exp": MATH, "Erf": MATH, "Abs": EXACT,
    "Neg": EXACT, "Floor": EXACT, "Ceil": EXACT, "Round": EXACT, "Sin": MATH, "Cos": MATH,
    "Sign": EXACT, "Softplus": MATH, "Softsign": MATH, "Reciprocal": MATH, "Selu": MATH,
    "Elu": MATH, "Celu": MATH, "HardSigmoid": MATH, "HardSwish": MATH, "Mish": MATH,
    "ThresholdedRelu": EXACT, "Atan": MATH, "Identity": EXACT,
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(op):
    x = rnd(2, 3, 4, scale=3.0)
    x[0, 0, :2] = [0.5, 2.5]  # halves for Round
    run_case([node(op, ["x"])], {"x": x}, ["y"], opset=18, tol=UNARY[op])


@pytest.mark.parametrize("op", ["Log", "Sqrt"])
def test_unary_positive(op):
    run_case([node(op, ["x"])], {"x": np.abs(rnd(3, 5)) + 0.1}, ["y"], tol=MATH)


@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.3}])
def test_leaky_relu(attrs):
    run_case([node("LeakyRelu", ["x"], **attrs)], {"x": rnd(4, 5)}, ["y"], tol=MATH)


@pytest.mark.parametrize("approx", ["none", "tanh"])
def test_gelu(approx):
    run_case([node("Gelu", ["x"], approximate=approx)], {"x": rnd(3, 7, scale=2)}, ["y"],
             opset=20, tol=MATH)


def test_prelu_broadcasts_the_slope():
    run_case([node("PRelu", ["x", "s"])], {"x": rnd(2, 3, 4, 4)}, ["y"],
             {"s": rnd(3, 1, 1, seed=1)}, tol=EXACT)


@pytest.mark.parametrize("opset,lo,hi", [(17, -0.5, 0.7), (17, None, 0.2), (17, -0.1, None),
                                         (6, -0.5, 0.5)])
def test_clip(opset, lo, hi):
    x = rnd(3, 4)
    if opset < 11:
        run_case([node("Clip", ["x"], min=lo, max=hi)], {"x": x}, ["y"], opset=opset, tol=EXACT)
        return
    inits, ins = {}, ["x", "", ""]
    if lo is not None:
        inits["lo"], ins[1] = np.array(lo, np.float32), "lo"
    if hi is not None:
        inits["hi"], ins[2] = np.array(hi, np.float32), "hi"
    run_case([node("Clip", ins)], {"x": x}, ["y"], inits, opset=opset, tol=EXACT)


BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]


@HYP
@given(op=st.sampled_from(BINARY),
       shapes=st.sampled_from([((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)),
                               ((1,), (2, 3)), ((), (3, 2)), ((5, 1, 1), (1, 4, 1))]))
def test_binary_broadcasting(op, shapes):
    a, b = rnd(*shapes[0]), rnd(*shapes[1], seed=1)
    if op == "Div":
        b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)
    run_case([node(op, ["a", "b"])], {"a": a, "b": b}, ["y"],
             tol=EXACT if op != "Div" else MATH)


@pytest.mark.parametrize("exp", [2.0, 0.5, 3.0])
def test_pow(exp):
    run_case([node("Pow", ["x", "e"])], {"x": np.abs(rnd(3, 4)) + 0.1}, ["y"],
             {"e": np.array(exp, np.float32)}, tol=MATH)


def test_integer_div_truncates_and_mod_follows_onnx():
    a = np.array([7, -7, 7, -7, 9, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3, 5], np.int64)
    run_case([node("Div", ["a", "b"], ["q"]), node("Mod", ["a", "b"], ["m"]),
              node("Mod", ["a", "b"], ["f"], fmod=1)],
             {"a": a, "b": b}, [("q", TensorProto.INT64), ("m", TensorProto.INT64),
                                ("f", TensorProto.INT64)], tol=EXACT)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
def test_comparisons(op):
    a = np.round(rnd(3, 4)).astype(np.float32)
    b = np.round(rnd(4, seed=1)).astype(np.float32)
    run_case([node(op, ["a", "b"])], {"a": a, "b": b}, [("y", TensorProto.BOOL)], tol=EXACT)


def test_logic_and_where():
    a, b = rnd(3, 4) > 0, rnd(3, 4, seed=1) > 0
    x, y = rnd(3, 4, seed=2), rnd(4, seed=3)
    nodes = [node("And", ["a", "b"], ["c"]), node("Or", ["c", "a"], ["d"]),
             node("Xor", ["d", "b"], ["e"]), node("Not", ["e"], ["f"]),
             node("Where", ["f", "x", "y"], ["out"])]
    run_case(nodes, {"a": a, "b": b, "x": x, "y": y}, ["out"], tol=EXACT)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(op):
    run_case([node(op, ["a", "b", "c"])], {"a": rnd(2, 3), "b": rnd(3, seed=1),
                                            "c": rnd(1, 3, seed=2)}, ["y"], tol=MATH)


@pytest.mark.parametrize("to,elem", [(TensorProto.INT32, TensorProto.INT32),
                                     (TensorProto.BOOL, TensorProto.BOOL),
                                     (TensorProto.DOUBLE, TensorProto.DOUBLE),
                                     (TensorProto.FLOAT16, TensorProto.FLOAT16)])
def test_cast(to, elem):
    x = rnd(3, 4, scale=3)
    x[0, 0] = 0.0
    run_case([node("Cast", ["x"], to=to)], {"x": x}, [("y", elem)], tol=EXACT)


def test_isnan_isinf_and_dropout():
    x = rnd(2, 5)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    nodes = [node("IsNaN", ["x"], ["n"]), node("IsInf", ["x"], ["i"]),
             node("IsInf", ["x"], ["p"], detect_negative=0), node("Dropout", ["x"], ["d"])]
    run_case(nodes, {"x": x}, [("n", TensorProto.BOOL), ("i", TensorProto.BOOL),
                               ("p", TensorProto.BOOL), "d"], tol=EXACT)


# -- linear algebra -------------------------------------------------------------------------
@HYP
@given(shapes=st.sampled_from([((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 6)),
                               ((4,), (4, 3)), ((2, 3, 4), (4,)), ((1, 3, 4), (5, 4, 2))]))
def test_matmul(shapes):
    run_case([node("MatMul", ["a", "b"])], {"a": rnd(*shapes[0]), "b": rnd(*shapes[1], seed=1)},
             ["y"])


@pytest.mark.parametrize("attrs,c_shape", [({}, (5,)), ({"transA": 1, "transB": 1}, (3, 5)),
                                           ({"alpha": 0.5, "beta": 2.0}, (1, 5)),
                                           ({"transB": 1}, None)])
def test_gemm(attrs, c_shape):
    a = rnd(4, 3) if attrs.get("transA") else rnd(3, 4)
    b = rnd(5, 4, seed=1) if attrs.get("transB") else rnd(4, 5, seed=1)
    inits = {"b": b}
    ins = ["a", "b"]
    if c_shape is not None:
        inits["c"] = rnd(*c_shape, seed=2)
        ins.append("c")
    run_case([node("Gemm", ins, **attrs)], {"a": a}, ["y"], inits)


# -- convolution and pooling ----------------------------------------------------------------
@HYP
@given(groups=st.sampled_from([1, 2, 4]), k=st.sampled_from([1, 3]),
       stride=st.sampled_from([1, 2]), dil=st.sampled_from([1, 2]),
       pad=st.sampled_from([0, 1, "SAME_UPPER", "SAME_LOWER", "VALID"]),
       bias=st.booleans(), size=st.sampled_from([6, 7]))
def test_conv2d(groups, k, stride, dil, pad, bias, size):
    cin, cout = 4, 8
    x = rnd(1, cin, size, size + 1)
    inits = {"w": rnd(cout, cin // groups, k, k, seed=1)}
    ins = ["x", "w"]
    if bias:
        inits["b"] = rnd(cout, seed=2)
        ins.append("b")
    attrs = dict(group=groups, strides=[stride, stride], dilations=[dil, dil],
                 kernel_shape=[k, k])
    if isinstance(pad, str):
        if pad.startswith("SAME") and dil > 1:
            pad = "VALID"  # ORT refuses SAME with dilations
        attrs["auto_pad"] = pad
    else:
        attrs["pads"] = [pad, pad, pad + 1 if pad else 0, pad]
    run_case([node("Conv", ins, **attrs)], {"x": x}, ["y"], inits)


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_1d_and_3d(rank):
    x = rnd(1, 2, *([5] * rank))
    w = rnd(3, 2, *([3] * rank), seed=1)
    run_case([node("Conv", ["x", "w"], pads=[1] * (2 * rank))], {"x": x}, ["y"], {"w": w})


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2]},
    {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    {"group": 2, "dilations": [2, 2]},
    {"strides": [2, 2], "output_shape": [9, 9]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
])
def test_conv_transpose(attrs):
    groups = attrs.get("group", 1)
    x = rnd(1, 4, 4, 4)
    w = rnd(4, 6 // groups, 3, 3, seed=1)
    run_case([node("ConvTranspose", ["x", "w", "b"], kernel_shape=[3, 3], **attrs)], {"x": x},
             ["y"], {"w": w, "b": rnd(6, seed=2)})


@HYP
@given(op=st.sampled_from(["MaxPool", "AveragePool"]), k=st.sampled_from([2, 3]),
       stride=st.sampled_from([1, 2]), pad=st.sampled_from([0, 1]), ceil=st.booleans(),
       include=st.booleans(), size=st.sampled_from([7, 8]))
def test_pool2d(op, k, stride, pad, ceil, include, size):
    attrs = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
                 ceil_mode=int(ceil))
    if op == "AveragePool":
        attrs["count_include_pad"] = int(include)
    run_case([node(op, ["x"], **attrs)], {"x": rnd(1, 3, size, size)}, ["y"])


def test_pool_auto_pad_and_dilations():
    x = rnd(1, 2, 9, 9)
    run_case([node("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2],
                   auto_pad="SAME_UPPER"),
              node("MaxPool", ["x"], ["b"], kernel_shape=[2, 2], dilations=[2, 2]),
              node("AveragePool", ["x"], ["c"], kernel_shape=[3, 3], auto_pad="SAME_LOWER"),
              node("GlobalAveragePool", ["x"], ["g"]), node("GlobalMaxPool", ["x"], ["h"])],
             {"x": x}, ["a", "b", "c", "g", "h"])


# -- normalization and softmax ----------------------------------------------------------------
def test_batch_norm_is_inference_mode():
    c = 4
    inits = {"s": rnd(c, seed=1), "b": rnd(c, seed=2), "m": rnd(c, seed=3),
             "v": np.abs(rnd(c, seed=4)) + 0.5}
    run_case([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)],
             {"x": rnd(2, c, 3, 3)}, ["y"], inits)


@pytest.mark.parametrize("axis,bias", [(-1, True), (1, True), (-1, False)])
def test_layer_norm(axis, bias):
    x = rnd(2, 3, 8)
    norm = x.shape[axis:] if axis >= 0 else x.shape[axis:]
    inits = {"s": rnd(*norm, seed=1)}
    ins = ["x", "s"]
    if bias:
        inits["b"] = rnd(*norm, seed=2)
        ins.append("b")
    run_case([node("LayerNormalization", ins, axis=axis, epsilon=1e-5)], {"x": x}, ["y"], inits)


def test_instance_norm_and_lrn():
    x = rnd(2, 5, 4, 4)
    run_case([node("InstanceNormalization", ["x", "s", "b"], ["i"], epsilon=1e-5),
              node("LRN", ["x"], ["l"], size=3, alpha=1e-3, beta=0.75, bias=1.5),
              node("LRN", ["x"], ["k"], size=5)],
             {"x": x}, ["i", "l", "k"], {"s": rnd(5, seed=1), "b": rnd(5, seed=2)})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(13, -1), (13, 1), (11, 1), (11, 2), (11, -1)])
def test_softmax(op, opset, axis):
    run_case([node(op, ["x"], axis=axis)], {"x": rnd(2, 3, 4, scale=3)}, ["y"], opset=opset)


# -- shapes and data movement -----------------------------------------------------------------
def i64(*v):
    return np.array(v, np.int64)


def test_reshape_flatten_transpose():
    x = rnd(2, 3, 4)
    run_case([node("Reshape", ["x", "s"], ["r"]), node("Reshape", ["x", "z"], ["q"]),
              node("Flatten", ["x"], ["f"], axis=2), node("Flatten", ["x"], ["g"], axis=0),
              node("Transpose", ["x"], ["t"], perm=[2, 0, 1]), node("Transpose", ["x"], ["u"])],
             {"x": x}, ["r", "q", "f", "g", "t", "u"], {"s": i64(4, -1), "z": i64(0, -1)},
             tol=EXACT)


def test_concat_split():
    a, b = rnd(2, 3), rnd(2, 5, seed=1)
    run_case([node("Concat", ["a", "b"], ["c"], axis=-1),
              node("Split", ["c", "sp"], ["p", "q", "r"], axis=1),
              node("Split", ["c"], ["s", "t"], axis=1)],
             {"a": a, "b": b}, ["c", "p", "q", "r", "s", "t"], {"sp": i64(1, 3, 4)}, tol=EXACT)


def test_split_num_outputs_uneven():
    run_case([node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3)], {"x": rnd(7, 2)},
             ["a", "b", "c"], opset=18, tol=EXACT)


@HYP
@given(start=st.integers(-8, 8), end=st.sampled_from([-9, -3, 0, 2, 5, 9, 2**62]),
       step=st.sampled_from([1, 2, -1, -2]))
def test_slice(start, end, step):
    x = rnd(6, 7)
    idx = np.arange(7)[slice(start, end, step)]
    if idx.size == 0:
        return  # empty tensors are not supported (a stated limitation)
    run_case([node("Slice", ["x", "st", "en", "ax", "sp"])], {"x": x}, ["y"],
             {"st": i64(start), "en": i64(end), "ax": i64(-1), "sp": i64(step)}, tol=EXACT)


def test_gather_with_constant_and_dynamic_indices():
    x = rnd(5, 4)
    idx = np.array([[0, -1], [3, 2]], np.int64)
    run_case([node("Gather", ["x", "ci"], ["a"], axis=0), node("Gather", ["x", "di"], ["b"], axis=1),
              node("Gather", ["x", "s"], ["c"], axis=1)],
             {"x": x, "di": np.array([3, -2, 0], np.int64)}, ["a", "b", "c"],
             {"ci": idx, "s": np.array(-1, np.int64)}, tol=EXACT)


def test_squeeze_unsqueeze_expand_tile():
    x = rnd(3, 1, 4)
    run_case([node("Squeeze", ["x", "a1"], ["s"]), node("Unsqueeze", ["x", "a2"], ["u"]),
              node("Expand", ["x", "sh"], ["e"]), node("Tile", ["x", "rp"], ["t"]),
              node("Squeeze", ["x"], ["v"])],
             {"x": x}, ["s", "u", "e", "t", "v"],
             {"a1": i64(1), "a2": i64(0, -1), "sh": i64(2, 1, 3, 4), "rp": i64(1, 2, 2)},
             tol=EXACT)


def test_unsqueeze_squeeze_attribute_axes():
    run_case([node("Unsqueeze", ["x"], ["u"], axes=[0, 3]), node("Squeeze", ["u"], ["s"], axes=[0])],
             {"x": rnd(2, 3)}, ["u", "s"], opset=11, tol=EXACT)


@HYP
@given(mode=st.sampled_from(["constant", "reflect", "edge"]),
       pads=st.sampled_from([[0, 1, 1, 0, 2, 1], [1, 0, 0, 1, 1, 2], [0, 0, 2, 0, 0, 1]]))
def test_pad(mode, pads):
    run_case([node("Pad", ["x", "p", "v"], mode=mode)], {"x": rnd(3, 4, 5)}, ["y"],
             {"p": i64(*pads), "v": np.array(1.5, np.float32)}, tol=EXACT)


def test_shape_size_constant_of_shape_range():
    x = rnd(2, 3, 4)
    nodes = [node("Shape", ["x"], ["s"], start=1), node("ConstantOfShape", ["s"], ["c"],
                                                        value=helper.make_tensor("v", F, [1], [2.5])),
             node("Add", ["x", "c"], ["y"]), node("Size", ["x"], ["n"]),
             node("Range", ["r0", "r1", "r2"], ["r"]),
             node("Constant", [], ["k"], value_floats=[1.0, 2.0]), node("Mul", ["r", "k2"], ["m"])]
    run_case(nodes, {"x": x}, ["y", ("n", TensorProto.INT64), "m", "k"],
             {"r0": np.array(1.0, np.float32), "r1": np.array(3.0, np.float32),
              "r2": np.array(1.0, np.float32), "k2": np.array([2.0, 3.0], np.float32)}, tol=EXACT)


@HYP
@given(mode=st.sampled_from(["nearest", "linear", "cubic"]),
       coord=st.sampled_from(["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"]),
       scale=st.sampled_from([2.0, 3.0, 0.5]))
def test_resize_scales(mode, coord, scale):
    x = rnd(1, 2, 4, 6)
    run_case([node("Resize", ["x", "", "sc"], mode=mode, coordinate_transformation_mode=coord)],
             {"x": x}, ["y"], {"sc": np.array([1, 1, scale, scale], np.float32)}, opset=13)


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor",
                                          "ceil"])
def test_resize_sizes_nearest(nearest_mode):
    run_case([node("Resize", ["x", "", "", "sz"], mode="nearest", nearest_mode=nearest_mode,
                   coordinate_transformation_mode="asymmetric")],
             {"x": rnd(1, 1, 5, 4)}, ["y"], {"sz": i64(1, 1, 8, 9)}, opset=13, tol=EXACT)


# -- reductions -------------------------------------------------------------------------------
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"]


@HYP
@given(op=st.sampled_from(REDUCE), axes=st.sampled_from([None, [0], [1, -1], [2]]),
       keep=st.booleans())
def test_reduce(op, axes, keep):
    x = rnd(2, 3, 4)
    inits, ins = {}, ["x"]
    if axes is not None:
        inits["axes"] = np.array(axes, np.int64)
        ins.append("axes")
    run_case([node(op, ins, keepdims=int(keep))], {"x": x}, ["y"], inits, opset=18)


def test_reduce_with_attribute_axes_and_log_sum():
    x = np.abs(rnd(2, 3, 4)) + 0.1
    run_case([node("ReduceMean", ["x"], ["a"], axes=[1], keepdims=0),
              node("ReduceLogSum", ["x"], ["b"], axes=[0, 2])], {"x": x}, ["a", "b"], opset=13)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_reduce(op):
    run_case([node(op, ["x"], axis=1, keepdims=0)], {"x": rnd(3, 5)},
             [("y", TensorProto.INT64)], tol=EXACT)
