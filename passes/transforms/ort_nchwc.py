"""CNNs in ONNX Runtime's blocked NCHWc layout (``com.microsoft.nchwc`` ops), as ORT's own
level-3 ``NchwcTransformer`` does when a session loads the model, but done once, ahead of time.

ORT's CPU convolutions are fastest on tensors whose channels are split into blocks of ``B``
(8 with AVX2, 16 with AVX512: MLAS's ``NchwcBlockSize``) and stored innermost,
``[N, C/B, H, W, B]``. This pass rewrites, in one walk in topological order:

- ``Conv`` / ``com.microsoft.FusedConv`` (2-D, float32, constant weights and bias) ->
  ``nchwc.Conv`` with the weights reordered ahead of time: ``OIHWBiBo`` (blocks of output and of
  input channels innermost), or ``OIHWBo`` for a depthwise Conv and for a first Conv whose few
  input channels (``C < B``) are read straight from the NCHW tensor. Output channels are padded
  with zero filters up to a multiple of ``B``; input channels (and grouped Convs' per-group
  channels) must already be multiples of ``B``, as ORT asks;
- ``MaxPool`` (one output), ``AveragePool``, ``GlobalMaxPool``, ``GlobalAveragePool`` on
  4-D float32 tensors whose channels are a multiple of ``B`` -> their ``nchwc`` versions;
- ``Add`` of two blocked tensors of the same known shape: folded into the ``nchwc.Conv`` that
  produces one of them (its ``Sum`` input: ``act(conv(x) + b + sum)``) when that Conv has no
  activation yet and no other reader, else an ``Add`` of the blocked tensors;
- an activation (Relu, Sigmoid, Tanh, LeakyRelu, HardSigmoid, Clip; ``com.microsoft.QuickGelu``)
  of a blocked tensor: fused into the producing ``nchwc.Conv`` when it can take it, else applied
  to the blocked tensor itself (elementwise ops do not care about the layout).

``nchwc.ReorderInput`` converts an NCHW tensor that a blocked op reads (once per tensor);
``nchwc.ReorderOutput{channels=C}`` converts back for every other reader and graph output, so
the model's interface and every value outside the blocked region keep their NCHW layout.

The block size is a property of the machine: ``block-size=0`` (the default) asks the
onnxruntime installed here, by letting it optimize a one-Conv model and reading the width of the
padded filter; when this ORT does not use NCHWc (block size 1, or not an x86-64 build), the pass
does nothing. Like ORT's own optimized models with NCHWc, the output is meant for machines with
the same block size (``irc compile`` on the machine that serves the model).

Example (AVX2, ``B = 8``)::

    y = Relu(Conv(x, W[16,3,3,3]))        ->   t = nchwc.Conv(x, W', activation="Relu")
                                                y = nchwc.ReorderOutput(t, channels=16)
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np

from irlib import DType, Model, Node, TensorType, Value
from passes.base import Pass, PassResult
from passes.constants import get_const
from passes.registry import register_pass
from passes.rewrite import attr_or_default
from passes.transforms.fuse_conv_bn import copy_attributes
from passes.transforms.ort_common import (
    MS_DOMAIN, NCHWC_DOMAIN, activation_attrs, ensure_domain, is_float32, is_std,
)

__all__ = ["OrtNchwc", "ort_nchwc_block_size", "reorder_filter_oihwbibo", "reorder_filter_oihwbo"]

log = logging.getLogger(__name__)

_POOLS = ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool")
_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip")


def _pad_out(w: np.ndarray, block: int) -> np.ndarray:
    out = -(-w.shape[0] // block) * block
    if out == w.shape[0]:
        return w
    return np.concatenate([w, np.zeros((out - w.shape[0],) + w.shape[1:], w.dtype)])


def reorder_filter_oihwbibo(w: np.ndarray, block: int) -> np.ndarray:
    """``[O, I, H, W]`` -> MLAS's ``OIHWBiBo`` order, shape ``[O', I, H, W]`` (``O'`` padded to a
    multiple of ``block``; ``I`` must be one): ``[O'/B, I/B, H, W, Bi, Bo]`` flattened."""
    w = _pad_out(w, block)
    o, i, h, k = w.shape
    r = w.reshape(o // block, block, i // block, block, h, k).transpose(0, 2, 4, 5, 3, 1)
    return np.ascontiguousarray(r).reshape(o, i, h, k)


def reorder_filter_oihwbo(w: np.ndarray, block: int) -> np.ndarray:
    """``[O, I, H, W]`` -> MLAS's ``OIHWBo`` order (``[O'/B, I, H, W, Bo]`` flattened), for
    depthwise Convs and Convs reading an NCHW input."""
    w = _pad_out(w, block)
    o, i, h, k = w.shape
    r = w.reshape(o // block, block, i, h, k).transpose(0, 2, 3, 4, 1)
    return np.ascontiguousarray(r).reshape(o, i, h, k)


@functools.lru_cache(maxsize=1)
def ort_nchwc_block_size() -> int:
    """The NCHWc block size the onnxruntime installed here uses (1: it does not use NCHWc).

    Asks ORT itself: a Conv with 1 output channel is optimized at ORT_ENABLE_ALL and saved; ORT
    pads its NCHWc filter to one block."""
    import os
    import tempfile

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    try:
        import onnxruntime as ort
    except ImportError:
        log.info("ort-nchwc: onnxruntime is not installed; NCHWc disabled")
        return 1
    w = numpy_helper.from_array(np.ones((1, 64, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])], [w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = os.path.join(tmp, "probe.onnx")
        so.log_severity_level = 3
        try:
            ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
            optimized = onnx.load(so.optimized_model_filepath)
        except Exception as e:  # any failure: no NCHWc
            log.info("ort-nchwc: probing onnxruntime failed (%s); NCHWc disabled",
                     " ".join(str(e).split()))
            return 1
    inits = {t.name: t for t in optimized.graph.initializer}
    for n in optimized.graph.node:
        if n.domain == NCHWC_DOMAIN and n.op_type == "Conv" and n.input[1] in inits:
            return int(inits[n.input[1]].dims[0])
    return 1


@dataclasses.dataclass
class _Blocked:
    """The blocked twin of an NCHW value: ``value`` (NCHWc), the logical channel count, the
    node producing it, and the NCHW shape (for Add's same-shape check)."""

    value: Value
    channels: int
    producer: Node
    shape: tuple | None


class _Rewrite:
    def __init__(self, model: Model, block: int):
        self.model = model
        self.graph = model.graph
        self.block = block
        self.opset = model.opset()
        self.blocked: dict[Value, _Blocked] = {}     # ReorderOutput output -> its blocked input
        self.reordered: dict[Value, Value] = {}      # NCHW value -> its ReorderInput output
        self.reorder_out: list[Node] = []
        self.stats = {"conv": 0, "pool": 0, "add": 0, "sum_fused": 0, "activation_fused": 0,
                      "elementwise": 0}

    # -- helpers ----------------------------------------------------------------------------
    def _new(self, anchor: Node, op: str, inputs, attrs=None, domain=NCHWC_DOMAIN,
             name: str = "") -> Node:
        node = Node(op, inputs, attrs, domain=domain, name=name)
        node.meta["irc.rule"] = "ort-nchwc"
        node.meta["irc.replaced"] = [anchor.name or anchor.op_type]
        self.graph.insert_before(anchor, node)
        return node

    def _blocked_input(self, value: Value, anchor: Node) -> Value:
        """The blocked version of NCHW ``value``: its twin, or a (shared) ReorderInput."""
        twin = self.blocked.get(value)
        if twin is not None:
            return twin.value
        r = self.reordered.get(value)
        if r is None:
            node = self._new(anchor, "ReorderInput", [value], {"channels_last": 0})
            r = node.output
            r.type = TensorType(DType.FLOAT, None)
            self.reordered[value] = r  # later readers come after this one: the walk is in order
        return r

    def _publish(self, old: Node, new_out: Value, channels: int) -> None:
        """``new_out`` (blocked) now computes ``old``'s output: readers of that output read a
        ReorderOutput of it (removed at the end if no reader is left), ``old`` goes."""
        y = old.outputs[0]
        new_out.type = TensorType(DType.FLOAT, None)
        back = self._new(old, "ReorderOutput", [new_out],
                         {"channels": int(channels), "channels_last": 0})
        back.output.type = y.type
        if y.is_graph_output():
            y.replace_all_uses_with(back.output, replace_graph_outputs=True)
        else:
            name = y.name
            y.replace_all_uses_with(back.output)
            y.name = self.graph.fresh_name(f"{name}_nchw")
            back.output.name = name
        self.graph.remove(old)
        self.blocked[back.output] = _Blocked(new_out, channels, new_out.producer(), y.shape)
        self.reorder_out.append(back)

    def _single_reader(self, twin: _Blocked, reader: Node) -> bool:
        """The blocked value is read only through its ReorderOutput, and that only by ``reader``
        (so ``reader`` may be fused into its producer)."""
        v = twin.value
        users = v.users()
        if len(users) != 1 or users[0] not in self.reorder_out:
            return False
        out = users[0].output
        return not out.is_graph_output() and out.users() == [reader]

    # -- rewrites ---------------------------------------------------------------------------
    def conv(self, node: Node) -> None:
        x, w = node.inputs[0], node.inputs[1]
        if not is_float32(x) or any(a.ref_attr_name for a in node.attributes.values()):
            return
        weight = get_const(w)
        if weight is None or weight.dtype != np.float32 or weight.ndim != 4:
            return
        b = node.inputs[2] if len(node.inputs) > 2 else None
        bias = get_const(b) if b is not None else None
        if b is not None and (bias is None or bias.shape != (weight.shape[0],)
                              or bias.dtype != np.float32):
            return
        if node.domain == MS_DOMAIN and len(node.inputs) > 3 and node.inputs[3] is not None:
            return  # FusedConv with a Sum input: left to ORT
        if x.shape is None or len(x.shape) != 4:
            return
        block = self.block
        out_c, in_c = weight.shape[:2]
        group = int(node.attr("group", 1))
        reorder_input = True
        if group > 1:
            if out_c % block:
                return
            if in_c == 1 and out_c == group:
                layout = "OIHWBo"  # depthwise
            elif in_c % block or out_c % group or (out_c // group) % block:
                return
            else:
                layout = "OIHWBiBo"
        elif in_c < block and x not in self.blocked:
            layout, reorder_input = "OIHWBo", False  # reads the NCHW input as it is
        elif in_c % block:
            return
        else:
            layout = "OIHWBiBo"
        reorder = reorder_filter_oihwbo if layout == "OIHWBo" else reorder_filter_oihwbibo
        padded_out = -(-out_c // block) * block
        inputs = [self._blocked_input(x, node) if reorder_input else x,
                  self.graph.constant(reorder(weight, block))]
        if bias is not None:
            inputs.append(self.graph.constant(np.concatenate(
                [bias, np.zeros(padded_out - out_c, np.float32)])) if padded_out != out_c else b)
        attrs = copy_attributes(node, drop=("activation", "activation_params"))
        if node.domain == MS_DOMAIN:
            act = node.attr("activation")
            if act:
                attrs["activation"] = act if isinstance(act, str) else act.decode()
                params = node.attr("activation_params")
                if params:
                    attrs["activation_params"] = [float(p) for p in params]
        new = self._new(node, "Conv", inputs, attrs, name=node.name)
        self.stats["conv"] += 1
        self._publish(node, new.output, out_c)

    def pool(self, node: Node) -> None:
        x = node.inputs[0]
        if len(node.outputs) > 1 and node.outputs[1].name:
            return  # MaxPool's Indices
        if not is_float32(x) or x.shape is None or len(x.shape) != 4:
            return
        c = x.shape[1]
        if not isinstance(c, int) or c % self.block:
            return
        if node.op_type == "MaxPool" and attr_or_default(node, "storage_order", self.opset):
            return
        attrs = copy_attributes(node, drop=("storage_order",))
        new = self._new(node, node.op_type, [self._blocked_input(x, node)], attrs, name=node.name)
        self.stats["pool"] += 1
        self._publish(node, new.output, c)

    def add(self, node: Node) -> None:
        a, b = node.inputs
        ta, tb = self.blocked.get(a), self.blocked.get(b)
        if ta is None or tb is None or a is b or ta.channels != tb.channels:
            return
        if ta.shape is None or tb.shape is None or ta.shape != tb.shape or \
                not all(isinstance(d, int) for d in ta.shape):
            return
        for mine, other in ((ta, tb), (tb, ta)):
            conv = mine.producer
            if conv.domain == NCHWC_DOMAIN and conv.op_type == "Conv" and len(conv.inputs) < 4 \
                    and conv.attr("activation") is None and self._single_reader(mine, node):
                # the Conv now reads the other operand, which may come later in the list: the
                # final sort puts it first (no cycle: the Add was the Conv's only reader)
                if len(conv.inputs) < 3:
                    conv.append_input(None)
                conv.append_input(other.value)
                self.stats["sum_fused"] += 1
                self._alias(node, mine)
                return
        new = self._new(node, "Add", [ta.value, tb.value], domain="", name=node.name)
        self.stats["add"] += 1
        self._publish(node, new.output, ta.channels)

    def activation(self, node: Node) -> None:
        twin = self.blocked.get(node.inputs[0])
        if twin is None or not is_float32(node.output):
            return
        is_ms = node.domain == MS_DOMAIN
        attrs = None if is_ms else activation_attrs(node, self.opset)
        conv = twin.producer
        if isinstance(attrs, dict) and conv.domain == NCHWC_DOMAIN and conv.op_type == "Conv" \
                and conv.attr("activation") is None and self._single_reader(twin, node):
            for k, v in attrs.items():
                conv.set_attr(k, v)
            self.stats["activation_fused"] += 1
            self._alias(node, twin)
            return
        if not is_ms and node.op_type == "Clip" and len(node.inputs) > 1:
            inputs = [twin.value, *node.inputs[1:]]
        else:
            inputs = [twin.value]
        new = self._new(node, node.op_type, inputs, copy_attributes(node), domain=node.domain,
                        name=node.name)
        self.stats["elementwise"] += 1
        self._publish(node, new.output, twin.channels)

    def _alias(self, node: Node, twin: _Blocked) -> None:
        """``node`` was folded into ``twin``'s producer: the producer's ReorderOutput now
        computes ``node``'s output and takes over its name and readers; ``node`` goes."""
        back = twin.value.users()[0]
        y, z = node.output, back.output
        if y.is_graph_output():
            y.replace_all_uses_with(z, replace_graph_outputs=True)
        else:
            name = y.name
            y.replace_all_uses_with(z)
            y.name = self.graph.fresh_name(f"{name}_fused")
            z.name = name
        z.type = y.type
        self.graph.remove(node)
        self.blocked[z] = twin

    # -- the walk ---------------------------------------------------------------------------
    def run(self) -> int:
        for node in self.graph.nodes:
            if node.graph is None:
                continue
            if is_std(node, "Conv") or (node.domain == MS_DOMAIN and node.op_type == "FusedConv"):
                if len(node.inputs) >= 2 and len(node.outputs) == 1:
                    self.conv(node)
            elif is_std(node, *_POOLS):
                self.pool(node)
            elif is_std(node, "Add") and len(node.inputs) == 2:
                self.add(node)
            elif is_std(node, *_ACTIVATIONS) or (node.domain == MS_DOMAIN
                                                 and node.op_type == "QuickGelu"):
                self.activation(node)
        # ReorderOutputs nobody reads (their tensor stayed blocked) go
        for back in reversed(self.reorder_out):
            if back.graph is not None and not back.output.has_uses() \
                    and not back.output.is_graph_output():
                self.graph.remove(back)
        return sum(v for k, v in self.stats.items())


@register_pass
@dataclasses.dataclass(frozen=True)
class OrtNchwc(Pass):
    """Rewrite Conv/pooling regions into ONNX Runtime's blocked NCHWc layout (com.microsoft.nchwc)."""

    name = "ort-nchwc"
    #: NCHWc channel block (8: AVX2, 16: AVX512); 0 asks the onnxruntime installed here.
    block_size: int = 0

    def run(self, model: Model, ctx) -> PassResult:
        block = self.block_size or ort_nchwc_block_size()
        if block <= 1:
            return PassResult(False, {"block_size": block})
        if any(n.domain == NCHWC_DOMAIN for n in model.graph):
            return PassResult(False, {"block_size": block})  # already blocked
        rw = _Rewrite(model, block)
        changed = rw.run()
        if changed:
            ensure_domain(model, NCHWC_DOMAIN)
            model.graph.sort()
        return PassResult(changed > 0, {"block_size": block, **rw.stats})
