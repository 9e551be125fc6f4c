"""Rewrite patterns and the worklist driver: what matches, what is refused, and why.

A declarative rule reads like the model it rewrites::

    class MatMulAdd(RewriteRule):
        name = "matmul-add"
        def pattern(self, op, a, b, c):  return op.Add(op.MatMul(a, b), c)
        def rewrite(self, op, a, b, c):  return op.Gemm(a, b, c)

``apply_patterns(model, rules)`` runs rules until none fires and returns ``DriverStats``
(``applied`` and ``refused`` per rule, with the refusal reasons). Every test checks that the
rewritten model still verifies, passes onnx.checker and computes what it computed before (ONNX
Runtime, graph optimizations off).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irlib
from helpers import assert_valid, parse_ir
from passes import (
    Const, ConvergenceError, PatternPass, PassManager, RewritePattern, RewriteRule, RuleSet,
    apply_patterns,
)
from passes.rewrite import DriverStats, iter_matches
from passes.transforms.eliminate_identity import RemoveIdentity, RemoveInverseTransposes


# -- helpers ------------------------------------------------------------------------------------
def run_ort(model: irlib.Model, feeds: dict) -> dict[str, np.ndarray]:
    """Outputs by name, from ONNX Runtime with its own graph optimizations off."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(irlib.to_onnx(model).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def random_feeds(model: irlib.Model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.shape).astype(np.float32)
            for v in model.graph.inputs if v.const_value is None}


def rewrite_and_compare(text: str, rules, **kw) -> tuple[irlib.Model, DriverStats]:
    """Parse ``text``, apply ``rules``, check verify + onnx.checker + same outputs as before."""
    model = assert_valid(parse_ir(text))
    feeds = random_feeds(model)
    want = run_ort(model, feeds)
    stats = apply_patterns(model, rules, **kw)
    assert_valid(model)
    onnx.checker.check_model(irlib.to_onnx(model), full_check=True)
    got = run_ort(model, feeds)
    assert got.keys() == want.keys()  # graph outputs keep their names
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    return model, stats


def ops(model: irlib.Model) -> list[str]:
    return [n.op_type for n in model.graph]


class MatMulAdd(RewriteRule):
    """MatMul(a, b) + c -> Gemm(a, b, c)."""

    name = "matmul-add"

    def pattern(self, op, a, b, c):
        return op.Add(op.MatMul(a, b), c)

    def rewrite(self, op, a, b, c):
        return op.Gemm(a, b, c)


class NegNeg(RewriteRule):
    """Neg(Neg(x)) -> x."""

    name = "neg-neg"

    def pattern(self, op, x):
        return op.Neg(op.Neg(x))

    def rewrite(self, op, x):
        return x


class ReluRelu(RewriteRule):
    """Relu(Relu(x)) -> Relu(x)."""

    name = "relu-relu"

    def pattern(self, op, x):
        return op.Relu(op.Relu(x))

    def rewrite(self, op, x):
        return op.Relu(x)


MATMUL_ADD = """
    main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y) {
        m = MatMul(x, w)
        y = Add(%s)
    }"""


# -- commutative ops ----------------------------------------------------------------------------
@pytest.mark.parametrize("args", ["m, c", "c, m"])
def test_commutative_ops_match_in_either_order(args):
    model, stats = rewrite_and_compare(MATMUL_ADD % args, [MatMulAdd])
    assert stats.applied == {"matmul-add": 1} and (stats.inserted, stats.removed) == (1, 2)
    (gemm,) = model.graph
    assert gemm.op_type == "Gemm"
    assert [v.name for v in gemm.inputs] == ["x", "w", "c"]


def test_non_commutative_ops_match_in_one_order_only():
    class MatMulSub(RewriteRule):
        name = "matmul-sub"

        def pattern(self, op, a, b, c):
            return op.Sub(op.MatMul(a, b), c)

        def rewrite(self, op, a, b, c):
            return op.Gemm(a, b, c, beta=-1.0)

    text = MATMUL_ADD.replace("Add", "Sub")
    _, stats = rewrite_and_compare(text % "m, c", [MatMulSub])
    assert stats.applied == {"matmul-sub": 1}
    _, stats = rewrite_and_compare(text % "c, m", [MatMulSub])
    assert stats.rewrites == 0


