"""Scaled dot-product attention as exported for BERT and ViT -> ONNX ``Attention`` (opset >= 23).

The exported subgraph, on 4-D ``[batch, heads, seq, head_size]`` tensors::

    s = MatMul(Q, Transpose(K'))         K' any layout whose transpose is K^T
    s = Div(s, c) | Mul(s, c)            optional; or Q (and/or K^T) multiplied by a constant first
    s = Add(s, mask)                     optional float mask
    p = Softmax(s, axis=-1)
    y = MatMul(p, V)

is ``Attention(Q, K, V, mask, scale=...)`` with the product of the scaling constants as ``scale``
(``Div`` by ``c`` counts as ``1/c``; without any, ``scale=1``, never the op's ``1/sqrt(d)``
default). ``K`` is ``K'`` itself when the Transpose swaps the last two axes, or a new Transpose of
``K'`` otherwise (BERT's ``Transpose(k, perm=[0,2,3,1])`` of the ``[batch, seq, heads, d]``
projection becomes ``Transpose(k, perm=[0,2,1,3])``).

``Attention`` is standard ONNX from opset 23 and ONNX Runtime 1.32 runs it on CPU; at an older
opset the pattern is left alone (no contrib ops at -O2: ``com.microsoft`` fusions are -O3
territory; ``convert-opset{target=23}`` raises the opset when the user wants the standard op).

The rule asks for what makes the two computations the same, and for what ORT's kernel needs:

- Q, K, V of rank 4 with known and equal batch and head dimensions (MatMul would broadcast a 1
  where Attention would refuse or read it as grouped-query attention);
- one element type for Q, K, V and the mask (a float, additive mask); the mask must broadcast to
  the scores without making them bigger. ORT's kernel reads the mask's last two dimensions as
  ``(q_seq, kv_seq)``, so a broadcast mask such as BERT's ``[batch, 1, 1, kv_seq]`` is first
  expanded to ``[..., q_seq, kv_seq]`` (an ``Expand`` by a constant shape when the lengths are
  static, by ``Shape`` slices of Q and V when they are symbolic);
- Softmax over the last axis; every intermediate read only inside the pattern.

GPT-2 style exports put a ``Where`` (causal mask) between the scaling and the Softmax: that is
not this pattern and stays as it is. A fully masked row (every score ``-inf``) gives NaN in the
decomposition and zeros in ``Attention`` (the standard's errata), the only outputs that differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from irlib import Node, Value
from passes.registry import register_pass
from passes.rewrite import PatternPass, attr_or_default, op_accepts
from passes.rewrite.rewriter import PatternRewriter
from passes.transforms.fuse_layer_norm import (
    NoMatch, RecognitionPattern, commit, is_op, scalar_const, sole_user,
)

__all__ = ["FuseAttention", "AttentionPattern", "key_perm"]


def key_perm(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation ``p`` with ``Transpose(Transpose(k', p), swap last two) == Transpose(k',
    perm)``: how to get K from the tensor whose transpose by ``perm`` is K^T."""
    return tuple(perm[:-2]) + (perm[-1], perm[-2])


def _same_dim(a, b) -> bool:
    return a is not None and a == b


def _single_use(value: Value) -> Node | None:
    """The producer of ``value`` when ``value`` is read exactly once (and is not an output)."""
    if value is None or value.is_graph_output() or value.num_uses() != 1:
        return None
    return value.producer()


def _scaled(value: Value, like: Value, nodes: list[Node]) -> tuple[Value, float]:
    """Strip one Mul/Div by a constant scalar from ``value`` (read once): ``(inner, factor)``."""
    node = _single_use(value)
    if is_op(node, "Mul"):
        for i in (0, 1):
            c = scalar_const(node.inputs[1 - i], like)
            if c is not None and node.inputs[i] is not node.inputs[1 - i]:
                nodes.append(node)
                return node.inputs[i], c
    if is_op(node, "Div"):
        c = scalar_const(node.inputs[1], like)
        if c is not None and c != 0.0:
            nodes.append(node)
            return node.inputs[0], 1.0 / c
    return value, 1.0


