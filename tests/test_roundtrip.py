"""irlib's ONNX round trip is lossless: ``irlib.to_onnx(irlib.load(proto))`` gives ``proto`` back.

"Lossless" means equal as protobuf messages once node order is set aside (a graph loaded out of
order is sorted) and fields explicitly set to their default value are treated as unset (ONNX's
protos are proto2, where ``doc_string: ""`` is "present" but says nothing). Everything else must
survive: names, attributes of every type, doc strings, metadata_props at every level, value_info,
opset imports, initializers bit for bit, model-local functions and the IR version.

The examples below each build one kind of model with ``onnx.helper``; the last tests sweep ONNX's
whole backend test corpus (see ``tools/conformance_report.py``).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import irlib
from irlib import DType, Tensor

IR = 10  # ORT 1.32 refuses the IR version onnx 1.23 writes by default


# -- helpers -------------------------------------------------------------------------------------
def strip_defaults(msg):
    """Clear singular fields set to their default value, recursively (in place)."""
    for field, value in msg.ListFields():
        if field.is_repeated:
            if field.type == field.TYPE_MESSAGE:
                for item in value:
                    strip_defaults(item)
        elif field.type == field.TYPE_MESSAGE:
            strip_defaults(value)
        elif value == field.default_value and field.containing_oneof is None:
            msg.ClearField(field.name)
    return msg


def _sort_nodes(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("g"):
                _sort_nodes(a.g)
            for g in a.graphs:
                _sort_nodes(g)
    nodes = sorted(graph.node, key=lambda n: n.SerializeToString(deterministic=True))
    del graph.node[:]
    graph.node.extend(nodes)


def canonical(model: onnx.ModelProto, node_order: bool = True) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    strip_defaults(out)
    if not node_order:
        _sort_nodes(out.graph)
    return out


def assert_lossless(original: onnx.ModelProto, exported: onnx.ModelProto,
                    node_order: bool = True) -> None:
    a, b = canonical(original, node_order), canonical(exported, node_order)
    if a != b:
        diff = difflib.unified_diff(text_format.MessageToString(a).splitlines(),
                                    text_format.MessageToString(b).splitlines(),
                                    "original", "exported", lineterm="", n=2)
        pytest.fail("round trip lost information:\n" + "\n".join(list(diff)[:60]))


def round_trip(proto: onnx.ModelProto) -> onnx.ModelProto:
    model = irlib.load(proto)
    irlib.verify(model)
    return irlib.to_onnx(model)


def checker_accepts(proto: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        return False
    return True


def run_ort(proto: onnx.ModelProto, feeds: dict) -> list:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_same_under_ort(a: onnx.ModelProto, b: onnx.ModelProto, feeds: dict) -> None:
    for x, y in zip(run_ort(a, feeds), run_ort(b, feeds), strict=True):
        np.testing.assert_array_equal(x, y)


def meta(**kv) -> list[onnx.StringStringEntryProto]:
    return [onnx.StringStringEntryProto(key=k, value=v) for k, v in kv.items()]


def _string_tensor(name: str, items: list[bytes]) -> onnx.TensorProto:
    """A STRING tensor holding ``items`` exactly (``helper.make_tensor`` goes through a numpy
    ``S`` array, which drops trailing NUL bytes)."""
    proto = TensorProto(name=name, data_type=TensorProto.STRING, dims=[len(items)])
    proto.string_data.extend(items)
    return proto


# -- the kitchen sink: every field ONNX has, once ---------------------------------------------------
def kitchen_sink() -> onnx.ModelProto:
    """A model that uses every part of ONNX's format irlib must carry."""
    f32 = TensorProto.FLOAT
    x = helper.make_tensor_value_info("X", f32, ["N", 4], doc_string="the input")
    x.type.denotation = "TENSOR"
    x.type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
    x.metadata_props.extend(meta(role="input"))
    y = helper.make_tensor_value_info("Y", f32, ["N", 4], doc_string="the output")
    y.metadata_props.extend(meta(role="output"))
    z = helper.make_tensor_value_info("Z", f32, ["N", 4])
    s_out = helper.make_value_info("S", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(f32, None)))

    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "W")
    w.doc_string = "weights"
    w.metadata_props.extend(meta(quant="none"))
    inits = [
        w,
        helper.make_tensor("f16", TensorProto.FLOAT16, [3], np.array([1.5, -0.0, np.inf], np.float16)),
        helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, -3.25], raw=False),
        helper.make_tensor("i4", TensorProto.INT4, [5], [-8, 7, 0, -1, 3]),  # odd count: padded
        helper.make_tensor("u4", TensorProto.UINT4, [3], [15, 0, 9], raw=False),
        helper.make_tensor("f8", TensorProto.FLOAT8E4M3FN, [2], [0.5, -448.0]),
        _string_tensor("str", [b"abc", "h\u00e9".encode(), b"\xff\x00"]),
        helper.make_tensor("b", TensorProto.BOOL, [2], [True, False]),
        helper.make_tensor("c64", TensorProto.COMPLEX64, [1], [1 + 2j]),
        helper.make_tensor("d", TensorProto.DOUBLE, [2], [np.pi, -np.e], raw=False),
    ]
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sp_values", f32, [2], [1.0, 2.0]),
        helper.make_tensor("sp_indices", TensorProto.INT64, [2], [0, 5]), [8])

    # Subgraphs that read outer-scope values (W, X) and carry their own doc and metadata.
    then_g = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["then_out"], name="then_mm")], "then",
        [], [helper.make_tensor_value_info("then_out", f32, None)], doc_string="then doc")
    then_g.metadata_props.extend(meta(branch="then"))
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["else_out"])], "else",
        [], [helper.make_tensor_value_info("else_out", f32, None)])

    attrs = dict(
        f=0.1, i=-3, s="text", s_bin=b"\xfe\xff", t=numpy_helper.from_array(
            np.array([1, 2], np.int64), "attr_t"),
        floats=[1.0, 2.5], ints=[1, -2, 3], strings=["a", "b"],
        tensors=[numpy_helper.from_array(np.array(1.0, np.float32), "t0")],
        graphs=[else_g], sparse=sparse, sparses=[sparse],
        tp=helper.make_tensor_type_proto(TensorProto.INT8, [2, "K"]),
        tps=[helper.make_sequence_type_proto(helper.make_tensor_type_proto(f32, [1]))],
        empty_ints=helper.make_attribute("empty_ints", [], attr_type=onnx.AttributeProto.INTS),
    )
    kitchen = helper.make_node("Kitchen", ["X", "", "str"], ["K", ""], name="kitchen",
                               domain="custom.ops", doc_string="all attribute types", **{
                                   k: v for k, v in attrs.items() if k != "empty_ints"})
    kitchen.attribute.append(attrs["empty_ints"])
    kitchen.attribute[0].doc_string = "a documented attribute"
    kitchen.metadata_props.extend(meta(origin="test"))
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"], name="mm", doc_string="first"),
        helper.make_node("If", ["cond"], ["Y"], name="if", then_branch=then_g, else_branch=else_g),
        helper.make_node("MyFn", ["h"], ["Z"], domain="local", alpha=2.0, name="call"),
        kitchen,
        helper.make_node("SequenceEmpty", [], ["S"], dtype=f32),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    h_vi = helper.make_tensor_value_info("h", f32, ["N", 4], doc_string="hidden")
    h_vi.metadata_props.extend(meta(stage="1"))
    graph = helper.make_graph(nodes, "main", [x, cond], [y, z, s_out], inits,
                              doc_string="graph doc", value_info=[h_vi],
                              sparse_initializer=[helper.make_sparse_tensor(
                                  helper.make_tensor("sv", f32, [1], [3.0]),
                                  helper.make_tensor("si", TensorProto.INT64, [1], [1]), [4])])
    graph.metadata_props.extend(meta(graph_key="graph_value"))
    qa = graph.quantization_annotation.add(tensor_name="h")
    qa.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="W")

    # A model-local function with an attribute reference and a default.
    ref = helper.make_attribute_ref("alpha", onnx.AttributeProto.FLOAT)
    fn = helper.make_function(
        "local", "MyFn", ["a"], ["b"],
        [helper.make_node("LeakyRelu", ["a"], ["b"], alpha=0.0)],
        [helper.make_opsetid("", 21)], attributes=[], doc_string="fn doc")
    fn.node[0].attribute[0].CopyFrom(ref)
    fn.attribute_proto.append(helper.make_attribute("alpha", 0.5))
    fn.metadata_props.extend(meta(fn="yes"))
    fn.overload = "v2"
    nodes[2].overload = "v2"
    fn.value_info.append(helper.make_tensor_value_info("b", f32, None))

    model = helper.make_model(
        graph, ir_version=IR, functions=[fn], doc_string="model doc", producer_name="tests",
        producer_version="1.2", domain="org.example", model_version=7,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("custom.ops", 1),
                       helper.make_opsetid("local", 1), helper.make_opsetid("com.microsoft", 1)])
    model.metadata_props.extend(meta(author="irc", license="Apache-2.0"))
    return model