def test_a_refused_order_does_not_hide_the_other_one():
    """Add(m1, m2): m1 is also read elsewhere, so only MatMul m2 may be fused."""
    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[3,4] w, float[2,3] u, float[3,4] v) => (float[2,4] y, float[2,4] z) {
            m1 = MatMul(x, w)
            m2 = MatMul(u, v)
            y = Add(m1, m2)
            z = Relu(m1)
        }""", [MatMulAdd])
    assert stats.applied == {"matmul-add": 1}
    assert ops(model) == ["MatMul", "Gemm", "Relu"]
    gemm = list(model.graph)[1]
    assert [v.name for v in gemm.inputs] == ["u", "v", "m1"]


def test_iter_matches_lists_every_way_to_match():
    model = parse_ir("""
        main (float[2,3] x, float[3,4] w, float[2,3] u, float[3,4] v) => (float[2,4] y) {
            m = MatMul(x, w)
            m2 = MatMul(u, v)
            y = Add(m, m2)
        }""")
    add = list(model.graph)[-1]
    matches = list(iter_matches(MatMulAdd()._root, add))
    assert [[n.outputs[0].name for n in m.nodes] for m in matches] == [["y", "m"], ["y", "m2"]]
    assert [m.bindings["c"].name for m in matches] == ["m2", "m"]


# -- multiple uses and graph outputs ------------------------------------------------------------
def test_an_intermediate_with_other_uses_is_not_deleted():
    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y, float[2,4] z) {
            m = MatMul(x, w)
            y = Add(m, c)
            z = Relu(m)
        }""", [MatMulAdd])
    assert stats.rewrites == 0
    assert stats.refused["matmul-add"] == {"intermediate 'm' has uses outside the match": 1}
    assert ops(model) == ["MatMul", "Add", "Relu"]


def test_an_intermediate_that_is_a_graph_output_is_not_deleted():
    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y, float[2,4] m) {
            m = MatMul(x, w)
            y = Add(m, c)
        }""", [MatMulAdd])
    assert stats.refused["matmul-add"] == {"intermediate 'm' is a graph output": 1}
    assert ops(model) == ["MatMul", "Add"]


def test_a_root_that_is_a_graph_output_keeps_its_name():
    model, _ = rewrite_and_compare(MATMUL_ADD % "m, c", [MatMulAdd])
    (gemm,) = model.graph
    assert model.graph.outputs == [gemm.output]
    assert gemm.output.name == "y" and str(gemm.output.type) == "f32[2,4]"


def test_a_value_taking_over_an_output_takes_its_name():
    """Identity(t) -> t where the Identity's output is the graph output: t is renamed ``y``."""
    model, stats = rewrite_and_compare("""
        main (float[2,3] x) => (float[2,3] y) {
            t = Tanh(x)
            y = Identity(t)
        }""", [RemoveIdentity])
    assert stats.applied == {"remove-identity": 1}
    (tanh,) = model.graph
    assert tanh.output.name == "y" and model.graph.outputs == [tanh.output]


def test_an_output_is_never_replaced_by_an_input():
    """y = Identity(x) with x an input, y an output: bypassing would rename the interface."""
    model, stats = rewrite_and_compare("""
        main (float[2,3] x) => (float[2,3] y) {
            a = Identity(x)
            b = Identity(a)
            y = Identity(b)
        }""", [RemoveIdentity])
    assert ops(model) == ["Identity"]
    assert stats.applied == {"remove-identity": 2}
    assert stats.refused["remove-identity"] == {
        "replacement would rename a graph input, initializer or output": 1}


def test_a_refused_replacement_leaves_no_trace():
    """The rewrite builds a node, then the commit is refused: the graph is exactly as before."""
    class NegThenGiveUp(RewriteRule):
        name = "neg-then-give-up"

        def pattern(self, op, x):
            return op.Identity(x)

        def rewrite(self, op, x):
            op.Neg(x)  # built, pending ...
            return x   # ... but x (an input) cannot stand in for the output y

    model = assert_valid(parse_ir("main (float[2] x) => (float[2] y) { y = Identity(x) }"))
    before = irlib.format_model(model)
    stats = apply_patterns(model, [NegThenGiveUp])
    assert stats.rewrites == 0 and stats.inserted == 0
    assert irlib.format_model(model) == before
    assert model.graph.inputs[0].num_uses() == 1  # the pending Neg's use was unhooked
    assert_valid(model)


