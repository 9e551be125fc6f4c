"""Build ``examples/tiny_cnn.onnx``: a small, real CNN used by the README, the tests and the docs.

The model is generated deterministically (seeded weights, fixed names), so running this script
again gives the same bytes; a test checks that the committed file matches.

    python tools/make_example.py                 # writes examples/tiny_cnn.onnx
    python tools/make_example.py -o /tmp/x.onnx

Architecture (input ``x: f32[N,3,32,32]``, output ``logits: f32[N,10]``)::

    stem    Conv 3->16 3x3 + BatchNormalization + Relu, Identity
    block   Conv 16->16 + BN + Relu, Conv 16->16 + BN, Add(residual), Relu, Dropout
    down    MaxPool 2x2, Conv 16->32 + BN + Relu
    layout  Transpose NCHW->NHWC, Transpose NHWC->NCHW (a pair that cancels)
    head    GlobalAveragePool, Flatten, MatMul 32->64 + Add(bias), Relu, Gemm 64->10

It deliberately holds what later optimization passes look for: an Identity, an inference-mode
Dropout, Conv followed by BatchNormalization, MatMul followed by Add, and a Transpose pair.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240517
OPSET = 17
IR_VERSION = 8
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                           "tiny_cnn.onnx")


class _Builder:
    """Collects nodes and seeded initializers; names are fixed so the output is reproducible."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else float(np.sqrt(2.0 / fan_in))
        arr = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv_bn(self, prefix: str, x: str, cin: int, cout: int, relu: bool = True) -> str:
        w = self.weight(f"{prefix}.conv.weight", (cout, cin, 3, 3))
        y = self.node("Conv", [x, w], f"{prefix}.conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                      strides=[1, 1])
        gamma = self.const(f"{prefix}.bn.scale",
                           (1.0 + 0.1 * self.rng.standard_normal(cout)).astype(np.float32))
        beta = self.const(f"{prefix}.bn.bias", (0.1 * self.rng.standard_normal(cout)).astype(np.float32))
        mean = self.const(f"{prefix}.bn.mean", (0.1 * self.rng.standard_normal(cout)).astype(np.float32))
        var = self.const(f"{prefix}.bn.var",
                         (1.0 + 0.2 * self.rng.random(cout)).astype(np.float32))
        y = self.node("BatchNormalization", [y, gamma, beta, mean, var], f"{prefix}.bn",
                      epsilon=1e-5, momentum=0.9)
        if relu:
            y = self.node("Relu", [y], f"{prefix}.relu")
        return y


def build(seed: int = SEED) -> onnx.ModelProto:
    """The tiny CNN as a ``ModelProto`` (opset 17, IR version 8), shape-inferred."""
    b = _Builder(seed)
    x = "x"
    y = b.conv_bn("stem", x, 3, 16)
    y = b.node("Identity", [y], "stem.identity")
    skip = y
    y = b.conv_bn("block1.a", y, 16, 16)
    y = b.conv_bn("block1.b", y, 16, 16, relu=False)
    y = b.node("Add", [y, skip], "block1.add")
    y = b.node("Relu", [y], "block1.relu")
    y = b.node("Dropout", [y], "block1.dropout")  # ratio 0.5, inference mode: a no-op
    y = b.node("MaxPool", [y], "down.pool", kernel_shape=[2, 2], strides=[2, 2])
    y = b.conv_bn("down", y, 16, 32)
    y = b.node("Transpose", [y], "layout.to_nhwc", perm=[0, 2, 3, 1])
    y = b.node("Transpose", [y], "layout.to_nchw", perm=[0, 3, 1, 2])
    y = b.node("GlobalAveragePool", [y], "head.gap")
    y = b.node("Flatten", [y], "head.flatten", axis=1)
    w1 = b.weight("head.fc1.weight", (32, 64), scale=float(np.sqrt(2.0 / 32)))
    bias1 = b.const("head.fc1.bias", (0.01 * b.rng.standard_normal(64)).astype(np.float32))
    y = b.node("MatMul", [y, w1], "head.fc1.matmul")
    y = b.node("Add", [y, bias1], "head.fc1.add")
    y = b.node("Relu", [y], "head.fc1.relu")
    w2 = b.weight("head.fc2.weight", (10, 64))
    bias2 = b.const("head.fc2.bias", (0.01 * b.rng.standard_normal(10)).astype(np.float32))
    b.nodes.append(helper.make_node("Gemm", [y, w2, bias2], ["logits"], name="head.fc2",
                                    transB=1))
    graph = helper.make_graph(
        b.nodes, "tiny_cnn",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="irc-make-example", producer_version="1",
        doc_string="tiny_cnn: irc's bundled example model (tools/make_example.py)",
    )
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=DEFAULT_OUT, help="where to write the model")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    data = build(args.seed).SerializeToString(deterministic=True)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.output)
    print(f"wrote {os.path.normpath(args.output)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
