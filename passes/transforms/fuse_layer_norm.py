"""LayerNormalization decomposed by exporters -> one ``LayerNormalization`` node (opset >= 17).

Exporters that target opsets before 17 (and ``torch.onnx`` for a hand-written layer norm) emit::

    mean = ReduceMean(x, axes)              axes: the last k axes, keepdims=1
    d    = Sub(x, mean)
    var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes)
    std  = Sqrt(Add(var, eps))              or  r = Pow(Add(var, eps), -0.5)
    n    = Div(d, std) | Mul(d, Reciprocal(std)) | Mul(d, r)
    y    = Add(Mul(n, gamma), beta)         gamma and beta optional

which is ``LayerNormalization(x, gamma, beta, axis=-k, epsilon=eps)``. Axes are an attribute of
ReduceMean before opset 18 and a constant input from 18; both are read. ``eps`` must be a constant.

Precision. LayerNormalization's stage one (mean, variance) runs in ``stash_type``, float32 or
bfloat16 by the standard, and the result is cast back to the input's type before ``gamma`` and
``beta`` apply. So:

- a float32 decomposition becomes ``LayerNormalization`` with ``stash_type=1``: the same types;
- the variant newer PyTorch exporters emit for float16/bfloat16 inputs, ``Cast(x, float)`` before
  the normalization and ``Cast(n, x's type)`` after it (gamma and beta applied in x's type), is
  exactly the standard's definition with ``stash_type=1``: the Casts are absorbed;
- a float16/bfloat16/double decomposition without those Casts computes stage one in its own type,
  which LayerNormalization cannot express exactly: it is left alone.

``gamma`` and ``beta`` are taken when their shape is the normalized shape (leading 1s allowed for
constants, which are reshaped); a Mul/Add by anything else (a gate of the activations' shape)
stays outside the fused node. Without gamma a ones constant is used; without beta the optional
``B`` input is left out (LayerNormalization then adds nothing, the same as adding zeros).

This module also holds the helpers the other recognition passes share (``reduce_axes``,
``sole_user``, ``scalar_const``, ``normalized_param``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from irlib import DType, Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternPass, RewritePattern, attr_or_default, op_accepts
from passes.rewrite.rewriter import PatternRewriter

__all__ = [
    "FuseLayerNorm", "LayerNormPattern", "NoMatch", "RecognitionPattern", "affine_tail", "as_value",
    "cast_variant", "check_eps", "commit", "is_op", "normalized_param", "rank", "reciprocal_sqrt",
    "reduce_axes", "scalar_const", "sole_user", "topo_order", "trailing_axis",
]

#: Element types whose arithmetic is done in float32 by the Cast variants of exporters.
LOW_PRECISION = (DType.FLOAT16, DType.BFLOAT16)


class NoMatch(Exception):
    """Raised inside a matcher: ``reason`` None means "not this pattern at all" (no statistic),
    a string means the pattern is there but cannot be rewritten (counted as a refusal)."""

    def __init__(self, reason: str | None = None):
        super().__init__(reason)
        self.reason = reason


def is_op(node: Node | None, *op_types: str) -> bool:
    return node is not None and node.op_type in op_types and node.domain in ("", "ai.onnx")


def sole_user(value: Value) -> Node | None:
    """The one node reading ``value`` (it may read it twice), or None when there are several
    readers, none, or the value is a graph output (it must stay)."""
    if value.is_graph_output():
        return None
    users = value.users()
    return users[0] if len(users) == 1 else None


def rank(value: Value) -> int | None:
    shape = value.shape
    return None if shape is None else len(shape)


def scalar_const(value: Value | None, like: Value | None = None) -> float | None:
    """The float held by ``value`` when it is a constant of one element whose rank cannot make a
    broadcast grow ``like`` (rank 0, or at most ``like``'s known rank); None otherwise."""
    arr = get_const(value)
    if arr is None or arr.size != 1 or arr.dtype == object or arr.dtype == np.bool_:
        return None
    if arr.ndim > 0:
        r = rank(like) if like is not None else None
        if r is None or arr.ndim > r:
            return None
    return float(arr.reshape(()).astype(np.float64))


def reduce_axes(node: Node, opset: int | None, x_rank: int | None) -> tuple[int, ...] | str:
    """The axes a keepdims=1 Reduce* node reduces, as negative offsets from the end, sorted
    (``(-2, -1)``), or the reason they cannot be known. Axes come from the attribute (ReduceMean
    before opset 18, ReduceSum before 13) or from a constant second input."""
    if any(a.ref_attr_name for a in node.attributes.values()):
        return "attribute refers to a function parameter"
    if attr_or_default(node, "keepdims", opset) not in (None, 1):
        return f"{node.op_type} with keepdims=0"
    axes = node.attr("axes")
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        arr = get_const(node.inputs[1])
        if arr is None:
            return f"{node.op_type} axes are not constant"
        axes = [int(a) for a in arr.reshape(-1)]
    if axes is None or len(axes) == 0:
        if node.attr("noop_with_empty_axes", 0):
            return f"{node.op_type} with no axes is a no-op"
        if x_rank is None:
            return f"{node.op_type} over all axes of an input of unknown rank"
        axes = list(range(x_rank))
    out = set()
    for a in axes:
        if a >= 0:
            if x_rank is None:
                return f"{node.op_type} axis {a} of an input of unknown rank"
            a -= x_rank
        if x_rank is not None and not -x_rank <= a < 0:
            return f"{node.op_type} axis out of range"
        out.add(a)
    return tuple(sorted(out))


def trailing_axis(axes: tuple[int, ...]) -> int | None:
    """``-k`` when ``axes`` are exactly the last k axes (``(-2, -1)`` -> -2), else None."""
    k = len(axes)
    return -k if k and axes == tuple(range(-k, 0)) else None


def normalized_param(param: Value, x: Value, axis: int, dtype) -> Value | np.ndarray | None:
    """``param`` (gamma or beta) as the fused op wants it, or None when it is not a per-element
    parameter of the normalized shape ``x.shape[axis:]``.

    The shape must be static; leading 1s are allowed (then the constant is returned reshaped, as
    an array) as long as they do not make the broadcast grow the output."""
    want = x.shape[axis:] if x.shape is not None else None
    if want is None or not all(isinstance(d, int) for d in want):
        return None
    shape = param.shape
    if param.dtype != dtype or shape is None or not all(isinstance(d, int) for d in shape):
        return None
    if len(shape) > len(x.shape):
        return None
    lead = len(shape) - len(want)
    if lead < 0 or tuple(shape[lead:]) != tuple(want) or any(d != 1 for d in shape[:lead]):
        return None
    if lead == 0:
        return param
    arr = get_const(param)
    return None if arr is None else arr.reshape(want)


def topo_order(nodes: list[Node]) -> list[Node]:
    """``nodes`` ordered producers first (by their dependencies inside the list), so that the
    rewriter's ``erase_dead`` (which walks them backwards) removes whole chains."""
    nodes = list(dict.fromkeys(nodes))
    members = set(nodes)
    placed: list[Node] = []
    done: set[Node] = set()
    while len(placed) < len(nodes):
        progress = False
        for n in nodes:
            if n in done:
                continue
            if all(p in done or p not in members for p in n.predecessors()):
                placed.append(n)
                done.add(n)
                progress = True
        if not progress:  # a cycle cannot happen in a valid graph; keep the rest as given
            placed.extend(n for n in nodes if n not in done)
            break
    return placed


def commit(rewriter: PatternRewriter, root: Node, new: Value, matched: list[Node]) -> bool | str:
    """Replace ``root``'s output by ``new`` (built with ``rewriter``) and erase ``matched``."""
    ok = rewriter.replace([root.output], [new], matched=topo_order(matched), anchor=root)
    return True if ok else "replacement would rename a graph input, initializer or output"


class RecognitionPattern(RewritePattern):
    """A hand-written pattern whose ``find`` raises :class:`NoMatch` or returns the rewrite."""

    def match_and_rewrite(self, node: Node, rewriter: PatternRewriter) -> bool | str:
        opset = rewriter.model.opset() if rewriter.model is not None else None
        try:
            return self.find(node, rewriter, opset)
        except NoMatch as e:
            rewriter.abort()
            return e.reason or False

    def find(self, node: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        raise NotImplementedError(f"pattern {self.name!r} does not implement find()")


def _square_of(node: Node | None, x: Value) -> bool:
    """True when ``node`` computes ``x * x`` as ``Pow(x, 2)`` or ``Mul(x, x)``."""
    if is_op(node, "Mul"):
        return node.inputs[0] is x and node.inputs[1] is x
    if is_op(node, "Pow"):
        return node.inputs[0] is x and scalar_const(node.inputs[1]) == 2.0
    return False


def reciprocal_sqrt(ve: Value, numerator: Value, nodes: list[Node]) -> Node:
    """Follow ``ve`` (``var + eps``) to the node computing ``numerator / sqrt(ve)``.

    Accepted spellings: ``Div(num, Sqrt(ve))``, ``Mul(num, Reciprocal(Sqrt(ve)))``,
    ``Mul(num, Div(1, Sqrt(ve)))`` and ``Mul(num, Pow(ve, -0.5))``. Appends the nodes it walks to
    ``nodes`` and returns the one producing the normalized value."""
    user = sole_user(ve)
    if is_op(user, "Pow") and user.inputs[0] is ve and scalar_const(user.inputs[1]) == -0.5:
        nodes.append(user)
        r = user.output
    elif is_op(user, "Sqrt"):
        nodes.append(user)
        s = user.output
        nxt = sole_user(s)
        if is_op(nxt, "Div") and nxt.inputs[1] is s and nxt.inputs[0] is numerator:
            nodes.append(nxt)
            return nxt
        if is_op(nxt, "Reciprocal") or (is_op(nxt, "Div") and nxt.inputs[1] is s
                                        and scalar_const(nxt.inputs[0]) == 1.0):
            nodes.append(nxt)
            r = nxt.output
        else:
            raise NoMatch("the square root is not used as a divisor")
    else:
        raise NoMatch()
    mul = sole_user(r)
    if not (is_op(mul, "Mul") and {id(v) for v in mul.inputs} == {id(numerator), id(r)}):
        raise NoMatch("the reciprocal square root does not multiply the normalized value")
    nodes.append(mul)
    return mul


def cast_variant(x: Value, readers: set[Node], normalized: Node, nodes: list[Node]):
    """The Cast-to-float variant: when ``x`` is ``Cast(x0, to=float)`` of a float16/bfloat16
    ``x0`` read only by ``readers`` and ``normalized``'s output is cast back to ``x0``'s type,
    return ``(x0, cast_back)`` (and add both Casts to ``nodes``); otherwise None."""
    cast = x.producer()
    if not is_op(cast, "Cast") or x.is_graph_output() or cast.attr("to") != int(DType.FLOAT):
        return None
    x0 = cast.inputs[0]
    if x0 is None or x0.dtype not in LOW_PRECISION or set(x.users()) != readers:
        return None
    back = sole_user(normalized.output)
    if not is_op(back, "Cast") or back.attr("to") != int(x0.dtype):
        return None
    nodes.extend([cast, back])
    return x0, back


def affine_tail(cur: Node, x: Value, axis: int, dtype, nodes: list[Node], with_beta: bool = True):
    """Take ``Mul(cur, gamma)`` and then ``Add(., beta)`` after ``cur`` when they are per-element
    parameters of the normalized shape. Returns ``(last_node, gamma, beta)`` where gamma/beta are
    values, arrays (constants to create) or None."""
    gamma = beta = None
    nxt = sole_user(cur.output)
    if is_op(nxt, "Mul"):
        other = _other_input(nxt, cur.output)
        g = normalized_param(other, x, axis, dtype) if other is not None else None
        if g is not None:
            gamma, cur = g, nxt
            nodes.append(nxt)
            nxt = sole_user(cur.output)
    if with_beta and is_op(nxt, "Add"):
        other = _other_input(nxt, cur.output)
        b = normalized_param(other, x, axis, dtype) if other is not None else None
        if b is not None:
            beta, cur = b, nxt
            nodes.append(nxt)
    return cur, gamma, beta


def _other_input(node: Node, value: Value) -> Value | None:
    """The input of binary ``node`` that is not ``value`` (None if ``value`` is both or neither)."""
    a, b = node.inputs[0], node.inputs[1]
    if a is value and b is not value:
        return b
    if b is value and a is not value:
        return a
    return None


def as_value(op_param, rewriter: PatternRewriter) -> Value:
    return op_param if isinstance(op_param, Value) else rewriter.make_constant(op_param)


def check_eps(eps: float | None) -> float:
    if eps is None:
        raise NoMatch("epsilon is not a constant scalar")
    if not math.isfinite(eps):
        raise NoMatch("epsilon is not finite")
    return eps


class LayerNormPattern(RecognitionPattern):
    """mean/Sub/square/mean/Add eps/Sqrt/Div (/Mul gamma/Add beta) -> LayerNormalization."""

    name = "layer-norm"
    root_ops = ("ReduceMean",)

    def find(self, mean: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        x = mean.inputs[0]
        sub = sole_user(mean.output)
        if x is None or not is_op(sub, "Sub") or sub.inputs[0] is not x or \
                sub.inputs[1] is not mean.output:
            raise NoMatch()
        d = sub.output
        if d.is_graph_output():
            raise NoMatch("intermediate is a graph output")
        readers = d.users()
        squares = [n for n in readers if _square_of(n, d)]
        if len(readers) != 2 or len(squares) != 1:
            raise NoMatch()
        square = squares[0]
        var = sole_user(square.output)
        if not is_op(var, "ReduceMean") or var.inputs[0] is not square.output:
            raise NoMatch()
        add = sole_user(var.output)
        if not is_op(add, "Add"):
            raise NoMatch()
        nodes = [mean, sub, square, var, add]
        eps = check_eps(scalar_const(_other_input(add, var.output), x))
        norm = reciprocal_sqrt(add.output, d, nodes)
        if norm not in readers:  # reciprocal_sqrt checked that it reads d: cannot happen
            raise NoMatch("the centred value has uses outside the pattern")

        axes = reduce_axes(mean, opset, rank(x))
        if isinstance(axes, str):
            raise NoMatch(axes)
        if reduce_axes(var, opset, rank(x)) != axes:
            raise NoMatch("the two ReduceMean nodes reduce different axes")
        axis = trailing_axis(axes)
        if axis is None:
            raise NoMatch(f"ReduceMean over axes {list(axes)}, not the last ones")

        source, stash, last = x, 1, norm
        cast = cast_variant(x, {mean, sub}, norm, nodes)
        if cast is not None:
            source, last = cast
        elif x.dtype is not DType.FLOAT:
            kind = x.dtype.name if x.dtype is not None else "unknown"
            raise NoMatch(f"stage one computes in {kind}; LayerNormalization stashes in float32")
        dtype = source.dtype
        if not op_accepts("LayerNormalization", opset, dtype):
            raise NoMatch(f"LayerNormalization is not in opset {opset} for {dtype.name}")
        want = x.shape[axis:] if x.shape is not None else None
        if want is None or not all(isinstance(dim, int) for dim in want):
            raise NoMatch("the normalized dimensions are not static")

        last, gamma, beta = affine_tail(last, x, axis, dtype, nodes)
        if gamma is None:
            gamma = np.ones(want, dtype.numpy)
        inputs = [source, as_value(gamma, rewriter)]
        if beta is not None:  # without beta the optional B is left out: LayerNorm adds nothing
            inputs.append(as_value(beta, rewriter))
        ln = rewriter.make_node("LayerNormalization", inputs,
                                {"axis": axis, "epsilon": eps, "stash_type": stash},
                                name=last.name or mean.name)
        return commit(rewriter, last, ln.output, nodes)


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseLayerNorm(PatternPass):
    """Fuse the exported LayerNorm decomposition into LayerNormalization (opset >= 17)."""

    name = "fuse-layer-norm"
    rules = (LayerNormPattern,)