def test_rules_rewrite_inside_subgraphs_but_keep_their_outputs_local():
    """In an If branch, Identity(Identity(Neg(t))) collapses to Neg(t); but a branch output never
    becomes the outer value t itself (ONNX requires a graph's outputs to be computed in it)."""
    model = assert_valid(parse_ir("""
        main (bool c, float[2] x) => (float[2] y) {
            t = Relu(x)
            y = If(c) <then_branch = g1 () => (float[2] a) { a = Identity(t) },
                       else_branch = g2 () => (float[2] b) {
                           n = Neg(t)
                           i = Identity(n)
                           b = Identity(i)
                       }>
        }"""))
    feeds = [{"c": np.array(c), "x": np.array([-1.0, 2.0], np.float32)} for c in (True, False)]
    want = [run_ort(model, f) for f in feeds]
    stats = apply_patterns(model, [RemoveIdentity])
    assert stats.applied == {"remove-identity": 2}
    assert stats.refused == {"remove-identity": {
        "replacement would rename a graph input, initializer or output": 1}}
    PassManager("dce").run(model)  # verifies too: t is still produced and read
    then_branch, else_branch = (a.value for a in list(model.graph)[1].attributes.values())
    assert [n.op_type for n in then_branch] == ["Identity"]
    assert [n.op_type for n in else_branch] == ["Neg"] and else_branch.outputs[0].name == "b"
    onnx.checker.check_model(irlib.to_onnx(model), full_check=True)
    for f, expected in zip(feeds, want):
        np.testing.assert_array_equal(run_ort(model, f)["y"], expected["y"])


# -- overlapping matches ------------------------------------------------------------------------
def test_identity_chain_collapses():
    model, stats = rewrite_and_compare("""
        main (float[2,3] x) => (float[2,3] y) {
            t = Tanh(x)
            a = Identity(t)
            b = Identity(a)
            c = Identity(b)
            y = Relu(c)
        }""", [RemoveIdentity])
    assert ops(model) == ["Tanh", "Relu"] and stats.applied == {"remove-identity": 3}


@pytest.mark.parametrize("n, left", [(2, []), (3, ["Neg"]), (4, []), (5, ["Neg"])])
def test_overlapping_candidates_share_nodes(n, left):
    """Neg^n(x): the matches at the 2nd and 3rd Neg share the 2nd; whichever fires first, what
    remains is right (verified numerically by rewrite_and_compare)."""
    body = "\n".join(f"n{i} = Neg(n{i - 1})" for i in range(1, n + 1))
    text = f"main (float[2,3] n0) => (float[2,3] y) {{\n{body}\n y = Relu(n{n})\n}}"
    model, _ = rewrite_and_compare(text, [NegNeg])
    assert ops(model) == left + ["Relu"]


def test_three_transposes_cancel_the_first_pair_only():
    model, _ = rewrite_and_compare("""
        main (float[2,3] x) => (float[3,2] y) {
            a = Transpose <perm=[1,0]> (x)
            b = Transpose <perm=[1,0]> (a)
            c = Transpose <perm=[1,0]> (b)
            y = Relu(c)
        }""", [RemoveInverseTransposes])
    assert ops(model) == ["Transpose", "Relu"]


def test_relu_chains_collapse_through_revisits():
    """Each rewrite makes a new Relu; the driver revisits its users until one Relu is left."""
    body = "\n".join(f"r{i} = Relu(r{i - 1})" for i in range(1, 7))
    model, stats = rewrite_and_compare(
        f"main (float[2,3] r0) => (float[2,3] y) {{\n{body}\n y = Neg(r6)\n}}", [ReluRelu])
    assert ops(model) == ["Relu", "Neg"] and stats.applied == {"relu-relu": 5}


def test_a_shared_subpattern_matches_one_node():
    """``r = op.Relu(x); op.Mul(r, r)``: both inputs of the Mul must come from one Relu."""
    class SquareOfRelu(RewriteRule):
        name = "square-of-relu"

        def pattern(self, op, x):
            r = op.Relu(x)
            return op.Mul(r, r)

        def rewrite(self, op, x):
            return op.Pow(op.Relu(x), op.constant(np.float32(2.0)))

    text = """
        main (float[2,3] x) => (float[2,3] y, float[2,3] z) {
            r = Relu(x)
            y = Mul(r, r)
            t = Relu(x)
            s = Relu(x)
            z = Mul(t, s)
        }"""
    model, stats = rewrite_and_compare(text, [SquareOfRelu])
    assert stats.applied == {"square-of-relu": 1}  # not z: t and s are two Relu nodes
    assert ops(model) == ["Relu", "Pow", "Relu", "Relu", "Mul"]