class AttentionPattern(RecognitionPattern):
    """MatMul(Softmax(MatMul(Q, K^T) * scale + mask), V) -> Attention(Q, K, V, mask)."""

    name = "attention"
    root_ops = ("Softmax",)

    def find(self, sm: Node, rewriter: PatternRewriter, opset: int | None) -> bool | str:
        out = sole_user(sm.output)
        if not is_op(out, "MatMul") or out.inputs[0] is not sm.output or out.inputs[1] is sm.output:
            raise NoMatch()
        v = out.inputs[1]
        nodes: list[Node] = [sm, out]

        # scores: [Add(., mask)] <- [Mul/Div by c] <- MatMul(Q, [Mul c] Transpose(K'))
        scores, mask = sm.inputs[0], None
        add = _single_use(scores)
        if is_op(add, "Add"):
            for i in (0, 1):
                if self._qk(add.inputs[i], [], scores) is not None:
                    scores, mask = add.inputs[i], add.inputs[1 - i]
                    nodes.append(add)
                    break
        found = self._qk(scores, nodes, scores)
        if found is None:
            raise NoMatch()
        q, kt_src, perm, scale = found

        # checks: shapes, types, opset
        axis = attr_or_default(sm, "axis", opset)
        if axis not in (-1, 3):
            raise NoMatch("Softmax is not over the last axis")
        shapes = [t.shape for t in (q, kt_src, v)]
        if any(s is None or len(s) != 4 for s in shapes):
            raise NoMatch("Q, K and V are not known to be 4-D")
        q_shape, v_shape = shapes[0], shapes[2]
        k_shape = tuple(shapes[1][p] for p in key_perm(perm))
        for i in (0, 1):
            if not (_same_dim(q_shape[i], k_shape[i]) and _same_dim(q_shape[i], v_shape[i])):
                raise NoMatch("batch or head dimensions of Q, K, V differ or are unknown")
        dtype = q.dtype
        if dtype is None or kt_src.dtype != dtype or v.dtype != dtype:
            raise NoMatch("Q, K and V element types differ or are unknown")
        if not op_accepts("Attention", opset, dtype):
            raise NoMatch(f"Attention is not in opset {opset} for {dtype.name}")
        if mask is not None:
            self._check_mask(mask, dtype, q_shape, k_shape)

        # rewrite
        k = kt_src
        p = key_perm(perm)
        if p != tuple(range(4)):
            k = rewriter.make_node("Transpose", [kt_src], {"perm": list(p)}).output
        inputs = [q, k, v]
        if mask is not None:
            inputs.append(self._expanded_mask(mask, q, v, q_shape, k_shape, rewriter))
        attn = rewriter.make_node("Attention", inputs, {"scale": float(scale)},
                                  name=out.name or sm.name)
        return commit(rewriter, out, attn.output, nodes)

    def _qk(self, scores: Value, nodes: list[Node], like: Value):
        """``(Q, K', perm, scale)`` when ``scores`` is ``MatMul(Q c1, Transpose(K', perm) c2) c3``
        (each scaling optional), adding the walked nodes to ``nodes``; else None."""
        walked: list[Node] = []
        inner, c3 = _scaled(scores, like, walked)
        mm = _single_use(inner)
        if not is_op(mm, "MatMul"):
            return None
        walked.append(mm)
        q, c1 = _scaled(mm.inputs[0], like, walked)
        kt, c2 = _scaled(mm.inputs[1], like, walked)
        tr = _single_use(kt)
        if not is_op(tr, "Transpose"):
            return None
        perm = tr.attr("perm")
        if perm is None or len(perm) != 4 or sorted(perm) != [0, 1, 2, 3]:
            return None
        walked.append(tr)
        nodes.extend(walked)
        return q, tr.inputs[0], tuple(perm), c1 * c2 * c3

    @staticmethod
    def _check_mask(mask: Value, dtype, q_shape, k_shape) -> None:
        if mask.dtype != dtype:
            raise NoMatch("the mask's element type differs from Q's")
        m = mask.shape
        if m is None or len(m) > 4:
            raise NoMatch("the mask's shape is unknown or of rank > 4")
        scores = (q_shape[0], q_shape[1], q_shape[2], k_shape[2])
        for dim, full in zip(reversed(m), reversed(scores)):
            if dim != 1 and not _same_dim(dim, full):
                raise NoMatch("the mask does not broadcast to the scores' shape")

    @staticmethod
    def _expanded_mask(mask: Value, q: Value, v: Value, q_shape, k_shape,
                       rewriter: PatternRewriter) -> Value:
        """``mask`` with its last two dimensions equal to (q_seq, kv_seq), as ORT wants."""
        m = mask.shape
        s, l = q_shape[2], k_shape[2]
        if len(m) >= 2 and _same_dim(m[-2], s) and _same_dim(m[-1], l):
            return mask
        lead = [1] * (max(len(m), 2) - 2)
        if isinstance(s, int) and isinstance(l, int):
            shape = rewriter.make_constant(np.array(lead + [s, l], np.int64))
        else:
            q_seq = rewriter.make_node("Shape", [q], {"start": 2, "end": 3}).output
            kv_seq = rewriter.make_node("Shape", [v], {"start": 2, "end": 3}).output
            parts = [q_seq, kv_seq]
            if lead:
                parts.insert(0, rewriter.make_constant(np.array(lead, np.int64)))
            shape = rewriter.make_node("Concat", parts, {"axis": 0}).output
        return rewriter.make_node("Expand", [mask, shape]).output


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseAttention(PatternPass):
    """Fuse MatMul/scale/mask/Softmax/MatMul attention into Attention (opset >= 23)."""

    name = "fuse-attention"
    rules = (AttentionPattern,)
