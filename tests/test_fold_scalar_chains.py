"""fold-scalar-chains: Mul/Div by constant scalars in a chain -> one Mul."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import irlib
from helpers import make_model
from passes.transforms.fold_scalar_chains import fold_pair
from test_fuse_support import check_rewrite, op_counts, run_pass

F32 = TensorProto.FLOAT
# Tolerance: folding reassociates (x*a)*b as x*(a*b) and turns x/a into x*(1/a); each rounds
# differently, by up to ~1 ulp per folded op. fp32: rtol 1e-6 (atol 0 for the chains below).
TOL = dict(rtol=1e-6, atol=0.0)


def chain(ops, consts, *, x_shape=(2, 3), elem=F32, const_shapes=None, swap_first=False,
          second_user_at=None, opset=17):
    np_type = helper.tensor_dtype_to_np_dtype(elem)
    const_shapes = const_shapes or [()] * len(ops)
    inits, nodes, src = {}, [], "x"
    outputs = []
    for i, (op, c, shape) in enumerate(zip(ops, consts, const_shapes)):
        name = f"k{i}"
        inits[name] = np.full(shape, c, np_type)
        out = "y" if i == len(ops) - 1 else f"t{i}"
        ins = [name, src] if (swap_first and op == "Mul" and i == 0) else [src, name]
        nodes.append(helper.make_node(op, ins, [out]))
        if second_user_at == i:
            nodes.append(helper.make_node("Neg", [out], ["z"]))
            outputs.append(("z", elem, None))
        src = out
    return make_model(nodes, [("x", elem, list(x_shape))], [("y", elem, None)] + outputs, inits,
                      opset=opset)


@pytest.mark.parametrize("ops,consts,expected", [
    (["Mul", "Mul"], [3.0, 0.5], 1.5),
    (["Div", "Mul"], [4.0, 2.0], 0.5),
    (["Mul", "Div"], [3.0, 4.0], 0.75),
    (["Div", "Div"], [2.0, 4.0], 0.125),
    (["Mul", "Div", "Mul", "Div"], [2.0, 8.0, 3.0, 0.5], 1.5),
])
def test_chains_fold_to_one_mul(ops, consts, expected):
    model, result = check_rewrite(chain(ops, consts), "fold-scalar-chains", **TOL)
    assert result.stats["rewrites"] == len(ops) - 1
    assert op_counts(model) == {"Mul": 1}
    (mul,) = model.graph.nodes
    assert mul.inputs[0].name == "x" and mul.output.name == "y"
    assert float(mul.inputs[1].const_value.numpy()) == pytest.approx(expected, rel=1e-7)


def test_text_in_text_out():
    model, _ = check_rewrite(chain(["Mul", "Div"], [3.0, 2.0], swap_first=True),
                             "fold-scalar-chains", **TOL)
    run_pass(model, "dce")
    c = model.graph.nodes[0].inputs[1]
    assert irlib.format_graph(model.graph) == f"""\
graph main(%x: f32[2,3]) {{
  %{c.name}: f32[] = const 1.5
  %y: f32[2,3] = Mul(%x, %{c.name})
  return %y
}}
"""


def test_output_shape_kept_by_broadcast_of_the_constants():
    """x: [3], a: [1,1], b: []: the product has shape [1,3]; the folded constant is [1,1]."""
    model, _ = check_rewrite(chain(["Mul", "Mul"], [2.0, 3.0], x_shape=(3,),
                                   const_shapes=[(1, 1), ()]), "fold-scalar-chains", **TOL)
    assert model.graph.nodes[0].inputs[1].shape == (1, 1)


def test_float16_chain():
    # fp16: x*a*b rounds twice in fp16, x*(a*b) once (the constant from float64): rtol 2e-3.
    check_rewrite(chain(["Mul", "Div"], [3.0, 7.0], elem=TensorProto.FLOAT16),
                  "fold-scalar-chains", rtol=2e-3, atol=1e-3)


def test_integer_mul_chain_folds_but_integer_div_does_not():
    model, _ = check_rewrite(chain(["Mul", "Mul"], [3, -2], elem=TensorProto.INT64),
                             "fold-scalar-chains", rtol=0, atol=0)
    assert op_counts(model) == {"Mul": 1}
    model = irlib.from_onnx(chain(["Div", "Div"], [2, 3], elem=TensorProto.INT64))
    result = run_pass(model, "fold-scalar-chains")
    assert not result.changed and result.stats["refused:fold-div-div"] == 1


def test_intermediate_with_second_user_is_kept():
    model = irlib.from_onnx(chain(["Mul", "Mul"], [2.0, 3.0], second_user_at=0))
    result = run_pass(model, "fold-scalar-chains")
    assert not result.changed and op_counts(model)["Mul"] == 2


@pytest.mark.parametrize("ops,consts", [
    (["Mul", "Mul"], [1e30, 1e30]),    # overflows fp32
    (["Mul", "Mul"], [1e-30, 1e-30]),  # underflows fp32
    (["Div", "Mul"], [0.0, 2.0]),      # division by zero
    (["Mul", "Div"], [2.0, np.inf]),
])
def test_unsafe_constants_are_refused(ops, consts):
    model = irlib.from_onnx(chain(ops, consts))
    assert not run_pass(model, "fold-scalar-chains").changed


def test_non_scalar_constants_are_refused():
    model = irlib.from_onnx(chain(["Mul", "Mul"], [2.0, 3.0], const_shapes=[(3,), ()]))
    assert not run_pass(model, "fold-scalar-chains").changed


def test_runtime_scalar_is_refused():
    proto = chain(["Mul", "Mul"], [2.0, 3.0])
    k1 = next(t for t in proto.graph.initializer if t.name == "k1")
    proto.graph.initializer.remove(k1)
    proto.graph.input.append(helper.make_tensor_value_info("k1", F32, []))
    model = irlib.from_onnx(proto)
    assert not run_pass(model, "fold-scalar-chains").changed


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(st.sampled_from(["Mul", "Div"]), min_size=2, max_size=5),
       consts=st.lists(st.floats(0.1, 10.0) | st.floats(-10.0, -0.1), min_size=5, max_size=5))
def test_property_any_chain_folds_to_one_mul(ops, consts):
    # Up to 4 folded ops, each ~1 ulp: rtol 1e-6 (plus atol for values of x near zero).
    model, _ = check_rewrite(chain(ops, consts[:len(ops)]), "fold-scalar-chains",
                             rtol=1e-6, atol=1e-6)
    assert op_counts(model) == {"Mul": 1}


def test_fold_pair_values():
    f = lambda *a: float(fold_pair(a[0], a[1], np.float32(a[2]), np.float32(a[3])))  # noqa: E731
    assert f("Div", "Div", 2.0, 5.0) == pytest.approx(0.1)
    assert isinstance(fold_pair("Mul", "Mul", np.ones(2, np.float32), np.float32(1)), str)
