"""Benchmark of the memory planner: arena sizes and planning time.

For examples/tiny_cnn.onnx (batch 1) and each of ONNX's light_* models, in the stored node order
and after ``reorder-for-memory``: naive bytes (every intermediate in its own buffer), the lower
bound of the order, the peak of each strategy, the chosen peak over the lower bound, and the
planning time (liveness + all strategies). Then the planning time of a synthetic model of
10,000 nodes. Prints a Markdown table (``--json`` for JSON).

    python tools/bench_memory.py            # the table in docs/benchmarks.md
    python tools/bench_memory.py --nodes 20000
    python tools/bench_memory.py --models zoo      # only the zoo models (tools/export_zoo.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import irlib  # noqa: E402
import passes.transforms  # noqa: E402,F401
from irlib import DType, Graph, Model, Node, TensorType, Value  # noqa: E402
from passes import level_pipeline_text, run_passes  # noqa: E402
from passes.memory import STRATEGIES, compute_liveness, plan_memory  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


ZOO_DIR = os.path.join(ROOT, "zoo")


def models(which: str = "all"):
    """tiny_cnn and the light models, then the zoo models tools/export_zoo.py wrote (if any)."""
    if which == "zoo":
        for f in sorted(os.listdir(ZOO_DIR)) if os.path.isdir(ZOO_DIR) else ():
            if f.endswith(".onnx"):
                yield f"zoo/{f[:-5]}", os.path.join(ZOO_DIR, f)
        return
    yield "tiny_cnn", os.path.join(ROOT, "examples", "tiny_cnn.onnx")
    if os.path.isdir(LIGHT_DIR):
        for f in sorted(os.listdir(LIGHT_DIR)):
            if f.endswith(".onnx"):
                yield f[:-5], os.path.join(LIGHT_DIR, f)
    yield from models("zoo")


def measure(model: Model, repeat: int = 3) -> dict:
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = plan_memory(model, shapes={"N": 1})
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return {
        "nodes": len(model.graph), "tensors": len(plan.tensors),
        "naive": plan.naive_bytes, "lower_bound": plan.lower_bound_bytes,
        "peaks": dict(plan.peaks), "peak": plan.arena_bytes, "strategy": plan.strategy,
        "peak_over_lb": plan.peak_over_lower_bound, "naive_over_peak": plan.naive_over_peak,
        "inplace": plan.inplace_count, "seconds": best,
    }


def synthetic(n: int, seed: int = 0) -> Model:
    """A ``n``-node model of [1, w] tensors: Relu chains, residual Adds, Concats and MatMuls (with
    a few shared weights) that change the width, reading values up to 10 steps back."""
    rng = np.random.default_rng(seed)
    widths = [64, 128, 256, 512, 1024]
    x = Value("x", TensorType(DType.FLOAT, (1, 256)))
    g = Graph("synthetic", inputs=[x])
    weights: dict[tuple[int, int], Value] = {}
    vals = [x]
    for i in range(n):
        prev = vals[-1]
        w = prev.shape[1]
        recent = vals[-10:]
        same = [v for v in recent[:-1] if v.shape[1] == w]
        r = rng.random()
        if r < 0.3:
            node, width = Node("Relu", [prev]), w
        elif r < 0.5 and same:
            node, width = Node("Add", [prev, same[int(rng.integers(len(same)))]]), w
        elif r < 0.6 and w <= 1024:
            other = recent[int(rng.integers(len(recent)))]
            node, width = Node("Concat", [prev, other], {"axis": 1}), w + other.shape[1]
        else:
            width = int(widths[int(rng.integers(len(widths)))])
            key = (w, width)
            if key not in weights:
                weights[key] = g.constant(np.zeros(key, np.float32))
            node = Node("MatMul", [prev, weights[key]])
        node.outputs[0].type = TensorType(DType.FLOAT, (1, width))
        g.append(node)
        vals.append(node.outputs[0])
    g.outputs.append(vals[-1])
    return Model(g, opset_imports={"": 17})


def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000, help="size of the synthetic model")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--models", choices=["all", "zoo"], default="all",
                    help="all: tiny_cnn, light_* and the zoo (if generated); zoo: only the zoo")
    args = ap.parse_args(argv)
    rows = []
    for name, path in models(args.models):
        for reorder in (False, True):
            model = irlib.load(path)
            # The zoo's exports size some tensors through Shape arithmetic: -O1 folds it, so plan
            # them after the cleanup (as -O2 does); the others as stored.
            run_passes(model, level_pipeline_text(1) if name.startswith("zoo/") else "infer-shapes")
            if reorder:
                run_passes(model, "reorder-for-memory{shapes=[N=1]}")
            row = measure(model)
            order = "reordered" if reorder else "stored"
            row.update(model=name, order=order + (" (-O1)" if name.startswith("zoo/") else ""))
            rows.append(row)
    model = synthetic(args.nodes)
    t0 = time.perf_counter()
    live = compute_liveness(model)
    t_live = time.perf_counter() - t0
    syn = measure(model, repeat=1)
    syn.update(model=f"synthetic ({args.nodes} nodes)", order="stored", liveness_seconds=t_live)
    for name, fn in STRATEGIES.items():
        t0 = time.perf_counter()
        fn(live.buffers)
        syn[f"{name}_seconds"] = time.perf_counter() - t0
    rows.append(syn)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    names = list(STRATEGIES)
    print("| model | order | nodes | naive MiB | lower bound MiB | "
          + " | ".join(f"{n} MiB" for n in names)
          + " | best | peak / LB | naive / peak | in-place | plan ms |")
    print("|" + "---|" * (10 + len(names)))
    for r in rows:
        print(f"| {r['model']} | {r['order']} | {r['nodes']} | {mib(r['naive'])} | {mib(r['lower_bound'])} | "
              + " | ".join(mib(r["peaks"][n]) for n in names)
              + f" | {r['strategy']} | {r['peak_over_lb']:.4f} | {r['naive_over_peak']:.2f}"
              f" | {r['inplace']} | {r['seconds'] * 1000:.1f} |")
    print()
    print(f"synthetic model, {args.nodes} nodes: liveness {syn['liveness_seconds'] * 1000:.0f} ms, "
          + ", ".join(f"{n} {syn[n + '_seconds'] * 1000:.0f} ms" for n in names)
          + f"; whole plan (liveness + all strategies) {syn['seconds'] * 1000:.0f} ms")
    worst = max(r["peak_over_lb"] for r in rows)
    print(f"worst peak / lower bound: {worst:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