def test_kitchen_sink_is_lossless():
    model = kitchen_sink()
    assert checker_accepts(model)
    exported = round_trip(model)
    assert_lossless(model, exported)
    assert checker_accepts(exported)


def test_kitchen_sink_reads_what_it_says():
    """The IR holds the parts as the API documents them (not only as opaque copies)."""
    m = irlib.load(kitchen_sink())
    assert m.metadata_props == {"author": "irc", "license": "Apache-2.0"}
    assert m.graph.metadata_props == {"graph_key": "graph_value"}
    x = m.graph.inputs[0]
    assert (x.doc_string, x.metadata_props) == ("the input", {"role": "input"})
    assert x.type.shape == ("N", 4) and x.type.dim_denotations == ("DATA_BATCH", "")
    kitchen = next(n for n in m.graph if n.name == "kitchen")
    assert kitchen.metadata_props == {"origin": "test"}
    assert kitchen.attr("s_bin") == b"\xfe\xff" and kitchen.attr("s") == "text"
    assert kitchen.attr("ints") == (1, -2, 3) and kitchen.attr("empty_ints") == ()
    assert kitchen.inputs[1] is None and kitchen.outputs[1].name == ""
    strings = next(v for v in m.graph.initializers if v.name == "str").const_value.numpy()
    assert list(strings) == ["abc", "h\u00e9", b"\xff\x00"]
    w = next(v for v in m.graph.initializers if v.name == "W").const_value
    assert (w.doc_string, w.metadata_props) == ("weights", {"quant": "none"})
    h = next(n for n in m.graph if n.name == "mm").output
    assert (h.doc_string, h.metadata_props) == ("hidden", {"stage": "1"})
    if_node = next(n for n in m.graph if n.op_type == "If")
    then_mm = next(iter(if_node.attr("then_branch")))
    assert then_mm.inputs[0] is x  # the subgraph reads the outer value itself
    assert any(u.node is then_mm for u in x.uses())


