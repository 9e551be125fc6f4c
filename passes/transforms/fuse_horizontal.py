"""Horizontal fusion: sibling MatMul/Gemm/Conv nodes that read the same input with constant
weights become one wider op followed by a Split.

The Q, K and V projections of a transformer layer all read the same activations; so do the
parallel 1x1 convolutions of an Inception block. Each sibling computes ``x @ W_i (+ b_i)``, and::

    [x @ W_1, x @ W_2, x @ W_3] == x @ concat(W_1, W_2, W_3)      (split on the last axis)

so three products become one product over a weight three times as wide and a ``Split`` that
hands each old reader its part. Each reader keeps reading a value of the same name and type.

Siblings are grouped by the value they read as input 0 and by a key saying they can share one op:

- ``MatMul(x, W)`` with a constant 2-D ``W [K, N_i]``, optionally followed by the ``Add`` of a
  constant bias that varies only along the last axis (``[N_i]``, ``[1, N_i]``, a scalar ...): the
  weights are concatenated on axis 1, the biases (zeros for a sibling without one) on axis 0, and
  the result is ``MatMul -> Add -> Split(axis=-1)``. The ``Add`` is taken along only when it is
  the MatMul output's single reader.
- ``Gemm(x, B, C)`` with a constant ``B``, equal ``transA``/``transB``/``alpha``/``beta``, and a
  constant ``C`` that is one row (``[N_i]``, ``[1, N_i]``, a scalar) or absent: ``B`` is
  concatenated on axis 1 (``transB=0``, ``[K, N_i]``) or axis 0 (``transB=1``, ``[N_i, K]``), ``C``
  on axis 0, then ``Split(axis=1)``. A 2-D ``MatMul`` (+ ``Add``) reading the same ``x`` is a Gemm
  with the default attributes, so it joins a group of such Gemms (after ``fuse-matmul-add`` the
  projections with a bias are Gemm, those without stay MatMul: one group still takes them all).
- ``Conv(x, W, b)`` with ``group=1``, constant ``W [M_i, C, k...]`` and equal kernel, strides,
  pads, dilations and ``auto_pad``: ``W`` is concatenated on axis 0, ``b`` (zeros where missing)
  too, then ``Split(axis=1)``.

Weights must be constants (``passes.constants.get_const``), never graph inputs (a default a user
may override at run time), and of one dtype per group. The ``Split`` takes its sizes as an
attribute before opset 13 and as an input from 13 on. The fused op is inserted where the first
sibling was: it reads only ``x`` and constants, so every reader of a sibling comes after it.

When it pays. Fusing saves one kernel launch per sibling and reads ``x`` once instead of once per
sibling; it costs a ``Split`` that copies the whole output once more. Measured on ONNX Runtime's
CPU kernels (graph optimizations off, medians of interleaved rounds, 16-core idle machine), fused
vs unfused, time ratio:

=====================================================  ==========  ==========
group                                                  1 thread    4 threads
=====================================================  ==========  ==========
QKV + bias, x [1,128,768], 3 x [768,768] (BERT-base)   1.00-1.02   0.99
QKV, no bias, x [1,128,768]                            1.02-1.03   1.18
QKV + bias, x [1,512,768]                              1.06        1.29
QKV + bias, x [1,16,768]                               1.01        1.00
small, x [1,128,64], 3 x [64,16]                       1.04-1.05   0.85
tiny, x [1,8,32], 4 x [32,4] + bias                    0.82-0.83   0.83
Inception 1x1, x [1,192,28,28], 64/96/16 channels      0.97-1.03   1.08
=====================================================  ==========  ==========

MLAS already runs one projection near peak, so a wider product gains nothing and the Split's copy
is pure cost; only groups so small that per-op overhead dominates win. On BERT-base (zoo, 12
groups, 350 -> 338 nodes after -O2) the end-to-end latency did not move beyond noise. So the pass
is *not* in the -O levels (a pass that does not pay for itself is not in the default levels);
run it explicitly (``--passes``), e.g. for a backend where a launch is expensive, or with
``max-width`` to fuse only the small groups that do pay on CPU. The options:

- ``max-width`` (default 0: no bound): a group whose total output width (columns or output
  channels) is above it is left alone (``max-width=64`` fuses only groups like the "tiny" and "small" rows).
- ``min-width`` (default 0: no bound): a group whose total width is below it is left alone.
- ``max-bytes`` (default 64 MiB): a group whose concatenated weight would be larger is left alone
  (the fused constant is a copy of the old ones until they are dropped, so memory peaks at twice).

>>> run_passes(model, "fuse-horizontal{max-bytes=1048576}")   # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import logging

import numpy as np

from irlib import Graph, Model, Node, TensorType, Value
from passes.base import Pass, PassResult
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import PatternRewriter, attr_or_default
from passes.transforms.fuse_conv_bn import copy_attributes

__all__ = ["FuseHorizontal"]

log = logging.getLogger(__name__)

_ONNX = ("", "ai.onnx")
_GEMM_ATTRS = frozenset({"alpha", "beta", "transA", "transB"})
_CONV_ATTRS = frozenset({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})


@dataclasses.dataclass
class _Sibling:
    """One member of a group: the node, the bias Add taken along, its constants and output."""

    node: Node
    add: Node | None        # MatMul's bias Add (consumed with it), else None
    weight: np.ndarray
    bias: np.ndarray | None  # 1-D, ``width`` long
    width: int              # columns (MatMul/Gemm) or output channels (Conv)
    out: Value              # what the Split output replaces (the Add's output when add is set)


def _row_bias(c: np.ndarray, width: int, out_rank: int) -> np.ndarray | str:
    """The ``width``-vector that constant ``c`` adds to each row of a rank-``out_rank`` output
    whose last axis has ``width`` elements, or why ``c`` is not such a bias."""
    if c.ndim > out_rank:
        return f"bias of rank {c.ndim} would grow the rank-{out_rank} output"
    if any(d != 1 for d in c.shape[:-1]):
        return "bias varies along an axis other than the last"
    last = c.shape[-1] if c.ndim else 1
    if last not in (1, width):
        return f"bias has {last} columns, the product {width}"
    return np.broadcast_to(c.reshape(-1), (width,))


def _plain_attrs(node: Node, known: frozenset) -> str | None:
    for a in node.attributes.values():
        if a.ref_attr_name:
            return "attribute refers to a function parameter"
        if a.name not in known:
            return f"attribute {a.name!r} is not handled"
    return None


def _bias_add(mm: Node, width: int, out_rank: int, dtype) -> tuple[Node, np.ndarray] | None:
    """The Add of a constant row bias that is the single reader of ``mm``'s output, if any."""
    out = mm.output
    if out.is_graph_output() or out.num_uses() != 1:
        return None
    add, index = out.uses()[0]
    if add.op_type != "Add" or add.domain not in _ONNX or len(add.inputs) != 2:
        return None
    other = add.inputs[1 - index]
    c = get_const(other)
    if c is None or c.dtype != dtype:
        return None
    vec = _row_bias(c, width, out_rank)
    return None if isinstance(vec, str) else (add, vec)


