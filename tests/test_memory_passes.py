"""The memory-plan analysis, the reorder-for-memory transform, plan_model and the plan JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import parse_ir
from hypothesis import given, settings

import irlib
import passes.transforms  # noqa: F401
from passes import PassManager, run_passes
from passes.memory import MemoryPlan, check_plan, compute_liveness, plan_model

from test_memory_strategies import random_dags

BRANCHY = """
    main (float[1,8,32,32] x) => (float[1,128,8,8] y) {
        a1 = Concat <axis = 1> (x, x, x, x)
        b1 = Concat <axis = 1> (x, x, x, x)
        c1 = Concat <axis = 1> (x, x, x, x)
        d1 = Concat <axis = 1> (x, x, x, x)
        a2 = MaxPool <kernel_shape = [4, 4], strides = [4, 4]> (a1)
        b2 = AveragePool <kernel_shape = [4, 4], strides = [4, 4]> (b1)
        c2 = MaxPool <kernel_shape = [2, 2], strides = [4, 4]> (c1)
        d2 = AveragePool <kernel_shape = [4, 4], strides = [4, 4], pads = [1, 1, 0, 0]> (d1)
        y = Concat <axis = 1> (a2, b2, c2, d2)
    }
"""


def test_memory_plan_pass_adds_the_report_section_and_keeps_the_plan(verified):
    model = verified(irlib.load("examples/tiny_cnn.onnx"))
    report = run_passes(model, "infer-shapes,memory-plan{strategy=best-fit,alignment=128,shapes=[N=2]}")
    memory = report.sections["memory"]
    for key in ("naive_bytes", "lower_bound_bytes", "peak_bytes", "inplace_count", "strategy",
                "alignment", "peaks"):
        assert key in memory
    assert memory["strategy"] == "best-fit" and memory["alignment"] == 128
    assert memory["lower_bound_bytes"] <= memory["peak_bytes"] < memory["naive_bytes"]
    plan = model.meta["memory_plan"]
    assert isinstance(plan, MemoryPlan) and "memory_plan" not in report.sections  # JSON only there
    assert plan.arena_bytes == memory["peak_bytes"]
    record = report.passes[-1]
    assert record.name == "memory-plan" and not record.changed
    assert record.stats["peak_bytes"] == plan.arena_bytes


def test_memory_plan_pass_reports_an_unbound_dim_in_one_line():
    model = irlib.load("examples/tiny_cnn.onnx")
    with pytest.raises(Exception, match=r"dim 0 is the symbol 'N'") as info:
        run_passes(model, "infer-shapes,memory-plan")
    assert "\n" not in str(info.value)
    # As the -O levels run it: skipped and reported, the pipeline goes on.
    report = run_passes(model, "reorder-for-memory{skip-dynamic=true},memory-plan{skip-dynamic=true}")
    assert "dim 0 is the symbol 'N'" in report.sections["memory"]["skipped"]
    assert [r.stats.get("skipped") for r in report.passes] == [1, 1]


def test_plan_json_contract(tmp_path):
    model = irlib.load("examples/tiny_cnn.onnx")
    plan, summary = plan_model(model, shapes="N=1")
    data = json.loads(json.dumps(plan.to_json()))
    assert {"alignment", "arena_bytes", "order", "tensors"} <= set(data)
    assert data["alignment"] == 64 and data["arena_bytes"] == summary["peak_bytes"]
    assert data["order"] == [n.name or n.op_type for n in model.graph]  # tiny_cnn names its nodes
    graph_outputs = {v.name for v in model.graph.outputs}
    for t in data["tensors"]:
        assert {"name", "offset", "size", "first", "last"} <= set(t)
        assert 0 <= t["first"] <= t["last"] < len(data["order"])
        if t["name"] in graph_outputs:
            assert t["last"] == len(data["order"]) - 1
    back = MemoryPlan.from_json(data, model)
    assert check_plan(back) == []
    assert [(t.value, t.offset) for t in back.tensors] == [(t.value, t.offset) for t in plan.tensors]


def test_plan_model_summary_keys_and_stored_order():
    model = irlib.load("examples/tiny_cnn.onnx")
    before = [n.name for n in model.graph]
    plan, summary = plan_model(model, shapes={"N": 1})
    assert [n.name for n in model.graph] == before  # planned as stored
    for key in ("naive_bytes", "lower_bound_bytes", "peak_bytes", "peak_over_lower_bound",
                "naive_over_peak", "inplace_count", "strategy"):
        assert key in summary
    assert summary["peak_over_lower_bound"] == pytest.approx(plan.arena_bytes / plan.lower_bound_bytes, abs=1e-4)
    assert summary["naive_over_peak"] > 1
    assert summary["inplace_count"] > 0
    # -O1 removes tiny_cnn's Identity node before planning.
    _, s1 = plan_model(irlib.load("examples/tiny_cnn.onnx"), level=1, shapes={"N": 1})
    assert s1["naive_bytes"] < summary["naive_bytes"]


def test_reorder_lowers_the_lower_bound_of_a_branchy_model(verified):
    model = verified(parse_ir(BRANCHY))
    run_passes(model, "infer-shapes")
    before = compute_liveness(model).lower_bound_bytes
    report = run_passes(model, "reorder-for-memory")
    stats = report.passes[-1].stats
    after = compute_liveness(model).lower_bound_bytes
    assert stats["lower_bound_before"] == before and stats["lower_bound_after"] == after
    assert after < before and report.passes[-1].changed
    # Each branch is now finished (its big tensor pooled) before the next one starts.
    ops = [n.op_type for n in model.graph]
    assert ops == ["Concat", "MaxPool", "Concat", "AveragePool"] * 2 + ["Concat"]
    # A second run finds nothing better.
    again = run_passes(model, "reorder-for-memory").passes[-1]
    assert not again.changed and again.stats["nodes_moved"] == 0


def test_reorder_keeps_the_numbers(verified):
    from backends.reference import ReferenceExecutor

    model = verified(parse_ir(BRANCHY))
    x = np.random.default_rng(0).standard_normal((1, 8, 32, 32)).astype(np.float32)
    expected = ReferenceExecutor(model).run({"x": x})
    plan, _ = plan_model(model, reorder=True)
    got = ReferenceExecutor(model, plan).run({"x": x})
    np.testing.assert_array_equal(got["y"], expected["y"])


@settings(max_examples=40, deadline=None)
@given(model=random_dags())
def test_reorder_never_raises_the_lower_bound_and_keeps_a_valid_order(model):
    before = compute_liveness(model).lower_bound_bytes
    outputs = list(model.graph.outputs)
    report = PassManager("reorder-for-memory").run(model)  # verifies after the pass
    irlib.verify(model)
    after = compute_liveness(model).lower_bound_bytes
    assert after <= before
    assert report.passes[-1].stats["lower_bound_after"] == after
    assert model.graph.outputs == outputs
