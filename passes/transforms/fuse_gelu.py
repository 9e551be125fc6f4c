"""GELU written out by exporters -> one ``Gelu`` node (ONNX opset >= 20).

Two forms, in every algebraic spelling exporters use::

    erf:   x * 0.5 * (1 + Erf(x / sqrt(2)))                 -> Gelu(x)
    tanh:  0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
                                                             -> Gelu(x, approximate="tanh")

The matcher is anchored at the ``Erf``/``Tanh`` node and reads the expression instead of
matching fixed node shapes:

- the Erf/Tanh argument is evaluated as a polynomial in one variable ``x`` through Add, Sub, Mul,
  Div by a constant, Neg and Pow by a small integer, so ``x / 1.4142``, ``x * 0.7071``,
  ``0.7978 * (x + 0.044715 * x * x * x)`` and ``0.7978 * x + 0.0356 * Pow(x, 3)`` all read the
  same; the erf form must give ``x / sqrt(2)``, the tanh form ``sqrt(2/pi) * (x + 0.044715 x^3)``;
- the product around ``1 + Erf(..)`` is flattened (any grouping: the 0.5 multiplied first, last,
  into the ``1 + erf`` factor, or divided by 2) and must be ``0.5 * x * (1 + Erf(..))``.

Constants are compared with a relative tolerance of 1e-4 (float16: 2^-9, bfloat16: 2^-7, a few
roundings of their precision), because exporters write ``1.4142`` or ``0.7978845608`` rather
than the exact values (``1.4142`` for sqrt(2) moves the output by less than 3e-6 absolute).
Every constant must hold one element and have a rank the output already has, so the broadcast
does not change the shape. Every intermediate must be read only inside the pattern (the variable
``x`` itself may be read anywhere).

Because the matcher starts from Erf/Tanh and walks to the end of the product, it does not matter
which node ends the pattern or whether that node's output is a graph output (after
identity elimination removed an ``Identity`` before the output): the Gelu takes over the name.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from irlib import DType, Node, Value
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternPass, op_accepts
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_layer_norm import NoMatch, RecognitionPattern, commit, is_op, rank

__all__ = ["FuseGelu", "GeluPattern", "Polynomial", "read_polynomial"]

SQRT1_2 = 1.0 / math.sqrt(2.0)
SQRT_2_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715
_MAX_DEPTH = 16
_MAX_DEGREE = 5

#: A polynomial in one variable: degree -> coefficient (float64).
Polynomial = dict


def _clean(p: Polynomial) -> Polynomial:
    return {d: c for d, c in p.items() if c != 0.0}


def _add(p: Polynomial, q: Polynomial, sign: float = 1.0) -> Polynomial:
    out = dict(p)
    for d, c in q.items():
        out[d] = out.get(d, 0.0) + sign * c
    return _clean(out)


def _mul(p: Polynomial, q: Polynomial) -> Polynomial:
    out: dict[int, float] = {}
    for d1, c1 in p.items():
        for d2, c2 in q.items():
            out[d1 + d2] = out.get(d1 + d2, 0.0) + c1 * c2
    if out and max(out) > _MAX_DEGREE:
        raise NoMatch()
    return _clean(out)


class _Reader:
    """Reads values as polynomials in one variable; remembers the nodes it walked through and
    the constants it read (whose ranks are checked once the variable is known)."""

    def __init__(self):
        self.x: Value | None = None
        self.nodes: list[Node] = []
        self.consts: list[np.ndarray] = []

    def const(self, value: Value) -> float | None:
        arr = get_const(value)
        if arr is None or arr.size != 1:
            return None
        if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
            return None
        self.consts.append(arr)
        return float(arr.reshape(()).astype(np.float64))

    def read(self, value: Value, depth: int = 0) -> Polynomial:
        if value is self.x:
            return {1: 1.0}
        c = self.const(value)
        if c is not None:
            return _clean({0: c})
        node = value.producer()
        inner = (depth < _MAX_DEPTH and is_op(node, "Add", "Sub", "Mul", "Div", "Neg", "Pow")
                 and not value.is_graph_output() and value.num_uses() == 1)
        if not inner:
            if self.x is None:  # the one variable: a value read several times, or an input
                self.x = value
                return {1: 1.0}
            raise NoMatch()
        self.nodes.append(node)
        op = node.op_type
        if op == "Neg":
            return _add({}, self.read(node.inputs[0], depth + 1), -1.0)
        if op == "Pow":
            n = self.const(node.inputs[1])
            if n is None or n != int(n) or not 1 <= n <= _MAX_DEGREE:
                raise NoMatch()
            base = self.read(node.inputs[0], depth + 1)
            out = {0: 1.0}
            for _ in range(int(n)):
                out = _mul(out, base)
            return out
        a = self.read(node.inputs[0], depth + 1)
        if op == "Div":
            c = self.const(node.inputs[1])
            if c is None or c == 0.0:
                raise NoMatch()
            return {d: v / c for d, v in a.items()}
        b = self.read(node.inputs[1], depth + 1)
        if op == "Add":
            return _add(a, b)
        if op == "Sub":
            return _add(a, b, -1.0)
        return _mul(a, b)


def read_polynomial(value: Value) -> tuple[Polynomial, Value | None]:
    """``value`` as a polynomial in one variable, and that variable (for tests and reuse).
    Raises :class:`NoMatch` when it is not one."""
    reader = _Reader()
    return reader.read(value), reader.x


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * abs(b)


def _tolerance(dtype) -> float:
    """Relative tolerance on the constants: 1e-4, or four half-ulps of a 16-bit type (a
    coefficient may be the product of two rounded constants)."""
    if dtype is DType.FLOAT16:
        return 2.0 ** -9
    if dtype is DType.BFLOAT16:
        return 2.0 ** -7
    return 1e-4


class GeluPattern(RecognitionPattern):
    """0.5 * x * (1 + Erf(x / sqrt 2)) -> Gelu(x); the tanh form -> Gelu(x, approximate=tanh)."""

    name = "gelu"
    root_ops = ("Erf", "Tanh")

    def match(self, t: Node) -> tuple[Value, Node, list[Node]]:
        """Read the decomposition around the Erf/Tanh node ``t``: ``(x, root, nodes)`` where
        ``root`` computes the GELU of ``x`` and ``nodes`` are the nodes it replaces; raises
        NoMatch otherwise. (Shared with the ORT -O3 fusion, which emits contrib ops instead.)"""
        if not is_op(t, "Erf", "Tanh"):
            raise NoMatch()
        arg = t.inputs[0]
        if arg is None or arg.is_graph_output() or arg.num_uses() != 1:
            raise NoMatch()
        reader = _Reader()
        poly = reader.read(arg)
        x = reader.x
        if x is None:
            raise NoMatch()
        tol = _tolerance(x.dtype)
        if t.op_type == "Erf":
            if set(poly) != {1} or not _close(poly[1], SQRT1_2, tol):
                raise NoMatch()
        elif set(poly) != {1, 3} or not _close(poly[1], SQRT_2_PI, tol) or \
                not _close(poly[3] / poly[1], TANH_CUBIC, tol):
            raise NoMatch()
        nodes = [*reader.nodes, t]

        # 1 + t
        plus = _sole_reader(t.output)
        if not is_op(plus, "Add"):
            raise NoMatch()
        other = plus.inputs[1] if plus.inputs[0] is t.output else plus.inputs[0]
        one = reader.const(other)
        if one is None or other is t.output or not _close(one, 1.0, tol):
            raise NoMatch()
        nodes.append(plus)

        # the product 0.5 * x * (1 + t), grouped in any way
        root = self._product(plus.output, x, reader, nodes, tol)
        r = rank(x)
        for arr in reader.consts:
            if arr.ndim > 0 and (r is None or arr.ndim > r):
                raise NoMatch("a constant's rank would broadcast the output to a bigger shape")
        return x, root, nodes

    def find(self, t: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        x, root, nodes = self.match(t)
        if x.dtype is None or not op_accepts("Gelu", opset, x.dtype):
            kind = x.dtype.name if x.dtype is not None else "unknown type"
            raise NoMatch(f"Gelu is not in opset {opset} for {kind}")
        attrs = {"approximate": "tanh"} if t.op_type == "Tanh" else None
        gelu = rewriter.make_node("Gelu", [x], attrs, name=root.name or t.name)
        return commit(rewriter, root, gelu.output, nodes)

    def _product(self, start: Value, x: Value, reader: _Reader, nodes: list[Node],
                 tol: float) -> Node:
        """Climb from ``1 + t`` through the Mul/Div nodes reading it until the product is
        ``0.5 * x * (1 + t)``; return the node that completes it."""
        cur, xs, scale = start, 0, 1.0
        for _ in range(4):
            node = _sole_reader(cur)
            if not is_op(node, "Mul", "Div"):
                raise NoMatch()
            if node.op_type == "Div":
                if node.inputs[0] is not cur:
                    raise NoMatch()
                c = reader.const(node.inputs[1])
                if c is None or c == 0.0:
                    raise NoMatch()
                scale /= c
            else:
                other = node.inputs[1] if node.inputs[0] is cur else node.inputs[0]
                if other is cur:
                    raise NoMatch()
                n_x, c = self._factors(other, x, reader, nodes)
                xs += n_x
                scale *= c
            nodes.append(node)
            cur = node.output
            if xs > 1:
                raise NoMatch()
            if xs == 1 and _close(scale, 0.5, tol):
                return node
        raise NoMatch()

    def _factors(self, value: Value, x: Value, reader: _Reader, nodes: list[Node],
                 depth: int = 0) -> tuple[int, float]:
        """``value`` as ``x**k * c``: returns ``(k, c)``, walking single-use Mul/Div by constant."""
        if value is x:
            return 1, 1.0
        c = reader.const(value)
        if c is not None:
            return 0, c
        node = value.producer()
        if depth > 4 or not is_op(node, "Mul", "Div") or value.is_graph_output() or \
                value.num_uses() != 1:
            raise NoMatch()
        nodes.append(node)
        k1, c1 = self._factors(node.inputs[0], x, reader, nodes, depth + 1)
        if node.op_type == "Div":
            d = reader.const(node.inputs[1])
            if d is None or d == 0.0:
                raise NoMatch()
            return k1, c1 / d
        k2, c2 = self._factors(node.inputs[1], x, reader, nodes, depth + 1)
        return k1 + k2, c1 * c2


def _sole_reader(value: Value) -> Node | None:
    """The node reading ``value`` when it is read once and is not a graph output."""
    if value.is_graph_output() or value.num_uses() != 1:
        return None
    return value.users()[0]


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseGelu(PatternPass):
    """Fuse the erf and tanh GELU decompositions into Gelu (opset >= 20)."""

    name = "fuse-gelu"
    rules = (GeluPattern,)