@pytest.mark.parametrize("ir_version", [3, 4, 6, 7, 8, 9, 10, 11])
def test_ir_version_kept_as_read(ir_version):
    opset = {3: 8, 4: 9, 6: 11, 7: 13}.get(ir_version, 17)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, ir_version=ir_version,
                              opset_imports=[helper.make_opsetid("", opset)])
    exported = round_trip(model)
    assert exported.ir_version == ir_version
    assert_lossless(model, exported)


def test_opset_imports_kept_in_order_and_spelling():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    opsets = [helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("ai.onnx", 17),
              helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, ir_version=IR, opset_imports=opsets)
    exported = round_trip(model)
    assert [(o.domain, o.version) for o in exported.opset_import] == [
        ("com.microsoft", 1), ("ai.onnx", 17), ("ai.onnx.ml", 3)]


# -- ONNX's special cases ---------------------------------------------------------------------------
@pytest.mark.parametrize("ir_version", [3, 8])
def test_inputs_that_are_also_initializers(ir_version):
    """An initializer listed among the inputs: required in IR 3, where it is a constant to ORT;
    from IR 4 on, a default value a caller may override."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(np.array([1, 2, 3], np.float32), "bias")])
    model = helper.make_model(graph, ir_version=ir_version,
                              opset_imports=[helper.make_opsetid("", 8)])
    m = irlib.load(model)
    bias = m.graph.inputs[1]
    assert bias.is_graph_input() and bias.is_initializer() and not bias.is_constant()
    assert m.graph.initializers == [bias]
    exported = irlib.to_onnx(m)
    assert_lossless(model, exported)
    x = np.array([10, 20, 30], np.float32)
    assert_same_under_ort(model, exported, {"x": x})  # the default
    np.testing.assert_array_equal(run_ort(exported, {"x": x})[0], x + [1, 2, 3])
    if ir_version < 4:
        return
    override = {"x": x, "bias": np.full(3, -1, np.float32)}
    assert_same_under_ort(model, exported, override)
    np.testing.assert_array_equal(run_ort(exported, override)[0], x - 1)


def test_nodes_out_of_order_are_sorted():
    graph = helper.make_graph(
        [helper.make_node("Mul", ["b", "b"], ["y"], name="last"),
         helper.make_node("Relu", ["a"], ["b"], name="middle"),
         helper.make_node("Neg", ["x"], ["a"], name="first")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    assert not checker_accepts(model)  # the checker wants topological order
    m = irlib.load(model)
    assert [n.name for n in m.graph] == ["first", "middle", "last"]
    exported = irlib.to_onnx(m)
    assert [n.name for n in exported.graph.node] == ["first", "middle", "last"]
    assert_lossless(model, exported, node_order=False)
    assert checker_accepts(exported)
    assert_same_under_ort(model, exported, {"x": np.array([-2, -1, 1, 2], np.float32)})


def test_cycle_is_refused_with_one_line_error():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])], "g",
        [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(irlib.IRLoadError, match="cycle") as info:
        irlib.load(model)
    assert "\n" not in str(info.value)


def test_contrib_domain_ops_are_carried():
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("FusedMatMul", ["a", "b"], ["c"], domain="com.microsoft",
                          alpha=0.5, transB=1, name="fmm"),
         helper.make_node("Gelu", ["c"], ["y"], domain="com.microsoft")], "g",
        [helper.make_tensor_value_info("a", f32, [2, 3]),
         helper.make_tensor_value_info("b", f32, [4, 3])],
        [helper.make_tensor_value_info("y", f32, [2, 4])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m = irlib.load(model)
    fmm = next(iter(m.graph))
    assert (fmm.domain, fmm.qualified_op, fmm.attr("alpha"), fmm.attr("transB")) == (
        "com.microsoft", "com.microsoft.FusedMatMul", 0.5, 1)
    exported = irlib.to_onnx(m)
    assert_lossless(model, exported)
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((2, 3), np.float32),
             "b": rng.standard_normal((4, 3), np.float32)}
    assert_same_under_ort(model, exported, feeds)


def _outer_scope_models() -> dict[str, tuple[onnx.ModelProto, dict]]:
    f32 = TensorProto.FLOAT
    x_vi = helper.make_tensor_value_info("x", f32, [3])
    scale = numpy_helper.from_array(np.array([2, 3, 4], np.float32), "scale")
    pre = helper.make_node("Add", ["x", "x"], ["x2"], name="pre")  # an outer node's output

    then_g = helper.make_graph([helper.make_node("Mul", ["x2", "scale"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", f32, [3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x2", "x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", f32, [3])])
    if_graph = helper.make_graph(
        [pre, helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
        "if", [x_vi, helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", f32, [3])], [scale])

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "x2"], ["acc_out"]),
         helper.make_node("Mul", ["acc_out", "scale"], ["scan_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", f32, [3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", f32, [3]),
         helper.make_tensor_value_info("scan_out", f32, [3])])
    loop_graph = helper.make_graph(
        [pre, helper.make_node("Loop", ["n", "", "x"], ["acc", "stacked"], body=body)], "loop",
        [x_vi, helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("acc", f32, [3]),
         helper.make_tensor_value_info("stacked", f32, [None, 3])], [scale])

    scan_body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "scale"], ["row_out"])], "scan_body",
        [helper.make_tensor_value_info("s_in", f32, [3]),
         helper.make_tensor_value_info("row", f32, [3])],
        [helper.make_tensor_value_info("s_out", f32, [3]),
         helper.make_tensor_value_info("row_out", f32, [3])])
    scan_graph = helper.make_graph(
        [helper.make_node("Scan", ["x", "rows"], ["final", "outs"], body=scan_body,
                          num_scan_inputs=1)], "scan",
        [x_vi, helper.make_tensor_value_info("rows", f32, [2, 3])],
        [helper.make_tensor_value_info("final", f32, [3]),
         helper.make_tensor_value_info("outs", f32, [2, 3])], [scale])

    x = np.array([1, -2, 3], np.float32)
    return {
        "If": (helper.make_model(if_graph, ir_version=IR, opset_imports=[
            helper.make_opsetid("", 17)]), {"x": x, "c": np.array(True)}),
        "Loop": (helper.make_model(loop_graph, ir_version=IR, opset_imports=[
            helper.make_opsetid("", 17)]), {"x": x, "n": np.array(3, np.int64)}),
        "Scan": (helper.make_model(scan_graph, ir_version=IR, opset_imports=[
            helper.make_opsetid("", 17)]), {"x": x, "rows": np.ones((2, 3), np.float32)}),
    }


@pytest.mark.parametrize("op", ["If", "Loop", "Scan"])
def test_subgraphs_reading_outer_scope_values(op):
    model, feeds = _outer_scope_models()[op]
    assert checker_accepts(model)
    m = irlib.load(model)
    scale = next(v for v in m.graph.initializers if v.name == "scale")
    inner_users = [u.node for u in scale.uses() if u.node.graph is not m.graph]
    assert inner_users, "the subgraph's use of the outer initializer is recorded on it"
    exported = irlib.to_onnx(m)
    assert_lossless(model, exported)
    assert checker_accepts(exported)
    assert_same_under_ort(model, exported, feeds)
    if op == "If":
        assert_same_under_ort(model, exported, {**feeds, "c": np.array(False)})


def test_subgraph_reading_a_value_defined_later_in_an_unsorted_graph():
    """The outer producer comes after the If that reads it: loading sorts it first."""
    model, feeds = _outer_scope_models()["If"]
    pre = model.graph.node[0]
    nodes = [model.graph.node[1], pre]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    m = irlib.load(model)
    assert [n.op_type for n in m.graph] == ["Add", "If"]
    exported = irlib.to_onnx(m)
    assert_lossless(model, exported, node_order=False)
    assert_same_under_ort(_outer_scope_models()["If"][0], exported, feeds)


def test_sibling_subgraphs_may_reuse_names():
    """ONNX lets sibling subgraphs use the same value names (here then and else are one graph).
    In the IR every value name is unique in the model, so one branch's values are renamed on
    import; export gives the ONNX names back, since nothing in their scope clashes."""
    f32 = TensorProto.FLOAT
    branch = helper.make_graph([helper.make_node("Neg", ["x"], ["out"])], "branch", [],
                               [helper.make_tensor_value_info("out", f32, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("x", f32, [2]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", f32, [2])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    m = irlib.load(model)
    if_node = next(iter(m.graph))
    names = [if_node.attr(b).outputs[0].name for b in ("then_branch", "else_branch")]
    assert names[0] != names[1] and "out" in names
    exported = irlib.to_onnx(m)
    assert_lossless(model, exported)
    assert checker_accepts(exported)
    assert_same_under_ort(model, exported, {"x": np.array([1, -2], np.float32),
                                            "c": np.array(True)})


def test_renamed_value_keeps_its_new_name_when_the_old_one_is_taken():
    """If a pass gives the ONNX name of a renamed value to another value in its scope, export
    keeps the IR name rather than emit the same name twice."""
    f32 = TensorProto.FLOAT
    branch = helper.make_graph([helper.make_node("Neg", ["x"], ["out"])], "branch", [],
                               [helper.make_tensor_value_info("out", f32, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)], "g",
        [helper.make_tensor_value_info("x", f32, [2]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", f32, [2])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    m = irlib.load(model)
    if_node = next(iter(m.graph))
    renamed = next(if_node.attr(b) for b in ("then_branch", "else_branch")
                   if if_node.attr(b).outputs[0].name != "out")
    new_name = renamed.outputs[0].name
    extra = renamed.append(irlib.Node("Identity", [renamed.outputs[0]]))
    extra.output.name = "out"  # a pass takes the name in that branch
    exported = irlib.to_onnx(m)
    branch_proto = next(a.g for a in exported.graph.node[0].attribute if a.g.node[0].output[0]
                        != "out")
    assert [n.output[0] for n in branch_proto.node] == [new_name, "out"]
    assert checker_accepts(exported)


def test_value_info_of_inputs_and_unknown_values_is_kept():
    """value_info may describe graph inputs, initializers or nothing at all: kept verbatim."""
    model, _ = _outer_scope_models()["If"]
    model.graph.value_info.extend([
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [3], doc_string="about x"),
        helper.make_tensor_value_info("nowhere", TensorProto.INT8, [1]),
        helper.make_tensor_value_info("x2", TensorProto.FLOAT, [3]),
    ])
    assert_lossless(model, round_trip(model))


def test_output_declared_differently_from_value_info():
    """An output's declared type, doc string and metadata may differ from the value_info entry
    that describes the same value; both are kept."""
    f32 = TensorProto.FLOAT
    y_vi = helper.make_tensor_value_info("y", f32, [2], doc_string="as value_info")
    y_vi.metadata_props.extend(meta(where="value_info"))
    y_out = helper.make_tensor_value_info("y", f32, ["n"], doc_string="as output")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", f32, [2])], [y_out], value_info=[y_vi])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    assert_lossless(model, round_trip(model))


def test_untyped_output_stays_untyped():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [onnx.ValueInfoProto(name="y")],
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    assert_lossless(model, round_trip(model))


def test_training_info_and_device_configurations_are_carried():
    model, _ = _outer_scope_models()["If"]
    ti = model.training_info.add()
    ti.algorithm.CopyFrom(helper.make_graph([], "algo", [], []))
    dc = model.configuration.add(name="two", num_devices=2)
    dc.device.extend(["cpu:0", "cpu:1"])
    model.graph.node[0].device_configurations.add(configuration_id="two")
    assert_lossless(model, round_trip(model))


def test_round_trip_does_not_modify_its_input():
    model = kitchen_sink()
    before = model.SerializeToString(deterministic=True)
    m = irlib.load(model)
    irlib.to_onnx(m)
    assert model.SerializeToString(deterministic=True) == before


def test_edited_tensor_metadata_is_exported():
    """An imported tensor whose name, doc string or metadata change is re-emitted, not the
    stale proto."""
    m = irlib.load(kitchen_sink())
    w = next(v for v in m.graph.initializers if v.name == "W").const_value
    w.doc_string = ""
    w.metadata_props["quant"] = "int8"
    exported = irlib.to_onnx(m).graph.initializer
    w_proto = next(t for t in exported if t.name == "W")
    assert not w_proto.HasField("doc_string")
    assert {p.key: p.value for p in w_proto.metadata_props} == {"quant": "int8"}
    np.testing.assert_array_equal(numpy_helper.to_array(w_proto),
                                  np.arange(16, dtype=np.float32).reshape(4, 4))


def test_unknown_element_type_is_a_one_line_error():
    model, _ = _outer_scope_models()["If"]
    model.graph.input[0].type.tensor_type.elem_type = 99
    with pytest.raises(irlib.IRLoadError, match="element type 99") as info:
        irlib.load(model)
    assert "\n" not in str(info.value)


# -- tensors survive bit for bit ------------------------------------------------------------------
#: Every element type and how many bits of an element are significant.
_BITS = {dt: (dt.itemsize_bits if dt.itemsize_bits < 8 else 8 * dt.numpy.itemsize)
         for dt in DType if dt not in (DType.UNDEFINED, DType.STRING)}


@st.composite
def arrays(draw, dtypes=tuple(_BITS) + (DType.STRING,)):
    """A random array of a random ONNX element type, from random bits (NaN payloads, signed
    zeros, subnormals and every sub-byte pattern included)."""
    dt = draw(st.sampled_from(dtypes))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    n = int(np.prod(shape))
    if dt is DType.STRING:
        items = draw(st.lists(st.one_of(st.text(max_size=5), st.binary(max_size=5)),
                              min_size=n, max_size=n))
        arr = np.empty(n, dtype=object)
        arr[:] = items
        return dt, arr.reshape(shape)
    bits = _BITS[dt]
    if dt is DType.BOOL:
        raw = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.uint8)
        return dt, raw.view(np.bool_).reshape(shape)
    nbytes = dt.numpy.itemsize
    data = draw(st.binary(min_size=n * nbytes, max_size=n * nbytes))
    raw = np.frombuffer(data, np.uint8).copy()
    if bits < 8:
        raw &= (1 << bits) - 1  # only the low bits mean something
    return dt, raw.view(dt.numpy).reshape(shape)


def _bits(arr: np.ndarray):
    if arr.dtype == object:
        return [x if isinstance(x, bytes) else x.encode() for x in arr.ravel()], arr.shape
    return arr.tobytes(), arr.shape


def _array_from(proto: onnx.TensorProto) -> np.ndarray:
    """onnx's own decoding (strings as bytes, so non-UTF-8 ones survive)."""
    if proto.data_type == TensorProto.STRING:
        arr = np.empty(len(proto.string_data), object)
        arr[:] = list(proto.string_data)
        return arr.reshape(tuple(proto.dims))
    return numpy_helper.to_array(proto)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays())
