"""docs/writing-a-pass.md, executed: every ```python block of the page runs, in order, in one
module; then its passes are used the way the page says (pipelines, rules on a model built here and
checked against ONNX Runtime, the ``irc compile --passes`` command line).

The page's ``@register_pass`` calls go into a scratch copy of the registry, so its ``my-*``
passes never show up in ``irc passes`` or in other tests.
"""

from __future__ import annotations

import pathlib
import re
import sys
import types

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import irlib
import passes
import passes.registry
from helpers import assert_valid, make_model
from passes import PassManager, apply_patterns, get_pass

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "writing-a-pass.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


@pytest.fixture
def doc(monkeypatch):
    """The page's code as a module (``doc.MulByOne`` ...), its passes registered for this test."""
    passes.all_passes()
    monkeypatch.setattr(passes.registry, "_registry", dict(passes.registry._registry))
    module = types.ModuleType("writing_a_pass_doc")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 7, "the page lost code blocks"
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC}:block{i + 1}", "exec"), module.__dict__)
    return module


def run_ort(model: irlib.Model, feeds: dict) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(irlib.to_onnx(model).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def dense_model() -> irlib.Model:
    """relu((x @ W + b) * 1) @ W2 + b2, then * [1, 1] twice (once broadcasting: not removable),
    with shapes only on inputs and outputs."""
    rng = np.random.default_rng(0)
    inits = {
        "W": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "W2": rng.standard_normal((4, 2)).astype(np.float32),
        "b2": rng.standard_normal(2).astype(np.float32),
        "one": np.ones((), np.float32),
        "ones": np.ones((2, 1, 1), np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["b", "h"], ["hb"]),           # bias first: commutative match
        helper.make_node("Mul", ["hb", "one"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r"]),
        helper.make_node("MatMul", ["r", "W2"], ["o"]),
        helper.make_node("Add", ["o", "b2"], ["y"]),
        helper.make_node("Mul", ["y", "ones"], ["z"]),         # [2,1,1] broadcast: kept
    ]
    proto = make_model(nodes, inputs=[("x", TensorProto.FLOAT, [5, 3])],
                       outputs=[("y", TensorProto.FLOAT, [5, 2]), ("z", TensorProto.FLOAT, [2, 5, 2])],
                       initializers=inits)
    return assert_valid(irlib.from_onnx(proto))


def test_every_snippet_runs(doc):
    for name in ("my-drop-doc-strings", "my-name-nodes", "my-peephole", "my-simplify-sums",
                 "my-report-fanout"):
        assert get_pass(name).description(), name
    doc.test_my_simplify_sums()  # the page's own test


def test_the_two_rules_against_onnxruntime(doc):
    """The page's MulByOne and MatMulAddToGemm on a small dense network."""
    model = dense_model()
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)}
    want = run_ort(model, feeds)
    PassManager("infer-shapes").run(model)
    stats = apply_patterns(model, [doc.MulByOne, doc.MatMulAddToGemm])
    assert stats.applied == {"my-mul-by-one": 1, "my-matmul-add-to-gemm": 2}
    assert stats.refused["my-mul-by-one"] == {"output type not known to equal x's": 1}
    assert [n.op_type for n in model.graph] == ["Gemm", "Relu", "Gemm", "Mul"]
    assert all(n.meta.get("irc.rule") == "my-matmul-add-to-gemm"
               for n in model.graph if n.op_type == "Gemm")
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert_valid(model)
    irlib.verify(model)
    import onnx

    onnx.checker.check_model(irlib.to_onnx(model), full_check=True)
    for got, expected in zip(run_ort(model, feeds), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_each_rule_refuses_what_it_must(doc):
    """Without shape inference only what the inputs' declared shapes prove is rewritten (x @ W + b);
    the rest is refused, with the reason counted per rule."""
    model = dense_model()
    stats = apply_patterns(model, [doc.MulByOne, doc.MatMulAddToGemm])
    assert stats.applied == {"my-matmul-add-to-gemm": 1}
    assert stats.refused == {
        "my-mul-by-one": {"output type not known to equal x's": 2},
        "my-matmul-add-to-gemm": {"MatMul operands not known to be 2-D": 1},  # r @ W2: r unknown
    }
    assert [n.op_type for n in model.graph] == ["Gemm", "Mul", "Relu", "MatMul", "Add", "Mul"]


def test_options_from_pipeline_text(doc):
    model = dense_model()
    report = PassManager("my-name-nodes{prefix=layer,start=1},my-report-fanout").run(model)
    assert [n.name for n in model.graph][:2] == ["layer1", "layer2"]
    assert report.passes[0].stats == {"named": 7}
    assert report.passes[1].stats == {"max-fanout": 1}
    with pytest.raises(passes.PassError, match="pass 'my-name-nodes' has no option 'prefx'"):
        PassManager("my-name-nodes{prefx=layer}")


def test_irc_compile_runs_the_pass_by_name(doc, tmp_path):
    from irc.cli import main

    src, out = tmp_path / "dense.onnx", tmp_path / "out.onnx"
    irlib.save(dense_model(), str(src))
    result = CliRunner().invoke(main, ["compile", str(src), "-o", str(out), "-q",
                                       "--passes", "infer-shapes,my-peephole,dce"])
    assert result.exit_code == 0, result.output
    compiled = irlib.load(str(out))
    assert [n.op_type for n in compiled.graph] == ["Gemm", "Relu", "Gemm", "Mul"]
    feeds = {"x": np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)}
    for got, expected in zip(run_ort(compiled, feeds), run_ort(dense_model(), feeds)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    listing = CliRunner().invoke(main, ["passes"])
    assert listing.exit_code == 0, listing.output
    assert "my-peephole" in listing.output and "Remove multiplications by one" in listing.output
