"""eliminate-identity: every rule, what it refuses, and outputs checked against ONNX Runtime.

Each case is a small model written in ONNX's text syntax, with the ops left after the pass and
the number of rewrites. The outputs of the original and the rewritten model are compared under
ORT with optimizations off; the rules only bypass or merge nodes, so they must be bit-identical.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irlib
from helpers import parse_ir
from passes import PassManager, get_pass

RNG = np.random.default_rng(7)


def ort_run(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def feeds_for(proto: onnx.ModelProto) -> dict:
    """Random data for the (static-shaped) inputs of ``proto``."""
    inits = {t.name for t in proto.graph.initializer}
    out = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        out[vi.name] = (RNG.standard_normal(shape) * 3).astype(dtype)
    return out


def eliminate(text: str, pipeline: str = "infer-shapes,eliminate-identity"):
    """Parse, run ``pipeline`` (verifying after each pass), check outputs; return model and
    the eliminate-identity stats."""
    before = irlib.to_onnx(parse_ir(text))
    model = parse_ir(text)
    report = PassManager(pipeline).run(model)
    after = irlib.to_onnx(model)
    onnx.checker.check_model(after, full_check=True)
    feeds = feeds_for(before)
    for w, g in zip(ort_run(before, feeds), ort_run(after, feeds), strict=True):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(g, w)
    stats = next(r.stats for r in report.passes if r.name == "eliminate-identity")
    assert not get_pass("eliminate-identity")().run(model, None).changed  # idempotent
    return model, stats


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph]


# (model text, ops left, rule expected to fire or None)
CASES = {
    "identity": ("""
        main (float[2, 3] x) => (float[2, 3] y) { t = Identity(x)  y = Relu(t) }
    """, ["Relu"], "remove-identity"),
    "dropout-inference": ("""
        main (float[2, 3] x) => (float[2, 3] y) { t = Dropout(x)  y = Relu(t) }
    """, ["Relu"], "remove-inference-dropout"),
    "cast-same-type": ("""
        main (float[2, 3] x) => (float[2, 3] y) { t = Cast <to = 1> (x)  y = Relu(t) }
    """, ["Relu"], "remove-noop-cast"),
    "cast-other-type-stays": ("""
        main (float[2, 3] x) => (double[2, 3] y) { t = Cast <to = 11> (x)  y = Relu(t) }
    """, ["Cast", "Relu"], None),
    "add-zero": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float[3] z = {0.0, 0.0, 0.0}> {
            t = Add(z, x)  y = Relu(t) }
    """, ["Relu"], "remove-add-by-zero"),
    "add-zero-that-broadcasts-stays": ("""
        main (float[3] x) => (float[2, 3] y) <float[2, 3] z = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0}> {
            t = Add(x, z)  y = Relu(t) }
    """, ["Add", "Relu"], None),
    "mul-one": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float one = {1.0}> { t = Mul(x, one)  y = Relu(t) }
    """, ["Relu"], "remove-mul-by-one"),
    "div-one": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float one = {1.0}> { t = Div(x, one)  y = Relu(t) }
    """, ["Relu"], "remove-div-by-one"),
    "one-div-stays": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float one = {1.0}> { t = Div(one, x)  y = Relu(t) }
    """, ["Div", "Relu"], None),
    "int-mul-one": ("""
        main (int64[4] x) => (int64[4] y) <int64 one = {1}> { t = Mul(x, one)  y = Neg(t) }
    """, ["Neg"], "remove-mul-by-one"),
    "expand-noop": ("""
        main (float[2, 3] x) => (float[2, 3] y) <int64[2] s = {1, 3}> {
            t = Expand(x, s)  y = Relu(t) }
    """, ["Relu"], "remove-noop-expand"),
    "expand-that-grows-stays": ("""
        main (float[1, 3] x) => (float[2, 3] y) <int64[2] s = {2, 3}> {
            t = Expand(x, s)  y = Relu(t) }
    """, ["Expand", "Relu"], None),
    "slice-full": ("""
        main (float[4, 5] x) => (float[4, 5] y)
            <int64[2] st = {0, -5}, int64[2] en = {9223372036854775807, 5}, int64[2] ax = {0, 1}> {
            t = Slice(x, st, en, ax)  y = Relu(t) }
    """, ["Relu"], "remove-full-slice"),
    "slice-dynamic-dim-to-int64-max": ("""
        main (float[N, 5] x) => (float[N, 5] y)
            <int64[1] st = {0}, int64[1] en = {9223372036854775807}> {
            t = Slice(x, st, en)  y = Relu(t) }
    """, ["Relu"], "remove-full-slice"),
    "slice-partial-stays": ("""
        main (float[4, 5] x) => (float[4, 4] y) <int64[1] st = {1}, int64[1] en = {5}, int64[1] ax = {1}> {
            t = Slice(x, st, en, ax)  y = Relu(t) }
    """, ["Slice", "Relu"], None),
    "slice-step-stays": ("""
        main (float[4, 5] x) => (float[4, 5] y)
            <int64[1] st = {-1}, int64[1] en = {-9223372036854775807}, int64[1] ax = {1}, int64[1] sp = {-1}> {
            t = Slice(x, st, en, ax, sp)  y = Relu(t) }
    """, ["Slice", "Relu"], None),
    "pad-zero": ("""
        main (float[2, 3] x) => (float[2, 3] y) <int64[4] p = {0, 0, 0, 0}> {
            t = Pad <mode = "reflect"> (x, p)  y = Relu(t) }
    """, ["Relu"], "remove-zero-pad"),
    "pad-nonzero-stays": ("""
        main (float[2, 3] x) => (float[2, 5] y) <int64[4] p = {0, 1, 0, 1}> {
            t = Pad(x, p)  y = Relu(t) }
    """, ["Pad", "Relu"], None),
    "reshape-reshape": ("""
        main (float[2, 3, 4] x) => (float[4, 6] y) <int64[2] s1 = {6, 4}, int64[2] s2 = {4, -1}> {
            t = Reshape(x, s1)  y = Reshape(t, s2) }
    """, ["Reshape"], "merge-reshapes"),
    "reshape-reshape-copying-a-static-dim": ("""
        main (float[2, 3, 4] x) => (float[6, 2, 2] y) <int64[2] s1 = {6, 4}, int64[3] s2 = {0, 2, 2}> {
            t = Reshape(x, s1)  y = Reshape(t, s2) }
    """, ["Reshape"], "merge-reshapes"),
    "reshape-noop": ("""
        main (float[2, 3] x) => (float[2, 3] y) <int64[2] s = {2, -1}> {
            t = Reshape(x, s)  y = Relu(t) }
    """, ["Relu"], "remove-noop-reshape"),
    "relu-clip": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float lo = {0.0}, float hi = {6.0}> {
            t = Relu(x)  y = Clip(t, lo, hi) }
    """, ["Clip"], "remove-relu-before-clip"),
    "relu-clip-negative-min-stays": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float lo = {-1.0}, float hi = {6.0}> {
            t = Relu(x)  y = Clip(t, lo, hi) }
    """, ["Relu", "Clip"], None),
    "relu-clip-no-min-stays": ("""
        main (float[2, 3] x) => (float[2, 3] y) <float hi = {6.0}> {
            t = Relu(x)  y = Clip(t, , hi) }
    """, ["Relu", "Clip"], None),
    "relu-relu": ("""
        main (float[2, 3] x) => (float[2, 3] y) { t = Relu(x)  y = Relu(t) }
    """, ["Relu"], "remove-relu-relu"),
    "squeeze-unsqueeze": ("""
        main (float[2, 3] x) => (float[2, 3] y) <int64[1] a = {1}> {
            t = Unsqueeze(x, a)  u = Squeeze(t, a)  y = Relu(u) }
    """, ["Relu"], "remove-squeeze-unsqueeze"),
    "unsqueeze-squeeze": ("""
        main (float[2, 1, 3] x) => (float[2, 1, 3] y) <int64[1] a = {-2}, int64[1] b = {1}> {
            t = Squeeze(x, a)  u = Unsqueeze(t, b)  y = Relu(u) }
    """, ["Relu"], "remove-unsqueeze-squeeze"),
    "unsqueeze-squeeze-all": ("""
        main (float[1, 3, 1] x) => (float[1, 3, 1] y) <int64[2] b = {0, 2}> {
            t = Squeeze(x)  u = Unsqueeze(t, b)  y = Relu(u) }
    """, ["Relu"], "remove-unsqueeze-squeeze"),
    "unsqueeze-squeeze-other-axis-stays": ("""
        main (float[2, 1, 3] x) => (float[2, 3, 1] y) <int64[1] a = {1}, int64[1] b = {2}> {
            t = Squeeze(x, a)  u = Unsqueeze(t, b)  y = Relu(u) }
    """, ["Squeeze", "Unsqueeze", "Relu"], None),
    "inverse-transposes": ("""
        main (float[2, 3, 4] x) => (float[2, 3, 4] y) {
            t = Transpose <perm = [1, 2, 0]> (x)  u = Transpose <perm = [2, 0, 1]> (t)  y = Relu(u) }
    """, ["Relu"], "remove-inverse-transposes"),
    "non-inverse-transposes-stay": ("""
        main (float[2, 3, 4] x) => (float[4, 2, 3] y) {
            t = Transpose <perm = [1, 2, 0]> (x)  y = Transpose <perm = [1, 2, 0]> (t) }
    """, ["Transpose", "Transpose"], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule(case, verified):
    text, left, rule = CASES[case]
    model, stats = eliminate(text)
    verified(model)
    assert ops(model) == left
    if rule is None:
        assert stats["rewrites"] == 0
    else:
        assert stats.get(f"applied:{rule}", 0) >= 1, stats


def test_text_in_text_out():
    model, stats = eliminate("""
        main (float[1, 3, 4, 4] x) => (float[1, 48] y)
            <int64[2] s1 = {3, 16}, int64[2] s2 = {1, 48}, float lo = {0.0}, float hi = {6.0},
             int64[8] p = {0, 0, 0, 0, 0, 0, 0, 0}> {
            a = Identity(x)
            b = Pad(a, p)
            c = Relu(b)
            d = Clip(c, lo, hi)
            e = Reshape(d, s1)
            y = Reshape(e, s2)
        }
    """)
    assert irlib.format_graph(model.graph) == (
        "graph main(%x: f32[1,3,4,4]) {\n"
        "  %s1: i64[2] = const [3, 16]\n"
        "  %s2: i64[2] = const [1, 48]\n"
        "  %lo: f32[] = const 0.0\n"
        "  %hi: f32[] = const 6.0\n"
        "  %p: i64[8] = const [0, 0, 0, 0, 0, 0, 0, 0]\n"
        "  %d: f32[1,3,4,4] = Clip(%x, %lo, %hi)\n"
        "  %y: f32[1,48] = Reshape(%d, %s2)\n"
        "  return %y\n"
        "}\n"
    )
    assert stats["rewrites"] == 4 and stats["inserted"] == 2


def test_graph_input_passed_straight_to_output_is_refused():
    """y = Identity(x) with x a graph input and y an output: removing it would rename one."""
    model, stats = eliminate("main (float[2] x) => (float[2] y) { y = Identity(x) }")
    assert ops(model) == ["Identity"] and stats["rewrites"] == 0


def test_bypassed_output_keeps_its_name():
    model, _ = eliminate("""
        main (float[2] x) => (float[2] y) { t = Relu(x)  y = Identity(t) }
    """)
    assert ops(model) == ["Relu"] and model.graph.outputs[0].name == "y"


def test_reshape_reshape_copying_unknown_dim_is_refused():
    model, stats = eliminate("""
        main (float[N, 12] x) => (float[N, 12] y) <int64[3] s1 = {0, 3, 4}, int64[2] s2 = {0, 12}> {
            t = Reshape(x, s1)  y = Reshape(t, s2) }
    """, pipeline="eliminate-identity")
    assert ops(model) == ["Reshape", "Reshape"]
    assert stats.get("refused:merge-reshapes", 0) == 1


def test_opset9_attribute_forms():
    """Slice and Pad took attributes before opset 10/11; the rules read those too."""
    model, stats = eliminate("""
        <ir_version: 8, opset_import: ["" : 9]>
        main (float[2, 3] x) => (float[2, 3] y) {
            a = Slice <starts = [0], ends = [3], axes = [1]> (x)
            b = Pad <pads = [0, 0, 0, 0]> (a)
            y = Relu(b)
        }
    """)
    assert ops(model) == ["Relu"]
    assert stats["applied:remove-full-slice"] == 1 and stats["applied:remove-zero-pad"] == 1


# -- property: random chains of no-op ops collapse -------------------------------------------

_NOOPS = [
    "t{i} = Identity({x})",
    "t{i} = Relu({x})",
    "t{i} = Mul({x}, one)",
    "t{i} = Add({x}, zero)",
    "t{i} = Reshape({x}, shape)",
    "t{i} = Expand({x}, shape)",
    "t{i} = Transpose <perm = [1, 0]> ({x})",
    "t{i} = Cast <to = 1> ({x})",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_NOOPS), min_size=1, max_size=8))
def test_property_noop_chains_keep_outputs(chain):
    lines, x = [], "x"
    for i, tmpl in enumerate(chain):
        lines.append(tmpl.format(i=i, x=x))
        x = f"t{i}"
    n_transposes = sum("Transpose" in t for t in chain)
    out_shape = "3, 3"
    text = f"""
        main (float[3, 3] x) => (float[{out_shape}] y)
            <float one = {{1.0}}, float zero = {{0.0}}, int64[2] shape = {{3, 3}}> {{
            {chr(10).join(lines)}
            y = Neg({x})
        }}
    """
    model, _ = eliminate(text)
    left = ops(model)
    # What can remain: one Relu (Relu(Relu) collapses only when adjacent), and an odd
    # Transpose count leaves at least one; Identity/Mul/Add/Reshape/Expand/Cast all go.
    assert not {"Identity", "Mul", "Add", "Reshape", "Expand", "Cast"} & set(left)
    assert left.count("Transpose") % 2 == n_transposes % 2
