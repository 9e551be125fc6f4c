"""Benchmark the TVM backend against ONNX Runtime: compile time, latency, alignment.

    python tools/bench_tvm.py                                   # tiny_cnn + light_* models
    python tools/bench_tvm.py --models tiny_cnn,light_squeezenet --tune 256 --tune-db out/tune
    python tools/bench_tvm.py --zoo                             # + zoo/*.onnx when generated
    python tools/bench_tvm.py --json out/bench_tvm.json --md out/bench_tvm.md

Per model: irc -O2, then the TVM backend (lower + optimize + LLVM build, seconds), TVM latency
(median of ``--repeat`` runs of the Relax VM, TVM's time_evaluator) and ONNX Runtime latency
(``ORT_ENABLE_ALL``, median of as many runs) with the same thread count (``--threads``,
default all cores), and their ratio (TVM / ORT: above 1 is slower). Alignment: TVM's outputs
against ORT with optimizations off on the original model (max abs error, cosine; aligned at
rtol 1e-4, atol 1e-5 * max(1, max|ref|) as tests/test_tvm_models.py). The light
models get seeded random weights and their logits as an extra output (as in
tests/test_tvm_models.py). With ``--tune N``, each model is tuned with MetaSchedule (at most N
trials) into ``--tune-db/MODEL`` and measured again.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def load_models(names: list[str] | None, zoo: bool) -> dict[str, tuple]:
    """name -> (ModelProto, inputs or None)."""
    from test_tvm_models import with_random_weights

    models = {}
    tiny = onnx.load(os.path.join(ROOT, "examples", "tiny_cnn.onnx"))
    models["tiny_cnn"] = (tiny, None)
    for path in sorted(glob.glob(os.path.join(LIGHT, "light_*.onnx"))):
        name = os.path.basename(path)[:-5]
        if names is None or name in names:
            models[name] = (with_random_weights(onnx.load(path)), None)
    if zoo:
        for path in sorted(glob.glob(os.path.join(ROOT, "zoo", "*.onnx"))):
            if os.path.exists(path[:-5] + ".npz"):
                with np.load(path[:-5] + ".npz") as d:
                    models["zoo/" + os.path.basename(path)[:-5]] = (onnx.load(path),
                                                                      {k: d[k] for k in d.files})
    if names is not None:
        models = {k: v for k, v in models.items() if k in names}
    return models


def ort_latency(proto_bytes: bytes, feed: dict, threads: int, repeat: int) -> float:
    from backends.ort import make_session

    sess = make_session(proto_bytes, threads=threads, graph_optimization_level="all")
    for _ in range(3):
        sess.run(None, feed)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def aligned_outputs(ref: dict, got: dict) -> list:
    """Comparisons at the tolerance of tests/test_tvm_models.py: rtol 1e-4, atol 1e-5 *
    max(1, max|reference|) per output (deep float32 networks accumulate rounding differently)."""
    from backends.numerics import compare

    return [compare(n, r, got[n], rtol=1e-4, atol=1e-5 * max(float(np.abs(r).max()), 1.0))
            for n, r in ref.items()]


def bench_one(name, proto, feed, args) -> dict:
    import irlib
    from backends import get_backend
    from backends.numerics import run_reference
    from irc.check import random_inputs
    from irc.compile import compile_model

    original = irlib.from_onnx(proto)
    feed = feed if feed is not None else random_inputs(original, {"N": 1}, seed=0)
    ref = run_reference(proto.SerializeToString(), feed)
    optimized = compile_model(irlib.from_onnx(proto), 2).model
    opt_bytes = irlib.to_onnx(optimized).SerializeToString()
    be = get_backend("tvm")
    row = {"model": name, "nodes": len(optimized.graph), "threads": args.threads}
    dims = {}  # symbolic dimensions bound to the benchmark's sizes: a static module
    for v in optimized.graph.inputs:
        for i, d in enumerate(getattr(v.type, "shape", None) or ()):
            if isinstance(d, str) and v.name in feed:
                dims[d] = int(feed[v.name].shape[i])
    base = {"threads": args.threads, "dims": dims}
    t0 = time.perf_counter()
    exe = be.compile(optimized, base)
    row["compile_s"] = time.perf_counter() - t0
    run_feed = {k: v for k, v in feed.items() if k in exe.input_names}
    comps = aligned_outputs(ref, exe.run(run_feed))
    row["aligned"] = all(c.aligned for c in comps)
    row["max_abs_error"] = max(c.max_abs_error or 0.0 for c in comps)
    row["min_cosine"] = min(c.cosine if c.cosine is not None else 0.0 for c in comps)
    row["outputs"] = [c.as_json() for c in comps]
    row["tvm_ms"] = 1e3 * statistics.median(exe.benchmark(run_feed, repeat=args.repeat))
    row["ort_ms"] = 1e3 * ort_latency(opt_bytes, feed, args.threads, args.repeat)
    row["ratio"] = row["tvm_ms"] / row["ort_ms"]
    if args.tune:
        db = os.path.join(args.tune_db, name.replace("/", "_"))
        t0 = time.perf_counter()
        tuned = be.compile(optimized, {**base, "tune": args.tune, "tuning_db": db,
                                       "progress": args.progress})
        row["tune_s"] = time.perf_counter() - t0
        row["tune_trials"] = args.tune
        row["tune_tasks"] = tuned.meta["tuning"].get("tasks")
        t0 = time.perf_counter()
        again = be.compile(optimized, {**base, "tuning_db": db})
        row["compile_with_db_s"] = time.perf_counter() - t0
        tc = aligned_outputs(ref, again.run(run_feed))
        row["tuned_aligned"] = all(c.aligned for c in tc)
        row["tuned_ms"] = 1e3 * statistics.median(again.benchmark(run_feed, repeat=args.repeat))
        row["tuned_ratio"] = row["tuned_ms"] / row["ort_ms"]
    return row


def markdown(rows: list[dict]) -> str:
    out = ["| model | nodes (-O2) | TVM compile (s) | TVM (ms) | ORT (ms) | TVM / ORT |"
           " aligned | max abs err | min cosine |",
           "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['nodes']} | {r['compile_s']:.1f} | {r['tvm_ms']:.2f} |"
                   f" {r['ort_ms']:.2f} | {r['ratio']:.1f}x | {'yes' if r['aligned'] else 'NO'} |"
                   f" {r['max_abs_error']:.2g} | {r['min_cosine']:.7f} |")
    tuned = [r for r in rows if "tuned_ms" in r]
    if tuned:
        out += ["", "| model | trials | tasks | tuning (s) | compile with records (s) |"
                " untuned (ms) | tuned (ms) | ORT (ms) | tuned TVM / ORT | aligned |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in tuned:
            out.append(f"| {r['model']} | {r['tune_trials']} | {r['tune_tasks']} |"
                       f" {r['tune_s']:.0f} | {r['compile_with_db_s']:.1f} | {r['tvm_ms']:.2f} |"
                       f" {r['tuned_ms']:.2f} | {r['ort_ms']:.2f} | {r['tuned_ratio']:.1f}x |"
                       f" {'yes' if r['tuned_aligned'] else 'NO'} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated names (default: tiny_cnn and light_*)")
    ap.add_argument("--zoo", action="store_true", help="add zoo/*.onnx (tools/export_zoo.py)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--tune", type=int, default=0, help="MetaSchedule trials per model")
    ap.add_argument("--tune-db", default=os.path.join(ROOT, "out", "tvm_tuning"))
    ap.add_argument("--progress", action="store_true", help="progress bar while tuning")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--md", help="write the markdown tables here")
    args = ap.parse_args(argv)
    names = args.models.split(",") if args.models else None
    rows = []
    for name, (proto, feed) in load_models(names, args.zoo).items():
        try:
            row = bench_one(name, proto, feed, args)
        except Exception as e:  # one failing model must not hide the others' figures
            print(f"{name}: FAILED: {' '.join(str(e).split())[:300]}", file=sys.stderr)
            continue
        rows.append(row)
        print(f"{name}: compile {row['compile_s']:.1f} s, tvm {row['tvm_ms']:.2f} ms, ort"
              f" {row['ort_ms']:.2f} ms ({row['ratio']:.1f}x), aligned {row['aligned']}"
              + (f", tuned {row['tuned_ms']:.2f} ms ({row['tuned_ratio']:.1f}x)"
                 if "tuned_ms" in row else ""), file=sys.stderr, flush=True)
    text = markdown(rows) if rows else "no model benchmarked\n"
    if args.md:
        os.makedirs(os.path.dirname(os.path.abspath(args.md)), exist_ok=True)
        with open(args.md, "w") as f:
            f.write(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    print(text)
    return 0 if rows and all(r["aligned"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
