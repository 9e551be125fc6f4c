"""Pass pipeline benchmark: the cleanup pipeline on synthetic graphs of 10k and 100k nodes.

Builds, directly in the IR (every value typed, so the shape-dependent rules can fire), a graph of
repeated blocks mixing real ops with what the cleanup removes: Identity chains, inference
Dropout, ``x * 1``, inverse Transpose pairs and dead branches, with a branch joined by an Add every
few blocks. Then runs ``fixpoint(eliminate-identity,dce)`` with the :class:`PassManager`, once with
``verify_each=False`` and once with ``verify_each=True`` (the verifier after every pass), and prints
the seconds per size and the 100k/10k ratio: about 10 means the driver scales linearly.

    python tools/bench_passes.py                       # the table in docs/benchmarks.md
    python tools/bench_passes.py --sizes 20000 --profile
    python tools/bench_passes.py --check               # also compare outputs with ONNX Runtime

Each time is the best of ``--repeat`` runs, each on a freshly built graph (building is not timed).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time

import numpy as np

import irlib
from irlib import DType, Graph, Model, Node, TensorType, Value
from passes import PassManager

PIPELINE = "fixpoint(eliminate-identity,dce)"
SHAPE = (4, 8)
#: Nodes per block (see ``_block``) and how many of them the cleanup removes.
BLOCK_NODES = 11
BLOCK_REMOVED = 8


def build_model(num_nodes: int, seed: int = 0) -> Model:
    """A model of about ``num_nodes`` nodes, ``BLOCK_REMOVED / BLOCK_NODES`` of them removable."""
    rng = np.random.default_rng(seed)
    t = TensorType(DType.FLOAT, SHAPE)
    tt = TensorType(DType.FLOAT, SHAPE[::-1])
    x = Value("x", t)
    g = Graph("bench", inputs=[x])
    one = g.constant(np.ones((), np.float32), "one")
    biases = [g.constant(rng.standard_normal(SHAPE[1]).astype(np.float32) * 0.1, f"b{i}")
              for i in range(16)]

    def add(op, inputs, out_type=t, **attrs):
        node = g.append(Node(op, inputs, attrs or None))
        node.outputs[0].type = out_type
        return node.outputs[0]

    prev, branch = x, x
    blocks = max(1, num_nodes // BLOCK_NODES)
    for i in range(blocks):
        # 3 real ops (kept: Add, Tanh and the Relu or Add at the end) ...
        h = add("Add", [prev, biases[i % 16]])
        h = add("Tanh", [h])
        # ... and 8 that the cleanup removes:
        h = add("Identity", [add("Identity", [h])])                     # Identity chain
        h = add("Dropout", [h])                                          # inference Dropout
        h = add("Mul", [one, h] if i % 2 else [h, one])                 # x * 1, both orders
        h = add("Transpose", [add("Transpose", [h], tt, perm=[1, 0])], perm=[1, 0])
        add("Sigmoid", [add("Neg", [h])])                               # a dead branch
        if i % 4 == 3:                                                   # join a branch
            h = add("Add", [h, branch])
            branch = h
        else:
            h = add("Relu", [h])
        prev = h
    g.outputs.append(prev)
    return Model(g, opset_imports={"": 17})


def time_pipeline(num_nodes: int, verify_each: bool, repeat: int) -> tuple[float, float, int, int]:
    """Best wall-clock and best CPU seconds of ``repeat`` runs, and the node counts before and
    after. CPU time is what to compare on a shared machine: other processes inflate wall time."""
    wall = cpu = float("inf")
    before = after = 0
    for _ in range(repeat):
        model = build_model(num_nodes)
        before = len(model.graph)
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        PassManager(PIPELINE, verify_each=verify_each).run(model)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
        after = len(model.graph)
    return wall, cpu, before, after


def check_numerics(num_nodes: int) -> float:
    """Max abs difference between ORT on the model before and after the pipeline."""
    import onnxruntime as ort

    model = build_model(num_nodes)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    feed = {"x": np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)}

    def run(m):
        sess = ort.InferenceSession(irlib.to_onnx(m).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, feed)[0]

    want = run(model)
    PassManager(PIPELINE).run(model)
    irlib.verify(model)
    return float(np.max(np.abs(run(model) - want)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one run of the largest size")
    ap.add_argument("--check", action="store_true",
                    help="compare ORT outputs before/after on the smallest size")
    args = ap.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    if args.profile:
        model = build_model(max(args.sizes))
        prof = cProfile.Profile()
        prof.enable()
        PassManager(PIPELINE, verify_each=False).run(model)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return 0

    print(f"pipeline: {PIPELINE}   (best of {args.repeat}; seconds, wall / CPU)")
    print(f"{'nodes':>8} {'after':>7} {'verify_each=off':>17} {'verify_each=on':>17}")
    rows = {}
    for n in args.sizes:
        off, off_cpu, before, after = time_pipeline(n, False, args.repeat)
        on, on_cpu, _, _ = time_pipeline(n, True, args.repeat)
        rows[n] = (off, off_cpu, on, on_cpu)
        print(f"{before:>8} {after:>7} {off:>8.3f} /{off_cpu:>7.3f} {on:>8.3f} /{on_cpu:>7.3f}")
    if len(args.sizes) >= 2:
        lo, hi = min(args.sizes), max(args.sizes)
        r = [h / l for h, l in zip(rows[hi], rows[lo])]
        print(f"ratio {hi}/{lo} (size x{hi / lo:g}): verify_each=off {r[0]:.1f} / {r[1]:.1f},"
              f" verify_each=on {r[2]:.1f} / {r[3]:.1f}")
    if args.check:
        diff = check_numerics(min(args.sizes))
        print(f"ORT max abs difference before/after on {min(args.sizes)} nodes: {diff:.3g}")
        if diff > 1e-5:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