def _describe(node: Node, opset: int | None) -> tuple[tuple, _Sibling] | str:
    """``(group key, sibling)`` for a node that could be fused with others reading its input 0,
    or the reason it cannot."""
    if node.domain not in _ONNX or not node.inputs or node.inputs[0] is None:
        return "not a standard op with a first input"
    x = node.inputs[0]
    if node.op_type == "MatMul":
        if len(node.inputs) != 2:
            return "MatMul without two inputs"
        w = get_const(node.inputs[1])
        if w is None:
            return "weight is not a constant"
        if w.ndim != 2 or w.dtype == object:
            return "weight is not a 2-D numeric tensor"
        if x.shape is None:
            return "input rank is unknown"
        rank = len(x.shape)
        if rank < 1:
            return "input is a scalar"
        width = w.shape[1]
        found = _bias_add(node, width, rank, w.dtype)
        add, bias = found if found is not None else (None, None)
        sib = _Sibling(node, add, w, bias, width, add.output if add is not None else node.output)
        if rank == 2:  # a Gemm with default attributes: may join Gemm siblings
            return ("linear2d", str(w.dtype), w.shape[0], 0, 0, 1.0, 1.0), sib
        return ("matmul", str(w.dtype), w.shape[0], rank), sib
    if node.op_type == "Gemm":
        if opset is not None and opset < 7:
            return "Gemm before opset 7 (broadcast attribute)"
        reason = _plain_attrs(node, _GEMM_ATTRS)
        if reason:
            return reason
        if len(node.inputs) < 2:
            return "Gemm without B"
        w = get_const(node.inputs[1])
        if w is None:
            return "weight is not a constant"
        if w.ndim != 2 or w.dtype == object:
            return "weight is not a 2-D numeric tensor"
        trans_a, trans_b = int(node.attr("transA", 0)), int(node.attr("transB", 0))
        alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
        width, k = (w.shape[0], w.shape[1]) if trans_b else (w.shape[1], w.shape[0])
        bias = None
        c_value = node.inputs[2] if len(node.inputs) > 2 else None
        if c_value is not None:
            c = get_const(c_value)
            if c is None:
                return "Gemm C is not a constant"
            if c.dtype != w.dtype:
                return "Gemm C and B dtypes differ"
            bias = _row_bias(c, width, 2)
            if isinstance(bias, str):
                return bias
        key = ("linear2d", str(w.dtype), k, trans_a, trans_b, alpha, beta)
        return key, _Sibling(node, None, w, bias, width, node.output)
    if node.op_type == "Conv":
        reason = _plain_attrs(node, _CONV_ATTRS)
        if reason:
            return reason
        if int(node.attr("group", 1)) != 1:
            return "grouped Conv"
        w = get_const(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None:
            return "weight is not a constant"
        if w.ndim < 3 or w.dtype == object:
            return "weight is not a numeric tensor of rank >= 3"
        bias = None
        b_value = node.inputs[2] if len(node.inputs) > 2 else None
        if b_value is not None:
            bias = get_const(b_value)
            if bias is None:
                return "Conv bias is not a constant"
            if bias.shape != (w.shape[0],) or bias.dtype != w.dtype:
                return "Conv bias is not a vector of the weight's dtype"
        spatial = w.ndim - 2
        kernel = tuple(node.attr("kernel_shape", w.shape[2:]))
        if kernel != tuple(w.shape[2:]):
            return "kernel_shape disagrees with the weight"
        key = ("Conv", str(w.dtype), w.shape[1], kernel,
               tuple(node.attr("strides", (1,) * spatial)),
               tuple(node.attr("pads", (0,) * (2 * spatial))),
               tuple(node.attr("dilations", (1,) * spatial)),
               str(attr_or_default(node, "auto_pad", opset) or "NOTSET"))
        return key, _Sibling(node, None, w, bias, w.shape[0], node.output)
    return "not MatMul, Gemm or Conv"


def _wide_type(sib: _Sibling, axis: int, total: int) -> TensorType | None:
    """The type of the fused output: a sibling's, with ``total`` along ``axis``."""
    t = sib.node.output.type
    if not isinstance(t, TensorType):
        return None
    if t.shape is None or not -len(t.shape) <= axis < len(t.shape):
        return TensorType(t.dtype)
    shape = list(t.shape)
    shape[axis] = total
    return TensorType(t.dtype, tuple(shape))


@register_pass
@dataclasses.dataclass(frozen=True)
class FuseHorizontal(Pass):
    """Fuse sibling MatMul/Gemm/Conv nodes reading one input into one wide op and a Split.

    The QKV projections of a transformer, the 1x1 convs of an Inception block. Not in the -O
    levels: on ORT's CPU kernels it does not pay for projection-sized groups (see the module).

    >>> run_passes(model, "fuse-horizontal")   # doctest: +SKIP
    """

    name = "fuse-horizontal"

    #: Leave a group alone when its total output width (columns / channels) is below this.
    min_width: int = 0
    #: Leave a group alone when its total output width is above this (0: no bound).
    max_width: int = 0
    #: Leave a group alone when its concatenated weight would exceed this many bytes (64 MiB).
    max_bytes: int = 64 * 1024 * 1024

    def run(self, model: Model, ctx) -> PassResult:
        opset = model.opset()
        counts: collections.Counter = collections.Counter()
        for graph in list(model.graph.all_graphs()):
            self._run_graph(model, graph, opset, counts)
        stats = {"groups": counts["groups"], "fused": counts["fused"],
                 "inserted": counts["inserted"], "removed": counts["removed"]}
        stats.update({k: v for k, v in sorted(counts.items()) if k.startswith("refused:")})
        return PassResult(changed=counts["groups"] > 0, stats=stats)

    def _run_graph(self, model: Model, graph: Graph, opset: int | None,
                   counts: collections.Counter) -> None:
        groups: dict[tuple, list[_Sibling]] = {}
        for node in graph:
            if node.op_type not in ("MatMul", "Gemm", "Conv"):
                continue
            found = _describe(node, opset)
            if isinstance(found, str):
                continue
            key, sib = found
            groups.setdefault((id(node.inputs[0]),) + key, []).append(sib)
        rewriter = PatternRewriter(model, graph)
        for key, sibs in groups.items():
            if len(sibs) < 2:
                continue
            reason = self._fuse(rewriter, graph, key[1], sibs, opset)
            if reason:
                counts[f"refused:{reason}"] += 1
                continue
            counts["groups"] += 1
            counts["fused"] += len(sibs)
        counts["inserted"] += rewriter.inserted
        counts["removed"] += rewriter.removed

    def _fuse(self, rewriter: PatternRewriter, graph: Graph, kind: str, sibs: list[_Sibling],
              opset: int | None) -> str | None:
        """Rewrite one group; returns a short reason when it is left alone."""
        first = sibs[0].node
        x = first.inputs[0]  # read now: an earlier group may have rewired it to a Split output
        if any(s.node.inputs[0] is not x for s in sibs):
            return "inputs changed"
        widths = [s.width for s in sibs]
        total = sum(widths)
        if total < self.min_width:
            return "min-width"
        if self.max_width and total > self.max_width:
            return "max-width"
        # A 2-D group becomes a Gemm when one of its members is (its attributes hold for all).
        gemm = next((s.node for s in sibs if s.node.op_type == "Gemm"), None)
        w_axis = 0 if kind == "Conv" or (gemm is not None and gemm.attr("transB", 0)) else 1
        if sum(s.weight.nbytes for s in sibs) > self.max_bytes:
            return "max-bytes"
        weight = np.concatenate([s.weight for s in sibs], axis=w_axis)
        bias = None
        if any(s.bias is not None for s in sibs):
            dtype = weight.dtype
            bias = np.concatenate([np.zeros(s.width, dtype) if s.bias is None
                                   else np.asarray(s.bias, dtype) for s in sibs])
        axis = len(x.shape) - 1 if kind == "matmul" else 1

        rewriter.begin(self.name, graph)
        w_value = rewriter.make_constant(weight)
        b_value = rewriter.make_constant(bias) if bias is not None else None
        fused_name = f"{first.name}_horizontal" if first.name else ""
        if kind == "Conv":
            inputs = [x, w_value] + ([b_value] if b_value is not None else [])
            wide = rewriter.make_node("Conv", inputs, copy_attributes(first),
                                      name=fused_name).output
        elif gemm is not None:
            inputs = [x, w_value] + ([b_value] if b_value is not None else [])
            wide = rewriter.make_node("Gemm", inputs, copy_attributes(gemm),
                                      name=fused_name).output
        else:
            wide = rewriter.make_node("MatMul", [x, w_value], name=fused_name).output
            if b_value is not None:
                wide.type = _wide_type(sibs[0], axis, total)
                wide = rewriter.make_node("Add", [wide, b_value]).output
        wide.type = _wide_type(sibs[0], axis, total)
        if opset is not None and opset < 13:
            split = rewriter.make_node("Split", [wide], {"axis": axis, "split": widths},
                                       num_outputs=len(sibs))
        else:
            sizes = rewriter.make_constant(np.array(widths, np.int64))
            split = rewriter.make_node("Split", [wide, sizes], {"axis": axis},
                                       num_outputs=len(sibs))
        matched = [n for s in sibs for n in ((s.node, s.add) if s.add is not None else (s.node,))]
        old_weights = [s.node.inputs[1] for s in sibs]
        old_biases = [v for s in sibs for v in
                      (s.add.inputs if s.add is not None else s.node.inputs[2:3])
                      if v is not s.node.output]
        if not rewriter.replace([s.out for s in sibs], list(split.outputs), matched=matched,
                                anchor=first):
            return "output cannot be replaced"
        _drop_dead_initializers(graph, old_weights + old_biases)
        log.debug("fuse-horizontal: %d %s siblings of %r -> width %d", len(sibs), kind,
                  x.name, total)
        return None


def _drop_dead_initializers(graph: Graph, values: list[Value | None]) -> None:
    """Remove the replaced weights that nothing reads any more (graph inputs stay)."""
    for v in dict.fromkeys(v for v in values if v is not None):
        if (v.is_initializer() and v.graph is graph and not v.has_uses()
                and not v.is_graph_output() and not v.is_graph_input()):
            graph.remove_initializer(v)
