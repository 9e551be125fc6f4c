"""Text in, text out: a model in ONNX's textual syntax, a pipeline, and the IR text expected after.

Each case reads like a filecheck test: the input (``onnx.parser`` syntax), the pipeline string,
and ``irlib.format_graph`` of the result, compared whole. A second run of the pipeline must
change nothing.
"""

from __future__ import annotations

import textwrap

import pytest

import irlib
from helpers import assert_valid, parse_ir
from passes import PassManager

CASES = {
    "identity-chain-and-dead-branch": (
        "fixpoint(eliminate-identity,dce)",
        """
        main (float[2,3] x) => (float[2,3] y) {
            a = Identity(x)
            b = Relu(a)
            c = Dropout(b)
            unused = Sigmoid(c)
            y = Identity(c)
        }""",
        """
        graph main(%x: f32[2,3]) {
          %y: f32[2,3] = Relu(%x)
          return %y
        }"""),
    "inverse-transposes": (
        "infer-shapes,eliminate-identity,dce",
        """
        main (float[2,3,4] x) => (float[2,3,4] y) {
            a = Transpose <perm=[2,0,1]> (x)
            b = Transpose <perm=[1,2,0]> (a)
            y = Tanh(b)
        }""",
        """
        graph main(%x: f32[2,3,4]) {
          %y: f32[2,3,4] = Tanh(%x)
          return %y
        }"""),
    "mul-by-one-needs-equal-types": (
        "infer-shapes,eliminate-identity,dce",
        """
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2,3] x) => (float[2,3] y, float[2,2,3] z) <float one = {1.0}, float[2,1,1] ones = {1.0, 1.0}> {
            a = Mul(x, one)
            y = Relu(a)
            z = Mul(x, ones)
        }""",
        """
        graph main(%x: f32[2,3]) {
          %ones: f32[2,1,1] = const [1.0, 1.0]
          %y: f32[2,3] = Relu(%x)
          %z: f32[2,2,3] = Mul(%x, %ones)
          return %y, %z
        }"""),
    "dce-keeps-outputs-and-used-initializers": (
        "dce",
        """
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2] x) => (float[2] y, float[2] t) <float[2] w = {1.0, 2.0}, float[2] v = {3.0, 4.0}> {
            t = Mul(x, w)
            dead = Add(t, v)
            y = Neg(t)
        }""",
        """
        graph main(%x: f32[2]) {
          %w: f32[2] = const [1.0, 2.0]
          %t: f32[2] = Mul(%x, %w)
          %y: f32[2] = Neg(%t)
          return %y, %t
        }"""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pipeline_text_in_text_out(case):
    pipeline, source, expected = CASES[case]
    model = assert_valid(parse_ir(textwrap.dedent(source)))
    PassManager(pipeline).run(model)
    assert irlib.format_graph(model.graph) == textwrap.dedent(expected).lstrip("\n") + "\n"
    again = PassManager(pipeline.replace("infer-shapes,", "")).run(model)
    assert not again.changed
