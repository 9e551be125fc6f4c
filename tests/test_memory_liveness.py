"""Liveness of intermediates: who is planned, for how long, and which tensors share a buffer."""

from __future__ import annotations

import pytest
from helpers import parse_ir

import passes.transforms  # noqa: F401  (registers infer-shapes)
from passes import run_passes
from passes.memory import MemoryPlanError, compute_liveness, lower_bound, node_names, plan_memory


def shaped(text: str):
    model = parse_ir(text)
    run_passes(model, "infer-shapes")
    return model


def lifetimes(model, **kw) -> dict[str, tuple[int, int]]:
    return {t.name: (t.first, t.last) for t in compute_liveness(model, **kw).tensors}


def test_lifetime_runs_from_producer_to_last_reader_and_outputs_live_to_the_end(verified):
    model = verified(shaped("""
        main (float[16] x) => (float[16] y, float[16] early) {
            early = Neg(x)
            a = Sigmoid(x)
            b = Tanh(a)
            c = Exp(x)
            y = Add(b, c)
        }
    """))
    live = lifetimes(model, inplace=False)
    # early is a graph output made at step 0: it lives to the last step (4), not to its last use.
    assert live == {"early": (0, 4), "a": (1, 2), "b": (2, 4), "c": (3, 4), "y": (4, 4)}


def test_graph_inputs_initializers_and_constants_are_not_planned(verified):
    model = verified(shaped("""
        main (float[8] x) => (float[8] y) <float[8] w = {1,2,3,4,5,6,7,8}> {
            k = Constant <value = float[1] {2.0}> ()
            a = Mul(x, k)
            y = Add(a, w)
        }
    """))
    assert set(lifetimes(model)) == {"a", "y"}


def test_value_read_in_a_subgraph_lives_until_the_node_holding_it(verified):
    model = verified(shaped("""
        main (float[4] x, bool c) => (float[4] y) {
            a = Relu(x)
            b = Neg(x)
            z = If (c) <
                then_branch = g1 () => (float[4] t) { t = Add(a, a) },
                else_branch = g2 () => (float[4] e) { e = Identity(b) }
            >
            w = Sigmoid(b)
            y = Add(z, w)
        }
    """))
    live = lifetimes(model, inplace=False)
    assert live["a"] == (0, 2)  # read only inside the If at step 2
    assert live["b"] == (1, 3)  # read by the else branch (step 2) and by Sigmoid (step 3)
    # Values of the subgraphs themselves are not planned in the main arena.
    assert set(live) == {"a", "b", "z", "w", "y"}


def test_views_share_their_input_buffer_and_extend_its_lifetime(verified):
    model = verified(shaped("""
        main (float[2,8] x) => (float[16] y) {
            a = Relu(x)
            s = Constant <value = int64[1] {16}> ()
            r = Reshape(a, s)
            y = Neg(r)
        }
    """))
    live = compute_liveness(model, inplace=False)
    by_name = {t.name: t for t in live.tensors}
    assert by_name["r"].buffer == by_name["a"].buffer and by_name["r"].alias_of == "a"
    buf = live.buffers[by_name["a"].buffer]
    assert (buf.first, buf.last) == (0, 3)
    assert live.alias_count == 1


def test_elementwise_output_overwrites_an_input_that_dies_there(verified):
    model = verified(shaped("""
        main (float[64] x) => (float[64] y) {
            a = Exp(x)
            b = Relu(a)
            c = Sigmoid(x)
            y = Add(b, c)
        }
    """))
    live = compute_liveness(model)
    t = {t.name: t for t in live.tensors}
    assert t["b"].inplace_of == "a"           # a dies at Relu
    assert t["y"].inplace_of == "b"           # b's buffer (a, b) dies at Add
    assert t["c"].buffer != t["a"].buffer     # c is created while that buffer is live
    assert live.inplace_count == 2
    # Without in-place reuse every tensor has its own buffer and the bound is higher.
    plain = compute_liveness(model, inplace=False, alias=False)
    assert len(plain.buffers) == 4
    assert plain.lower_bound_bytes > live.lower_bound_bytes


def test_no_inplace_when_the_input_is_read_later_or_broadcast(verified):
    model = verified(shaped("""
        main (float[4,4] x, float[4] v) => (float[4,4] y) {
            a = Exp(x)
            b = Relu(a)
            e = Neg(v)
            c = Add(a, b)
            y = Add(c, e)
        }
    """))
    t = {t.name: t for t in compute_liveness(model).tensors}
    assert t["b"].inplace_of is None            # a is still read by c
    assert t["c"].inplace_of == "a"             # a and b both die at c
    assert t["y"].inplace_of == "c"             # e broadcasts: only c has y's shape


def test_symbolic_dims_need_a_binding_and_the_error_names_value_and_dim(verified):
    model = verified(shaped("""
        main (float[N,8] x) => (float[N,8] y) {
            a = Relu(x)
            y = Neg(a)
        }
    """))
    with pytest.raises(MemoryPlanError, match=r"value 'a': dim 0 is the symbol 'N'"):
        compute_liveness(model)
    live = compute_liveness(model, shapes={"N": 3}, alignment=1)
    assert [t.size for t in live.tensors] == [3 * 8 * 4] * 2


def test_unknown_dims_and_bad_alignment_are_refused(verified):
    model = verified(parse_ir("""
        main (float[8] x) => (float[8] y) {
            a = Relu(x)
            y = Neg(a)
        }
    """))  # no shape inference: a has no type
    with pytest.raises(MemoryPlanError, match="cannot size value 'a'.*infer-shapes"):
        compute_liveness(model)
    with pytest.raises(MemoryPlanError, match="power of two"):
        compute_liveness(model, alignment=48)


def test_lower_bound_is_the_most_bytes_live_at_one_step(verified):
    model = verified(shaped("""
        main (float[16] x) => (float[16] y) {
            a = Exp(x)
            b = Sin(x)
            c = Cos(x)
            d = Sum(a, b, c)
            y = Neg(d)
        }
    """))
    live = compute_liveness(model, alignment=64, inplace=False)
    # At step 3, a, b, c and d are live: 4 tensors of 64 bytes.
    assert live.lower_bound_bytes == 4 * 64
    assert lower_bound([]) == 0
    assert live.naive_bytes == 5 * 64


def test_nodes_without_names_get_stable_unique_plan_names(verified):
    model = verified(shaped("""
        main (float[4] x) => (float[4] y) {
            a = Relu(x)
            b = Relu(a)
            y = Neg(b)
        }
    """))
    nodes = list(model.graph)
    nodes[2].name = "relu_0"  # clashes with the name the first node would get
    names = node_names(nodes)
    assert names == ["relu_0_1", "relu_1", "relu_0"]
    assert names == node_names(nodes)
    assert [n.name for n in nodes] == ["", "", "relu_0"]  # the model is not renamed
    assert plan_memory(model).order == names
