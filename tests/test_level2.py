"""-O2 end to end: cleanup, the portable fusions, cleanup again, on whole models.

- ``examples/tiny_cnn.onnx``: the op histogram after -O2 is pinned, outputs match ORT's.
- ONNX's own light models (``onnx/backend/test/data/light``): every output of every model agrees
  with ONNX Runtime on the original, and with the reference output stored next to the model (its
  input is the deterministic ``arange`` tensor ONNX's backend runner feeds).
- The same light models with their ``ConstantOfShape`` weights replaced by seeded random
  initializers ("frozen"), so that Conv+BN, Conv+Mul, Conv+Add and MatMul+Add fusions really fire
  on real architectures; the logits (Softmax input) are compared too, since a Softmax over
  near-uniform logits would hide a mistake.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import irlib
from passes import PassManager, level_pipeline
from test_fuse_support import ort_run, random_feeds

ROOT = Path(__file__).resolve().parents[1]
LIGHT = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(p.stem for p in LIGHT.glob("light_*.onnx"))


def run_o2(proto: onnx.ModelProto):
    """-O2 on ``proto``; returns the IR model, the exported proto and the report."""
    model = irlib.from_onnx(proto)
    report = PassManager(level_pipeline(2)).run(model)
    irlib.verify(model)
    out = irlib.to_onnx(model)
    onnx.checker.check_model(out, full_check=True)
    return model, out, report


def histogram(model) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in model.graph).items()))


def assert_outputs_match(expected, got, rtol, atol, names=None):
    assert len(expected) == len(got)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert e.shape == g.shape and e.dtype == g.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol,
                                   err_msg=f"output {names[i] if names else i}")


# -- tiny_cnn --------------------------------------------------------------------------------

def test_tiny_cnn_histogram_and_outputs():
    proto = onnx.load(str(ROOT / "examples" / "tiny_cnn.onnx"))
    model_before = irlib.from_onnx(proto)
    model, out, report = run_o2(proto)
    assert histogram(model_before) == {
        "Add": 2, "BatchNormalization": 4, "Conv": 4, "Dropout": 1, "Flatten": 1, "Gemm": 1,
        "GlobalAveragePool": 1, "Identity": 1, "MatMul": 1, "MaxPool": 1, "Relu": 5,
        "Transpose": 2}
    assert histogram(model) == {
        "Add": 1, "Conv": 4, "Flatten": 1, "Gemm": 2, "GlobalAveragePool": 1, "MaxPool": 1,
        "Relu": 5}
    applied = collections.Counter()
    for r in report.passes:
        applied.update({k: v for k, v in r.stats.items() if k.startswith("applied:")})
    assert applied["applied:conv-bn"] == 4 and applied["applied:matmul-add-to-gemm"] == 1
    # Conv+BN folding rounds W*s once in fp32 (see test_fuse_conv_bn.TOL): rtol 1e-5, atol 1e-5.
    feeds = random_feeds(proto, dim=3)
    assert_outputs_match(ort_run(proto, feeds), ort_run(out, feeds), rtol=1e-5, atol=1e-5)


def test_o2_is_idempotent_on_tiny_cnn():
    proto = onnx.load(str(ROOT / "examples" / "tiny_cnn.onnx"))
    model, out, _ = run_o2(proto)
    report = PassManager(level_pipeline(2)).run(model)
    assert not report.changed, [r.name for r in report.passes if r.changed]


def test_o2_contains_the_fusions_between_two_cleanups():
    from passes import format_pipeline, level_pipeline_text

    text = format_pipeline(level_pipeline(2))
    for name in ("fuse-conv-bn", "fuse-gemm-bn", "fuse-conv-add", "fuse-conv-mul",
                 "fuse-matmul-add", "fold-transpose-into-gemm", "fuse-pad-into-conv",
                 "fold-scalar-chains"):
        assert name in text
    assert level_pipeline_text(2).startswith(level_pipeline_text(1))
    assert level_pipeline_text(2).count(level_pipeline_text(1)) == 2  # cleanup after fusions too
    assert "fuse-conv-bn" not in level_pipeline_text(1)


# -- ONNX light models ----------------------------------------------------------------------

def backend_feeds(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The input ONNX's backend runner generates for light models (arange(n) / n)."""
    inits = {t.name for t in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        feeds[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_outputs_align(name):
    proto = onnx.load(str(LIGHT / f"{name}.onnx"))
    _, out, _ = run_o2(proto)
    feeds = backend_feeds(proto)
    expected = ort_run(proto, feeds)
    got = ort_run(out, feeds)
    names = [o.name for o in proto.graph.output]
    assert_outputs_match(expected, got, rtol=1e-5, atol=1e-6, names=names)
    ref = LIGHT / f"{name}_output_0.pb"
    stored = numpy_helper.to_array(onnx.load_tensor(str(ref)))
    # The stored reference comes from ONNX's ReferenceEvaluator: the backend suite's model
    # tolerance (rtol 1e-3, atol 1e-7) applies.
    np.testing.assert_allclose(got[0], stored, rtol=1e-3, atol=1e-7)


def freeze(proto: onnx.ModelProto, seed: int = 0, max_elements: int = 300_000) -> onnx.ModelProto:
    """The light model with real weights: each ``ConstantOfShape`` of an initializer shape (up to
    ``max_elements``, or 4M for a Gemm weight so the logits vary) becomes a seeded random
    initializer (vectors in [0.5, 1.5], so BN variances are positive; tensors ~N(0, 1/fan_in)),
    initializers stop being graph inputs (IR 3 lists them as inputs, which makes them
    overridable, hence not constants) and the logits feeding the final Softmax become an extra
    output. Bigger weights stay ``ConstantOfShape`` (not constants: their layers are not fused),
    refilled with ``1/fan_in`` so activations stay in range, which keeps the test fast."""
    rng = np.random.default_rng(seed)
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    shapes = {t.name: numpy_helper.to_array(t) for t in p.graph.initializer}
    gemm_weights = {n.input[1] for n in p.graph.node if n.op_type == "Gemm"}
    nodes, weights = [], []
    for n in p.graph.node:
        shape = shapes.get(n.input[0]) if n.op_type == "ConstantOfShape" and n.input else None
        limit = 4_000_000 if n.output[0] in gemm_weights else max_elements
        if shape is None:
            nodes.append(n)
            continue
        if np.prod(shape) > limit:  # stays computed, filled with 1/fan_in (a gain of about 1)
            fill = 1.0 / float(np.prod(shape[1:])) if len(shape) > 1 else 1.0
            n.ClearField("attribute")
            n.attribute.append(onnx.helper.make_attribute(
                "value", numpy_helper.from_array(np.array([fill], np.float32))))
            nodes.append(n)
            continue
        if len(shape) == 1:
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            arr = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        weights.append(numpy_helper.from_array(arr.astype(np.float32), n.output[0]))
    del p.graph.node[:]
    p.graph.node.extend(nodes)
    used = {i for n in p.graph.node for i in n.input}
    kept = [t for t in p.graph.initializer if t.name in used] + weights
    del p.graph.initializer[:]
    p.graph.initializer.extend(kept)
    names = {t.name for t in kept}
    inputs = [i for i in p.graph.input if i.name not in names]
    del p.graph.input[:]
    p.graph.input.extend(inputs)
    softmax = [n for n in p.graph.node if n.op_type == "Softmax"]
    if softmax:
        p.graph.output.append(onnx.ValueInfoProto(name=softmax[-1].input[0]))
    p.ir_version = 8
    return p


FROZEN = {  # model -> fusions that must fire on it
    "light_resnet50": {"applied:conv-bn"},
    "light_inception_v2": {"applied:conv-bn", "applied:conv-mul-scale", "applied:conv-add-bias"},
    "light_shufflenet": {"applied:conv-bn"},
}


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_frozen_light_model_fuses_and_aligns(name):
    proto = freeze(onnx.load(str(LIGHT / f"{name}.onnx")))
    before = histogram(irlib.from_onnx(proto))
    model, out, report = run_o2(proto)
    applied = collections.Counter()
    for r in report.passes:
        applied.update({k: v for k, v in r.stats.items() if k.startswith("applied:")})
    assert FROZEN[name] <= {k for k, v in applied.items() if v}, dict(applied)
    assert sum(histogram(model).values()) < sum(before.values())
    feeds = random_feeds(proto)
    expected, got = ort_run(proto, feeds), ort_run(out, feeds)
    logits = expected[-1].astype(np.float64)
    assert logits.std() > 1e-3, "degenerate logits: the comparison would prove nothing"
    # 50-120 folded layers in fp32, each rounding W*s once: rtol 1e-4 with atol scaled to the
    # logits' magnitude (1e-5 of their largest value).
    atol = 1e-5 * float(np.abs(logits).max())
    assert_outputs_match(expected, got, rtol=1e-4, atol=atol)
