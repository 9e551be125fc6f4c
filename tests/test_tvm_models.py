"""Whole models through the TVM backend, aligned with ONNX Runtime: ONNX's light_* models (with
seeded random weights) and, opt-in, the generated model zoo.

The light models ship their weights as ``ConstantOfShape`` fills, which makes every logit equal
and the Softmax output uniform: a comparison of that would prove little. So each weight up to
4M elements becomes a seeded random initializer (vectors in [0.5, 1.5], so BN variances stay
positive; tensors ~N(0, 1/fan_in)), bigger ones keep a ``1/fan_in`` fill, and the logits
feeding the final Softmax become an extra output. The model is compiled at -O2, lowered to
Relax, built and run; the reference is ORT with optimizations off on the original. Tolerance,
as for -O2 on these models under ORT (tests/test_level2.py): rtol 1e-4 with atol scaled to the
output, 1e-5 * max(1, max|reference|) (50-120 layers of float32 accumulate rounding differently in TVM's
loop nests and ORT's MLAS kernels, and -O2 folds batch norms into the weights), and cosine >
0.99999.

Untuned TVM runs these models 9-130x slower than ORT and builds each in 5-40 s, so the default
suite runs the two cheapest (light_squeezenet, light_shufflenet) and the rest are opt-in:
``pytest -m slow tests/test_tvm_models.py`` (about 7 minutes on 2 cores), and
``pytest -m zoo tests/test_tvm_models.py`` for the zoo when ``tools/export_zoo.py`` has run.
The figures are in docs/conformance.md ("TVM backend alignment", tools/bench_tvm.py --align).
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import irlib
from backends.tvm._env import availability

_ok, _why = availability()
if not _ok:
    pytest.skip(_why, allow_module_level=True)

from backends import get_backend  # noqa: E402
from backends.numerics import compare, run_reference  # noqa: E402
from irc.check import random_inputs  # noqa: E402
from irc.compile import compile_model  # noqa: E402

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
LIGHT_MODELS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(LIGHT,
                                                                               "light_*.onnx")))
FAST = {"light_squeezenet", "light_shufflenet"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.environ.get("IRC_ZOO", os.path.join(ROOT, "zoo"))
ZOO_MODELS = sorted(p for p in glob.glob(os.path.join(ZOO, "*.onnx"))
                    if os.path.exists(p[:-5] + ".npz"))


def with_random_weights(proto: onnx.ModelProto, seed: int = 0,
                        max_elements: int = 4_000_000) -> onnx.ModelProto:
    """The model with seeded random weights and its Softmax input as an extra output."""
    rng = np.random.default_rng(seed)
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    shapes = {t.name: numpy_helper.to_array(t) for t in p.graph.initializer}
    nodes, weights = [], []
    for n in p.graph.node:
        shape = shapes.get(n.input[0]) if n.op_type == "ConstantOfShape" and n.input else None
        if shape is None:
            nodes.append(n)
            continue
        fan_in = float(np.prod(shape[1:])) if len(shape) > 1 else 1.0
        if np.prod(shape) > max_elements:
            n.ClearField("attribute")
            n.attribute.append(onnx.helper.make_attribute(
                "value", numpy_helper.from_array(np.array([1.0 / fan_in], np.float32))))
            nodes.append(n)
            continue
        arr = rng.uniform(0.5, 1.5, shape) if len(shape) == 1 else \
            rng.standard_normal(shape) / np.sqrt(fan_in)
        weights.append(numpy_helper.from_array(arr.astype(np.float32), n.output[0]))
    del p.graph.node[:]
    p.graph.node.extend(nodes)
    p.graph.initializer.extend(weights)
    softmax = [n for n in nodes if n.op_type == "Softmax"]
    if softmax:
        p.graph.output.append(onnx.helper.make_tensor_value_info(softmax[-1].input[0],
                                                                 onnx.TensorProto.FLOAT, None))
    return p


def check_on_tvm(proto: onnx.ModelProto, inputs=None, threads: int = 2) -> list:
    """Compile at -O2, run on TVM, compare with ORT (optimizations off) on the original."""
    original = irlib.from_onnx(proto)
    feed = inputs if inputs is not None else random_inputs(original, seed=0)
    ref = run_reference(proto.SerializeToString(), feed)
    optimized = compile_model(irlib.from_onnx(proto), 2).model
    exe = get_backend("tvm").compile(optimized, {"threads": threads})
    got = exe.run({k: v for k, v in feed.items() if k in exe.input_names})
    return [compare(name, r, got[name], rtol=1e-4, atol=1e-5 * max(float(np.abs(r).max()), 1.0))
            for name, r in ref.items()]


def selects(marker: str, markexpr: str) -> bool:
    return re.search(rf"(?<!not )\b{marker}\b", markexpr or "") is not None


def light_params():
    for name in LIGHT_MODELS:
        marks = () if name in FAST else (pytest.mark.slow,)
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(light_params()))
def test_light_model_aligns(name, request):
    if name not in FAST and not selects("slow", request.config.getoption("markexpr")):
        pytest.skip("untuned TVM takes 5-80 s per run of the larger light models:"
                    " opt in with pytest -m slow")
    proto = with_random_weights(onnx.load(os.path.join(LIGHT, name + ".onnx")))
    comps = check_on_tvm(proto)
    bad = [c.summary() for c in comps if not c.aligned]
    assert not bad, f"{name}: {bad}"
    assert comps and all(c.cosine > 0.99999 for c in comps)
    has_softmax = any(n.op_type == "Softmax" for n in proto.graph.node)
    assert len(comps) == (2 if has_softmax else 1)  # the logits were compared too


def test_the_light_models_are_there():
    assert len(LIGHT_MODELS) >= 9 and FAST <= set(LIGHT_MODELS)


def test_random_weights_make_logits_vary():
    proto = with_random_weights(onnx.load(os.path.join(LIGHT, "light_squeezenet.onnx")))
    feed = random_inputs(irlib.from_onnx(proto), seed=0)
    out = run_reference(proto.SerializeToString(), feed)
    logits = out[proto.graph.output[-1].name]
    assert float(np.std(logits)) > 1e-3  # not the uniform output of the constant weights


@pytest.mark.zoo
@pytest.mark.parametrize("path", ZOO_MODELS or [pytest.param(None, marks=pytest.mark.skip(
    reason="zoo models not generated: run tools/export_zoo.py"))],
    ids=lambda p: os.path.basename(p)[:-5] if p else "no-zoo")
def test_zoo_model_aligns(path, request):
    if not selects("zoo", request.config.getoption("markexpr")):
        pytest.skip("zoo tests are opt-in (minutes per model): run pytest -m zoo")
    with np.load(path[:-5] + ".npz") as data:
        feed = {k: data[k] for k in data.files}
    comps = check_on_tvm(onnx.load(path), feed)
    bad = [c.summary() for c in comps if not c.aligned]
    assert not bad, f"{os.path.basename(path)}: {bad}"
