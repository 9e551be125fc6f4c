"""Import/export benchmark: irlib load+verify+save next to plain onnx.load+onnx.save.

Generates three kinds of synthetic models into a temporary folder and times, on the same file:

* ``irlib``: ``irlib.load`` + ``irlib.verify`` + ``irlib.save`` (inline, atomic)
* ``onnx``:  ``onnx.load`` + ``onnx.save``

Models: a chain of N small element-wise nodes (N = 25k, 50k, 100k by default, to see whether
irlib scales linearly with the node count), a 100k-node chain whose every node has attributes
(int, ints, float), and a ~100 MB model of large MatMul weights (where the cost is bytes, not
nodes). Each measurement is the best of ``--repeat`` runs.

    python tools/bench_io.py                    # the table recorded in docs/benchmarks.md
    python tools/bench_io.py --clock cpu        # CPU seconds: steadier on a shared machine
    python tools/bench_io.py --nodes 100000 --mb 0 --profile   # cProfile the irlib side
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import irlib

IR_VERSION = 10
OPSET = 17


def chain_model(num_nodes: int, seed: int = 0) -> onnx.ModelProto:
    """``x`` through ``num_nodes`` element-wise nodes (Add/Mul with one of 64 shared constants,
    Relu, Neg), every node named, every intermediate with a value_info, like an exported model."""
    rng = np.random.default_rng(seed)
    consts = [numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), f"c{i}")
              for i in range(64)]
    nodes, infos = [], []
    prev = "x"
    ops = ("Add", "Relu", "Mul", "Neg")
    for i in range(num_nodes):
        op = ops[i % 4]
        out = "y" if i == num_nodes - 1 else f"t{i}"
        inputs = [prev, f"c{i % 64}"] if op in ("Add", "Mul") else [prev]
        nodes.append(helper.make_node(op, inputs, [out], name=f"n{i}"))
        if out != "y":
            infos.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 16]))
        prev = out
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=consts, value_info=infos)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION)


def attr_model(num_nodes: int) -> onnx.ModelProto:
    """Like :func:`chain_model`, but every node carries attributes of the common kinds, as in a
    real network: LeakyRelu (float ``alpha``), Transpose (ints ``perm``), Softmax (int ``axis``),
    Cast (int ``to``) and Shrink (floats ``bias``, ``lambd``); every intermediate with a
    value_info."""
    nodes, infos = [], []
    prev = "x"
    for i in range(num_nodes):
        out = "y" if i == num_nodes - 1 else f"t{i}"
        kind = i % 5
        if kind == 0:
            node = helper.make_node("LeakyRelu", [prev], [out], name=f"n{i}", alpha=0.1)
        elif kind == 1:
            node = helper.make_node("Transpose", [prev], [out], name=f"n{i}", perm=[1, 0])
        elif kind == 2:
            node = helper.make_node("Softmax", [prev], [out], name=f"n{i}", axis=-1)
        elif kind == 3:
            node = helper.make_node("Cast", [prev], [out], name=f"n{i}", to=TensorProto.FLOAT)
        else:
            node = helper.make_node("Shrink", [prev], [out], name=f"n{i}", bias=0.5, lambd=0.25)
        nodes.append(node)
        if out != "y":
            infos.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [16, 16]))
        prev = out
    graph = helper.make_graph(
        nodes, "attrs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 16])], value_info=infos)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION)


def weights_model(megabytes: int, dim: int = 1024, seed: int = 0) -> onnx.ModelProto:
    """A MatMul+Add stack whose ``dim x dim`` float32 weights add up to about ``megabytes``."""
    rng = np.random.default_rng(seed)
    layers = max(1, round(megabytes * 1e6 / (dim * dim * 4)))
    nodes, inits = [], []
    prev = "x"
    for i in range(layers):
        w = (rng.standard_normal((dim, dim)) * 0.01).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        inits.append(numpy_helper.from_array(np.zeros(dim, np.float32), f"b{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"matmul{i}"))
        out = "y" if i == layers - 1 else f"a{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [out], name=f"add{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=IR_VERSION)


def _best(fn, repeat: int) -> dict[str, float]:
    """Run ``fn`` (which returns a dict of phase -> seconds) ``repeat`` times; keep the fastest."""
    best: dict[str, float] | None = None
    for _ in range(repeat):
        gc.collect()
        phases = fn()
        if best is None or sum(phases.values()) < sum(best.values()):
            best = phases
    return best


#: The clock the phases are read on: wall seconds, or with ``--clock cpu`` this process's CPU
#: seconds (``time.process_time``), which other jobs on a shared machine disturb far less.
clock = time.perf_counter


def time_irlib(src: str, dst: str) -> dict[str, float]:
    t0 = clock()
    model = irlib.load(src)
    t1 = clock()
    irlib.verify(model)
    t2 = clock()
    irlib.save(model, dst, external_data=False)
    t3 = clock()
    return {"load": t1 - t0, "verify": t2 - t1, "save": t3 - t2}


def time_onnx(src: str, dst: str) -> dict[str, float]:
    t0 = clock()
    proto = onnx.load(src)
    t1 = clock()
    onnx.save(proto, dst)
    t2 = clock()
    return {"load": t1 - t0, "save": t2 - t1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[25_000, 50_000, 100_000],
                        help="node counts of the chain models (default: 25000 50000 100000)")
    parser.add_argument("--attr-nodes", type=int, default=100_000,
                        help="node count of the model whose nodes all have attributes (0: skip it)")
    parser.add_argument("--mb", type=int, default=100,
                        help="size of the weights model in MB (0: skip it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds (default) or CPU seconds of this process")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile irlib on the largest chain model and print the top entries")
    args = parser.parse_args(argv)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    rows = []
    with tempfile.TemporaryDirectory(prefix="irc-bench-") as tmp:
        cases = [(f"chain {n // 1000}k nodes", lambda n=n: chain_model(n)) for n in args.nodes]
        if args.attr_nodes:
            cases.append((f"attributes {args.attr_nodes // 1000}k nodes",
                          lambda: attr_model(args.attr_nodes)))
        if args.mb:
            cases.append((f"weights ~{args.mb} MB", lambda: weights_model(args.mb)))
        for label, build in cases:
            src = os.path.join(tmp, "model.onnx")
            proto = build()
            onnx.save(proto, src)
            nodes = len(proto.graph.node)
            del proto
            size_mb = os.path.getsize(src) / 1e6
            ir = _best(lambda: time_irlib(src, os.path.join(tmp, "irlib_out.onnx")), args.repeat)
            ox = _best(lambda: time_onnx(src, os.path.join(tmp, "onnx_out.onnx")), args.repeat)
            rows.append((label, nodes, size_mb, ir, ox))
            print(f"  measured {label}", file=sys.stderr)
        if args.profile and args.nodes:
            src = os.path.join(tmp, "model.onnx")
            onnx.save(chain_model(max(args.nodes)), src)
            prof = cProfile.Profile()
            prof.enable()
            time_irlib(src, os.path.join(tmp, "irlib_out.onnx"))
            prof.disable()

    head = ("| model | nodes | file MB | irlib load | verify | save | irlib total "
            "| onnx load | onnx save | onnx total | ratio | irlib µs/node |")
    print(f"{args.clock} seconds, best of {args.repeat}")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, nodes, size_mb, ir, ox in rows:
        it, ot = sum(ir.values()), sum(ox.values())
        per_node = f"{1e6 * it / nodes:.1f}" if nodes >= 1000 else "–"  # weights: not per node
        print(f"| {label} | {nodes:,} | {size_mb:.1f} | {ir['load']:.3f} s | {ir['verify']:.3f} s "
              f"| {ir['save']:.3f} s | {it:.3f} s | {ox['load']:.3f} s | {ox['save']:.3f} s "
              f"| {ot:.3f} s | {it / ot:.1f}x | {per_node} |")
    if args.profile and args.nodes:
        print(f"\ncProfile of irlib load+verify+save, chain of {max(args.nodes):,} nodes "
              "(top 25 by own time):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