# -- constants, attributes and bindings ---------------------------------------------------------
class MulByOne(RewriteRule):
    name = "mul-by-one"

    def pattern(self, op, x):
        return op.Mul(x, Const(1.0))

    def rewrite(self, op, x):
        return x


@pytest.mark.parametrize("one, fires", [
    ("float[3] one = {1.0, 1.0, 1.0}", True),
    ("float one = {1.0}", True),
    ("float[3] one = {1.0, 2.0, 1.0}", False),
])
def test_const_value_matches_only_that_value(one, fires):
    text = f"""
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2,3] x) => (float[2,3] y) <{one}> {{
            m = Mul(one, x)
            y = Relu(m)
        }}"""
    model, stats = rewrite_and_compare(text, [MulByOne])
    assert stats.rewrites == int(fires)
    assert ops(model) == (["Relu"] if fires else ["Mul", "Relu"])


def test_const_matches_constant_nodes_but_not_overridable_inputs():
    model, stats = rewrite_and_compare("""
        main (float[2,3] x) => (float[2,3] y) {
            one = Constant <value_float = 1.0> ()
            m = Mul(x, one)
            y = Relu(m)
        }""", [MulByOne])
    assert stats.rewrites == 1
    # an initializer that is also a graph input has a default only: callers may feed another
    proto = onnx.parser.parse_model("""
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2,3] x, float one) => (float[2,3] y) <float one = {1.0}> {
            m = Mul(x, one)
            y = Relu(m)
        }""")
    model = irlib.from_onnx(proto)
    assert apply_patterns(model, [MulByOne]).rewrites == 0


def test_named_consts_bind_and_must_agree():
    class AddSameConstTwice(RewriteRule):
        name = "add-same-const-twice"

        def pattern(self, op, x):
            k = Const(name="k")
            return op.Add(op.Add(x, k), k)

        def rewrite(self, op, x, k):
            return op.Add(x, op.Add(k, k))

    _, stats = rewrite_and_compare("""
        <ir_version: 10, opset_import: ["" : 17]>
        main (float[2,3] x) => (float[2,3] y, float[2,3] z) <float k = {0.5}, float j = {0.5}> {
            a = Add(x, k)
            y = Add(a, k)
            b = Add(x, k)
            z = Add(b, j)
        }""", [AddSameConstTwice])
    assert stats.applied == {"add-same-const-twice": 1}  # not z: k and j are distinct values


def test_attribute_constraints_use_schema_defaults():
    class PlainGemm(RewriteRule):
        """Gemm without transposes or scaling -> MatMul + Add."""

        name = "plain-gemm"

        def pattern(self, op, a, b, c):
            return op.Gemm(a, b, c, transA=0, transB=0, alpha=1.0, beta=lambda v: v == 1.0)

        def rewrite(self, op, a, b, c):
            return op.Add(op.MatMul(a, b), c)

    text = """
        main (float[2,3] x, float[3,4] w, float[4,3] wt, float[4] c) => (float[2,4] y, float[2,4] z,
                                                                        float[2,4] u) {
            y = Gemm(x, w, c)
            z = Gemm <transB = 1> (x, wt, c)
            u = Gemm <alpha = 1.0, transA = 0> (x, w, c)
        }"""
    model, stats = rewrite_and_compare(text, [PlainGemm])
    assert stats.applied == {"plain-gemm": 2}  # y (all defaults) and u (explicit defaults)
    assert ops(model) == ["MatMul", "Add", "Gemm", "MatMul", "Add"]


def test_name_binds_the_matched_node_for_check_and_rewrite():
    seen = {}

    class FoldTransposes(RewriteRule):
        """Transpose(Transpose(x, p), q) -> Transpose(x, p then q)."""

        name = "fold-transposes"

        def pattern(self, op, x):
            return op.Transpose(op.Transpose(x, _name="first"), _name="second")

        def check(self, m, first, second):
            seen["nodes"] = (first, second, m.nodes)
            if first.attr("perm") is None or second.attr("perm") is None:
                return "default perm"

        def rewrite(self, op, x, first, second):
            p, q = first.attr("perm"), second.attr("perm")
            return op.Transpose(x, perm=[p[i] for i in q])

    model, stats = rewrite_and_compare("""
        main (float[2,3,4] x) => (float[4,3,2] y) {
            a = Transpose <perm=[1,0,2]> (x)
            y = Transpose <perm=[2,0,1]> (a)
        }""", [FoldTransposes])
    first, second, nodes = seen["nodes"]
    assert nodes == [second, first]  # root first
    assert stats.applied == {"fold-transposes": 1}
    (t,) = model.graph
    assert t.attr("perm") == (2, 1, 0)