def test_random_tensors_survive_a_model_round_trip_bit_exactly(case):
    dt, arr = case
    g = irlib.Graph("g")
    w = g.constant(Tensor(arr, dtype=dt), name="w")
    g.outputs.append(w)
    model = irlib.Model(g, opset_imports={"": 21})
    proto = irlib.to_onnx(model)
    # onnx reads back what we meant ...
    assert _bits(_array_from(proto.graph.initializer[0])) == _bits(arr)
    # ... and so does irlib, from the serialized bytes.
    back = irlib.load(proto.SerializeToString()).graph.initializers[0].const_value
    assert back.dtype is dt and back.shape == arr.shape
    assert _bits(back.numpy()) == _bits(arr)
    # An untouched imported tensor is handed back as it was read.
    assert irlib.to_onnx(irlib.load(proto)) == proto


@settings(max_examples=150, deadline=None)
@given(arrays(dtypes=tuple(dt for dt in _BITS if dt is not DType.BOOL)), st.booleans())
def test_tensor_protos_in_any_storage_field_decode_like_onnx(case, raw):
    """``raw_data`` or the typed fields (``float_data``, ``int32_data`` ...): same numbers."""
    dt, arr = case
    if raw:
        proto = numpy_helper.from_array(arr, "t")
    else:
        proto = helper.make_tensor("t", int(dt), arr.shape, arr.ravel(), raw=False)
    t = Tensor.from_proto(proto)
    expected = numpy_helper.to_array(proto)
    assert t.numpy().dtype == dt.numpy
    assert _bits(t.numpy()) == _bits(expected)
    assert t.raw_bytes() == numpy_helper.from_array(expected).raw_data


