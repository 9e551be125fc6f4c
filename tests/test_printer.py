"""The printed form of models: ONNX text in (``onnx.parser`` syntax), IR text out."""

from __future__ import annotations

import textwrap

import numpy as np
from onnx import TensorProto, helper

import irlib
from irlib import DType, Graph, Node, Tensor, TensorType, Value
from helpers import make_model, parse_ir


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_a_small_model():
    model = parse_ir("""
        <ir_version: 8, opset_import: ["" : 17], producer_name: "test", producer_version: "1.0">
        main (float[N,3,8,8] x, float[4,3,3,3] w) => (float[N,4,8,8] y) {
            c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w)
            y = LeakyRelu <alpha = 0.1> (c)
        }
    """)
    assert irlib.format_model(model) == expect("""
        model ir_version=8 opsets=[ai.onnx:17] producer="test 1.0"
        graph main(%x: f32[N,3,8,8], %w: f32[4,3,3,3]) {
          %c = Conv(%x, %w) {kernel_shape=[3,3], pads=[1,1,1,1]}
          %y: f32[N,4,8,8] = LeakyRelu(%c) {alpha=0.1}
          return %y
        }
    """)


def test_small_constants_show_their_values_and_large_ones_do_not():
    model = parse_ir("""
        main (float[2] x) => (float[2] y)
        <float[2] w = {0.1, 2.0}, int64 k = {3}, double[1] d = {0.1}, bool[2] m = {1, 0},
         float[9] big = {1, 2, 3, 4, 5, 6, 7, 8, 9}> {
            y = Add(x, w)
        }
    """)
    assert irlib.format_graph(model.graph) == expect("""
        graph main(%x: f32[2]) {
          %w: f32[2] = const [0.1, 2.0]
          %k: i64[] = const 3
          %d: f64[1] = const [0.1]
          %m: bool[2] = const [true, false]
          %big: f32[9] = const
          %y: f32[2] = Add(%x, %w)
          return %y
        }
    """)


def test_an_input_with_a_default_value():
    proto = make_model(
        [helper.make_node("Add", ["x", "bias"], ["y"])],
        inputs=[("x", TensorProto.FLOAT, [2]), ("bias", TensorProto.FLOAT, [2])],
        outputs=[("y", TensorProto.FLOAT, [2])],
        initializers={"bias": np.zeros(2, np.float32)},
    )
    text = irlib.format_graph(irlib.from_onnx(proto).graph)
    assert "  %bias: f32[2] = const [0.0, 0.0] (input default)\n" in text


def test_multiple_outputs_optional_inputs_and_domains():
    model = parse_ir("""
        <ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
        main (float[N,4] x, int64[2] sizes) => (float[N,2] a, float[N,2] b, float r, float g) {
            a, b = Split <axis = 1> (x)
            r = Resize(x, , , sizes)
            g = com.microsoft.Gelu(x)
        }
    """)
    assert irlib.format_graph(model.graph) == expect("""
        graph main(%x: f32[N,4], %sizes: i64[2]) {
          %a: f32[N,2], %b: f32[N,2] = Split(%x) {axis=1}
          %r: f32[] = Resize(%x, _, _, %sizes)
          %g: f32[] = com.microsoft.Gelu(%x)
          return %a, %b, %r, %g
        }
    """)


def test_an_optional_output_that_is_not_produced():
    x = Value("x", TensorType(DType.FLOAT, (2,)))
    g = Graph("g", inputs=[x])
    drop = g.append(Node("Dropout", [x], outputs=["y", ""]))
    g.outputs.append(drop.outputs[0])
    assert irlib.format_node(drop) == "%y, _ = Dropout(%x)"


def test_subgraphs_are_printed_under_the_node_holding_them():
    model = parse_ir("""
        main (bool c, float[2] x) => (float[2] y) {
            t = Relu(x)
            y = If(c) <then_branch = then_g () => (float[2] a) { a = Neg(t) },
                       else_branch = else_g () => (float[2] b) { b = Identity(x) }>
        }
    """)
    assert irlib.format_graph(model.graph) == expect("""
        graph main(%c: bool[], %x: f32[2]) {
          %t = Relu(%x)
          %y: f32[2] = If(%c) {then_branch=graph then_g, else_branch=graph else_g}
            then_branch: graph then_g() {
              %a: f32[2] = Neg(%t)
              return %a
            }
            else_branch: graph else_g() {
              %b: f32[2] = Identity(%x)
              return %b
            }
          return %y
        }
    """)


def test_a_loop_body_with_its_inputs():
    model = parse_ir("""
        main (int64 n, float[2] x) => (float[2] y) {
            y = Loop(n, , x) <body = body (int64 i, bool cond, float[2] acc) => (bool c2, float[2] out) {
                c2 = Identity(cond)
                out = Add(acc, x)
            }>
        }
    """)
    assert irlib.format_graph(model.graph) == expect("""
        graph main(%n: i64[], %x: f32[2]) {
          %y: f32[2] = Loop(%n, _, %x) {body=graph body}
            body: graph body(%i: i64[], %cond: bool[], %acc: f32[2]) {
              %c2: bool[] = Identity(%cond)
              %out: f32[2] = Add(%acc, %x)
              return %c2, %out
            }
          return %y
        }
    """)


def test_attribute_kinds():
    x = Value("x", TensorType(DType.FLOAT, (2,)))
    g = Graph("g", inputs=[x])
    node = g.append(Node("Custom", [x], {
        "f": 0.5, "i": 3, "s": 'say "hi"', "fs": [0.1, 2.0], "is": [1, 2], "ss": ["a", "b"],
        "t": Tensor(np.array([1, 2], np.int64)), "ts": [Tensor(np.zeros((2, 3), np.float32))],
    }, domain="my.ops", outputs=["y"]))
    assert irlib.format_node(node) == (
        '%y = my.ops.Custom(%x) {f=0.5, i=3, s="say \\"hi\\"", fs=[0.1,2.0], is=[1,2],'
        ' ss=["a","b"], t=tensor i64[2] [1, 2], ts=[tensor f32[2,3]]}')


def test_show_names_adds_the_node_name():
    x = Value("x", TensorType(DType.FLOAT, (2,)))
    g = Graph("g", inputs=[x])
    node = g.append(Node("Relu", [x], name="encoder/relu"))
    assert irlib.format_node(node) == "%encoder_relu_0 = Relu(%x)"
    assert irlib.format_node(node, show_names=True) == "%encoder_relu_0 = Relu(%x)  # encoder/relu"