# -- check(), statistics and provenance ---------------------------------------------------------
def test_check_refusals_are_counted_with_their_reason():
    class OnlyTwoD(MatMulAdd):
        name = "matmul-add-2d"

        def check(self, m, a, b):
            if len(a.shape) != 2:
                return f"a has rank {len(a.shape)}"

    class Never(MatMulAdd):
        name = "never"

        def check(self, m):
            return False

    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[5,2,3] x3, float[3,4] w, float[4] c) => (float[2,4] y, float[5,2,4] z) {
            m = MatMul(x, w)
            y = Add(m, c)
            m3 = MatMul(x3, w)
            z = Add(m3, c)
        }""", RuleSet([Never, OnlyTwoD]))
    assert stats.applied == {"matmul-add-2d": 1}
    assert stats.refused == {"never": {"check refused": 2}, "matmul-add-2d": {"a has rank 3": 1}}
    assert ops(model) == ["Gemm", "MatMul", "Add"]


def test_pattern_pass_reports_applied_and_refused_in_its_stats():
    class FuseMatMulAdd(PatternPass):
        name = "test-fuse-matmul-add"
        rules = (MatMulAdd,)

    model = parse_ir("""
        main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y, float[2,4] z) {
            m = MatMul(x, w)
            y = Add(m, c)
            n = MatMul(x, w)
            a = Add(c, n)
            z = Relu(n)
        }""")
    report = PassManager([FuseMatMulAdd()]).run(model)
    assert report.passes[0].stats == {"rewrites": 1, "inserted": 1, "removed": 2,
                                      "applied:matmul-add": 1, "refused:matmul-add": 1}


def test_new_nodes_record_the_rule_and_what_they_replaced():
    model, _ = rewrite_and_compare(MATMUL_ADD % "m, c", [MatMulAdd])
    (gemm,) = model.graph
    assert gemm.meta["irc.rule"] == "matmul-add"
    assert gemm.meta["irc.replaced"] == ["MatMul(%m)", "Add(%y)"]


def test_hand_written_patterns_share_the_driver():
    class SplitGemm(RewritePattern):
        """Gemm(a, b, c) without attributes -> Add(MatMul(a, b), c), written by hand."""

        name = "split-gemm"
        root_ops = ("Gemm",)

        def match_and_rewrite(self, node, rewriter):
            if node.attributes:
                return "has attributes"
            a, b, c = node.inputs
            mm = rewriter.make_node("MatMul", [a, b])
            add = rewriter.make_node("Add", [mm.output, c])
            return rewriter.replace_node(node, [add.output])

    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y, float[2,4] z) {
            y = Gemm(x, w, c)
            t = Relu(x)
            z = Gemm <alpha = 2.0> (t, w, c)
        }""", [SplitGemm()])
    assert ops(model) == ["MatMul", "Add", "Relu", "Gemm"]
    assert stats.applied == {"split-gemm": 1} and stats.refused == {"split-gemm": {"has attributes": 1}}
    assert stats.visits == 5  # the 3 nodes, then the 2 new ones (no pattern is offered the Relu)
    add = list(model.graph)[1]
    assert add.output.name == "y" and add.meta["irc.replaced"] == ["Gemm(%y)"]


def test_erasing_a_reader_revisits_the_other_readers():
    """The MatMul+Add match is refused while a dead Neg also reads m; once a hand-written pattern
    erases the Neg, the driver offers the Add again and the fusion happens in the same run."""
    class EraseDead(RewritePattern):
        name = "erase-dead"
        root_ops = None  # any node

        def match_and_rewrite(self, node, rewriter):
            if any(v.has_uses() or v.is_graph_output() for v in node.outputs):
                return False
            return rewriter.erase_dead([node]) == 1

    model, stats = rewrite_and_compare("""
        main (float[2,3] x, float[3,4] w, float[4] c) => (float[2,4] y) {
            m = MatMul(x, w)
            y = Add(m, c)
            dead = Neg(m)
        }""", [MatMulAdd, EraseDead()])
    assert stats.refused["matmul-add"] == {"intermediate 'm' has uses outside the match": 1}
    assert stats.applied == {"erase-dead": 1, "matmul-add": 1}
    assert ops(model) == ["Gemm"]


