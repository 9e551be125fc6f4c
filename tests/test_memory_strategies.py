"""Offset strategies: each finds a sound placement; alignment is respected; on random DAGs no two
tensors live at the same time overlap and the arena is never below the lower bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irlib import DType, Graph, Model, Node, TensorType, Value
from passes.memory import (
    STRATEGIES, Buffer, MemoryPlanError, align, arena_size, check_plan, compute_liveness,
    lower_bound, plan_memory,
)
from passes.memory.strategies import greedy_by_size, greedy_repair


def buffers(*specs) -> list[Buffer]:
    """``(size, first, last)`` triples -> buffers numbered in order."""
    return [Buffer(i, s, f, l) for i, (s, f, l) in enumerate(specs)]


def assert_sound(bufs, offsets):
    for a in bufs:
        for b in bufs:
            if a.id < b.id and a.size and b.size and a.overlaps_in_time(b):
                oa, ob = offsets[a.id], offsets[b.id]
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b, oa, ob)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_chain_reuses_memory_and_reaches_the_lower_bound(name):
    # a -> b -> c -> d: only two neighbours are live at a time.
    bufs = buffers((64, 0, 1), (128, 1, 2), (64, 2, 3), (128, 3, 3))
    offsets = STRATEGIES[name](bufs)
    assert_sound(bufs, offsets)
    assert arena_size(bufs, offsets) == lower_bound(bufs) == 192


def test_greedy_by_size_places_largest_first_in_the_tightest_gap():
    # Sizes 256, 128, 64, 64 are placed in that order, each as low as the buffers overlapping
    # it in time allow: buffer 0 (steps 0-1) shares its place with buffer 3 (steps 3-4).
    bufs = buffers((64, 0, 1), (256, 0, 4), (64, 2, 4), (128, 3, 4))
    offsets = STRATEGIES["greedy-size"](bufs)
    assert offsets[1] == 0                      # the largest goes first, at the bottom
    assert offsets[3] == offsets[0] == 256      # time-disjoint: the same place
    assert offsets[2] == 384                    # overlaps 1 and 3: no gap, on top
    assert arena_size(bufs, offsets) == lower_bound(bufs) == 448


def test_greedy_by_breadth_starts_with_the_widest_step():
    bufs = buffers((64, 0, 0), (64, 1, 3), (192, 2, 3), (64, 3, 3))
    offsets = STRATEGIES["greedy-breadth"](bufs)
    assert_sound(bufs, offsets)
    # Step 3 holds 1, 2 and 3 (320 bytes); they are placed first, largest at the bottom.
    assert offsets[2] == 0 and offsets[0] == 0
    assert arena_size(bufs, offsets) == lower_bound(bufs) == 320


def test_best_fit_reuses_the_smallest_free_block():
    # Frees a 128-byte and a 64-byte block at step 2; a 64-byte buffer takes the 64-byte one.
    bufs = buffers((128, 0, 1), (64, 0, 3), (64, 0, 1), (64, 0, 3), (64, 2, 3))
    offsets = STRATEGIES["best-fit"](bufs)
    assert_sound(bufs, offsets)
    assert offsets[4] == offsets[2]
    assert arena_size(bufs, offsets) == 320


def _residual_blocks(blocks: int) -> list[Buffer]:
    """A transformer-like pattern: block k's residual (64 bytes) lives over steps [4k, 4k+5],
    into the next block; its MLP holds two 256-byte buffers together at steps 4k+2..4k+3."""
    specs = []
    for k in range(blocks):
        specs += [(64, 4 * k, 4 * k + 5), (256, 4 * k + 2, 4 * k + 3), (256, 4 * k + 2, 4 * k + 3)]
    return buffers(*specs)


def test_greedy_repair_moves_the_residual_that_ends_above_the_bound():
    # Greedy by size puts every MLP at bytes 0..512, so each residual wants 512..576 during its
    # MLP; two consecutive residuals overlap in time, so the second goes on top (640 bytes).
    bufs = _residual_blocks(3)
    assert lower_bound(bufs) == 576
    assert arena_size(bufs, STRATEGIES["greedy-size"](bufs)) == 640
    offsets = STRATEGIES["greedy-repair"](bufs)
    assert_sound(bufs, offsets)
    assert arena_size(bufs, offsets) == 576
    assert offsets[3] == 0 and offsets[4] == 64   # the middle block shifted above its residual
    # With no repair round it is greedy by size.
    assert greedy_repair(bufs, rounds=0) == greedy_by_size(bufs)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 25), st.integers(0, 8)),
                min_size=1, max_size=50))
def test_greedy_repair_is_never_worse_than_greedy_by_size(specs):
    bufs = buffers(*[(align(s, 16), f, f + d) for s, f, d in specs])
    offsets = greedy_repair(bufs)
    assert_sound(bufs, offsets)
    assert all(o % 16 == 0 for o in offsets)
    assert lower_bound(bufs) <= arena_size(bufs, offsets) <= arena_size(bufs, greedy_by_size(bufs))


def test_every_strategy_is_in_the_table_that_auto_and_the_property_tests_use():
    assert set(STRATEGIES) == {"greedy-size", "greedy-breadth", "best-fit", "greedy-repair"}


def test_strategies_can_disagree_and_auto_keeps_the_smallest_arena():
    model = _chain_with_skips([(4096, ()), (64, (0,)), (2048, (1,)), (64, (2, 0)),
                               (4096, (3,)), (1024, (4, 1))])
    plan = plan_memory(model)
    assert plan.strategy in STRATEGIES
    assert plan.arena_bytes == min(plan.peaks.values())
    single = plan_memory(model, strategy="best-fit")
    assert single.peaks == {"best-fit": single.arena_bytes}
    with pytest.raises(MemoryPlanError, match="unknown memory strategy 'first-fit'"):
        plan_memory(model, strategy="first-fit")


@pytest.mark.parametrize("alignment", [1, 16, 64, 256])
def test_offsets_and_arena_respect_the_alignment(alignment):
    model = _chain_with_skips([(10, ()), (30, (0,)), (7, (1, 0)), (100, (2,))])
    for name in STRATEGIES:
        plan = plan_memory(model, strategy=name, alignment=alignment)
        assert plan.alignment == alignment
        assert all(t.offset % alignment == 0 for t in plan.tensors)
        assert plan.arena_bytes % alignment == 0
        assert check_plan(plan) == []
    # Unaligned sizes are rounded up per tensor in the naive total.
    live = compute_liveness(model, alignment=alignment)
    assert live.naive_bytes == sum(align(t.size, alignment) for t in live.tensors)


def test_check_plan_reports_overlapping_live_tensors():
    model = _chain_with_skips([(64, ()), (64, (0,)), (64, (1, 0))])
    plan = plan_memory(model, alignment=64)
    assert check_plan(plan) == []
    t0, t1 = plan.tensors[0], plan.tensors[1]   # live together at step 1
    t1.offset = t0.offset
    problems = check_plan(plan)
    assert len(problems) == 1 and "overlap" in problems[0] and t0.name in problems[0]


# -- random DAGs ----------------------------------------------------------------------------

def _chain_with_skips(spec) -> Model:
    """A model of 1-D float tensors: ``spec[i] = (elements, input indices)``; a node with no
    inputs reads the graph input. One input: Relu; two of one size: Add; else Concat."""
    x = Value("x", TensorType(DType.FLOAT, (spec[0][0],)))
    g = Graph("g", inputs=[x])
    vals = []
    for i, (n, ins) in enumerate(spec):
        srcs = [vals[j] for j in ins] or [x]
        if len(srcs) == 1:
            node = Node("Relu", srcs, outputs=[Value(f"t{i}")])
            n = srcs[0].shape[0]
        elif len({s.shape for s in srcs}) == 1:
            node = Node("Add", srcs[:2], outputs=[Value(f"t{i}")])
            n = srcs[0].shape[0]
        else:
            node = Node("Concat", srcs, {"axis": 0}, outputs=[Value(f"t{i}")])
            n = sum(s.shape[0] for s in srcs)
        node.outputs[0].type = TensorType(DType.FLOAT, (n,))
        g.append(node)
        vals.append(node.outputs[0])
    g.outputs.extend(v for v in vals if not v.has_uses())
    return Model(g, opset_imports={"": 17})


@st.composite
def random_dags(draw):
    """Random DAGs of Relu/Sigmoid/Identity/Reshape (views), Add/Mul and Concat on 1-D tensors."""
    n_nodes = draw(st.integers(1, 24))
    x = Value("x", TensorType(DType.FLOAT, (draw(st.integers(1, 40)),)))
    g = Graph("g", inputs=[x])
    vals = [x]
    for i in range(n_nodes):
        k = draw(st.integers(1, 3))
        srcs = [vals[draw(st.integers(0, len(vals) - 1))] for _ in range(k)]
        out = Value(f"t{i}")
        if k == 1 or len({s.shape for s in srcs}) == 1 and k == 2:
            a = srcs[0]
            op = draw(st.sampled_from(["Relu", "Sigmoid", "Identity", "Reshape"] if k == 1
                                      else ["Add", "Mul"]))
            ins = srcs
            if op == "Reshape":
                ins = [a, g.constant(np.array([a.shape[0]], np.int64))]
            node = Node(op, ins, outputs=[out])
            out.type = a.type
        else:
            node = Node("Concat", srcs, {"axis": 0}, outputs=[out])
            out.type = TensorType(DType.FLOAT, (sum(s.shape[0] for s in srcs),))
        g.append(node)
        vals.append(out)
    extra = draw(st.lists(st.integers(1, len(vals) - 1), max_size=3, unique=True))
    g.outputs.extend(v for i, v in enumerate(vals[1:], 1) if not v.has_uses() or i in extra)
    return Model(g, opset_imports={"": 17})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=random_dags(), alignment=st.sampled_from([1, 8, 64]))
def test_random_dags_no_live_overlap_and_peak_at_least_lower_bound(model, alignment):
    from backends.reference import ReferenceExecutor
    import irlib

    irlib.verify(model)
    live = compute_liveness(model, alignment=alignment)
    for name in STRATEGIES:
        plan = plan_memory(model, strategy=name, alignment=alignment, liveness=live)
        assert check_plan(plan) == [], name
        assert plan.arena_bytes >= plan.lower_bound_bytes
        assert plan.lower_bound_bytes <= plan.naive_bytes
        # The tensors in one buffer never live at the same step unless they share on purpose.
        for b in live.buffers:
            assert all(b.first <= t.first and t.last <= b.last for t in b.tensors)
    # And the executor gives the same numbers inside the arena as with one array per tensor.
    x = np.linspace(-2, 2, model.graph.inputs[0].shape[0], dtype=np.float32)
    plain = ReferenceExecutor(model).run({"x": x})
    arena = ReferenceExecutor(model, plan_memory(model, alignment=alignment)).run({"x": x})
    for name, value in plain.items():
        np.testing.assert_array_equal(arena[name], value)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 30), st.integers(0, 10)),
                min_size=1, max_size=40))
def test_random_lifetimes_every_strategy_is_sound(specs):
    bufs = buffers(*[(align(s, 64), f, f + d) for s, f, d in specs])
    bound = lower_bound(bufs)
    for name, fn in STRATEGIES.items():
        offsets = fn(bufs)
        assert_sound(bufs, offsets)
        assert all(o % 64 == 0 for o in offsets)
        assert arena_size(bufs, offsets) >= bound, name