def test_string_tensor_with_non_utf8_bytes():
    proto = _string_tensor("s", [b"ok", b"\xff\xfe\x00", "\u00e9".encode()])
    t = Tensor.from_proto(proto)
    assert list(t.numpy()) == ["ok", b"\xff\xfe\x00", "\u00e9"]
    rebuilt = Tensor(t.numpy(), name="s", dtype=DType.STRING).to_proto()
    assert list(rebuilt.string_data) == list(proto.string_data)
    with pytest.raises(TypeError, match="string"):
        t.raw_bytes()


def test_big_endian_arrays_are_stored_little_endian():
    arr = np.arange(4, dtype=">i4")
    t = Tensor(arr)
    assert t.dtype is DType.INT32
    np.testing.assert_array_equal(numpy_helper.to_array(t.to_proto()), np.arange(4))


# -- the whole conformance corpus -------------------------------------------------------------------
def _conformance():
    path = os.path.join(os.path.dirname(__file__), "..", "tools", "conformance_report.py")
    spec = importlib.util.spec_from_file_location("conformance_report", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("conformance_report", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return sys.modules["conformance_report"]


def test_every_corpus_model_round_trips_losslessly_and_keeps_the_checker_verdict():
    """All ~2,000 models of ONNX's backend test corpus, in one test (it takes seconds)."""
    conf = _conformance()
    lossy, rejected, accepted = [], [], 0
    for name in conf.case_names():
        case = conf.load_case(name)
        exported = round_trip(case.model)
        if canonical(case.model) != canonical(exported):
            lossy.append(name)
        if checker_accepts(case.model):
            accepted += 1
            if not checker_accepts(exported):
                rejected.append(name)
    assert not lossy, f"{len(lossy)} models lose information, e.g. {lossy[:5]}"
    assert not rejected, f"the checker rejects {len(rejected)} round trips, e.g. {rejected[:5]}"
    assert accepted > 1900  # the corpus was really read and checked