def test_rule_sets_compose_and_refuse_duplicates():
    rules = RuleSet([NegNeg]) + ReluRelu() + RuleSet([MatMulAdd])
    assert [r.name for r in rules] == ["neg-neg", "relu-relu", "matmul-add"] and len(rules) == 3
    with pytest.raises(ValueError, match="rule 'neg-neg' is in the rule set twice"):
        rules + NegNeg


def test_a_rule_that_always_fires_is_a_convergence_error():
    class Forever(RewriteRule):
        """Relu(x) -> a new Relu(x): always applies."""

        name = "forever"

        def pattern(self, op, x):
            return op.Relu(x)

        def rewrite(self, op, x):
            return op.Relu(x)

    model = parse_ir("main (float[2] x) => (float[2] y) { y = Relu(x) }")
    with pytest.raises(ConvergenceError, match=r"did not converge after 50 rewrites \(forever x51\)"):
        apply_patterns(model, [Forever], max_rewrites=50)
    assert_valid(model)


def test_driver_work_is_linear_in_the_graph():
    """Visits stay within a small multiple of nodes + rewrites on a long chain and on a value read
    by thousands of nodes (tools/bench_passes.py times the same on 100k-node graphs)."""
    n = 3000
    x = irlib.Value("x", irlib.TensorType(irlib.DType.FLOAT, (2,)))
    g = irlib.Graph("main", inputs=[x])
    one = g.constant(np.ones((), np.float32), "one")
    v = x
    for i in range(n):  # x -> Neg -> Identity -> Neg -> Identity ...
        v = g.append(irlib.Node("Neg" if i % 2 == 0 else "Identity", [v])).output
    fan = [g.append(irlib.Node("Mul", [v, one])).output for _ in range(n)]  # n readers of v
    total = g.append(irlib.Node("Sum", fan)).output
    total.type = x.type
    g.outputs.append(total)
    model = assert_valid(irlib.Model(g, opset_imports={"": 17}))
    stats = apply_patterns(model, [RemoveIdentity, NegNeg, MulByOne])
    assert stats.applied == {"remove-identity": n // 2, "neg-neg": n // 4, "mul-by-one": n}
    assert stats.visits <= (2 * n + 1) + stats.rewrites  # 6001 visits today
    assert_valid(model)


# -- property: rewriting random chains terminates and keeps the numbers -------------------------
OPS = ("Identity", "Neg", "Relu")


@st.composite
def chains(draw):
    """A chain of Identity/Neg/Relu over x; some intermediates are also graph outputs, some are
    read twice (by an Add further down)."""
    n = draw(st.integers(1, 12))
    lines, outputs, prev = [], ["y"], "x"
    for i in range(n):
        op = draw(st.sampled_from(OPS))
        lines.append(f"v{i} = {op}({prev})")
        if draw(st.integers(0, 5)) == 0 and i > 0:
            lines.append(f"s{i} = Add(v{i}, v{draw(st.integers(0, i - 1))})")
            prev = f"s{i}"
        else:
            prev = f"v{i}"
        if draw(st.integers(0, 6)) == 0:
            outputs.append(prev)
    lines.append(f"y = {draw(st.sampled_from(OPS))}({prev})")
    outs = ", ".join(f"float[2,3] {o}" for o in dict.fromkeys(outputs))
    return f"main (float[2,3] x) => ({outs}) {{\n" + "\n".join(lines) + "\n}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains())
def test_rewriting_random_chains_terminates_and_keeps_outputs(text):
    rules = [RemoveIdentity, NegNeg, ReluRelu]
    model, stats = rewrite_and_compare(text, rules)
    assert stats.rewrites <= text.count("=")           # every rewrite removes at least one node
    again = apply_patterns(model, rules)
    assert again.rewrites == 0                         # a second run finds nothing
    for n in model.graph:  # no Neg(Neg(x)) is left that could have gone
        inner = n.inputs[0].producer()
        if n.op_type == "Neg" and inner is not None and inner.op_type == "Neg":
            x = inner.inputs[0]
            assert (n.inputs[0].is_graph_output() or n.inputs[0].num_uses() > 1
                    or n.output.is_graph_output() and (x.is_graph_input() or x.is_graph_output()))
