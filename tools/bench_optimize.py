"""Optimizer comparison: irc -O2/-O3 next to onnxslim, onnxsim and ONNX Runtime's own optimizer,
side by side in one run, on the model zoo (``tools/export_zoo.py``) and on the ``light_*``
models that ship in the onnx package.

    python tools/export_zoo.py                          # once: zoo/*.onnx + zoo/*.npz
    python tools/bench_optimize.py --md out/opt.md --json out/opt.json
    python tools/bench_optimize.py --only resnet50,light_squeezenet --threads 1

For every model it measures

1. node counts and op histograms after each optimizer: ``irc -O2``, ``irc -O3`` (target
   ``ort``), onnxslim, onnxsim, and ORT at ``ORT_ENABLE_EXTENDED`` and ``ORT_ENABLE_ALL`` (the
   graph ORT runs, saved with ``SessionOptions.optimized_model_filepath``);
2. the wall time of each file-to-file optimization (load, optimize, save; one run each);
3. ORT latency (CPU provider, ``intra_op_num_threads`` = 1 and 2, sequential execution): the
   median of interleaved rounds, each round running every variant once (``--budget`` seconds
   per model and thread setting decides the rounds, at least ``--min-rounds``). The ratios:
   (i) our -O2 and ORT's BASIC/EXTENDED against the original, all else disabled;
   (ii) our -O3 with ORT's optimizations disabled against the original at ORT_ENABLE_ALL;
   (iii) our -O3 at ORT_ENABLE_ALL against the original at ORT_ENABLE_ALL;
4. the output error of every optimized model against the original (both run by ORT with its
   optimizations disabled on the same inputs): max |diff| and max |diff| / max |reference|.

The light models are prepared first: their weights are initializers that are also graph inputs
(overridable, so no optimizer may treat them as constants); the benchmark drops them from the
inputs (IR version 4), as a deployed model has them, and feeds seeded random images.
onnxsim is skipped (and said so) when it cannot be imported.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import glob
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

import irlib
from irc import compile_model
from passes.levels import level_pipeline_text

log = logging.getLogger("bench_optimize")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(ROOT, "zoo")
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")

LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
#: The optimizers compared (histograms, errors); "ort-*" are ORT's own graph, saved.
OPTIMIZERS = ("irc-O2", "irc-O3", "onnxslim", "onnxsim", "ort-extended", "ort-all")
#: Latency variants: (label, model variant, ORT level).
LATENCY = (
    ("orig@disabled", "original", "disabled"),
    ("orig@basic", "original", "basic"),
    ("orig@extended", "original", "extended"),
    ("orig@all", "original", "all"),
    ("O2@disabled", "irc-O2", "disabled"),
    ("O3@disabled", "irc-O3", "disabled"),
    ("O3@all", "irc-O3", "all"),
    ("onnxslim@disabled", "onnxslim", "disabled"),
    ("onnxsim@disabled", "onnxsim", "disabled"),
)


@dataclasses.dataclass
class Case:
    """One model of the benchmark: its file, its inputs and where its variants go."""

    name: str
    path: str
    feeds: dict[str, np.ndarray]
    group: str  # "zoo" or "light"


# -- models ---------------------------------------------------------------------------------
def zoo_cases(folder: str) -> list[Case]:
    cases = []
    for path in sorted(glob.glob(os.path.join(folder, "*.onnx"))):
        npz = path[:-5] + ".npz"
        if not os.path.exists(npz):
            log.warning("%s: no %s beside it, skipped", path, os.path.basename(npz))
            continue
        with np.load(npz) as data:
            feeds = {k: data[k] for k in data.files}
        cases.append(Case(os.path.basename(path)[:-5], path, feeds, "zoo"))
    return cases


def light_cases(work: str, seed: int = 0) -> list[Case]:
    """The onnx package's light models with their weights made constants (see the module doc)."""
    cases = []
    for path in sorted(glob.glob(os.path.join(LIGHT, "light_*.onnx"))):
        proto = onnx.load(path)
        inits = {t.name for t in proto.graph.initializer}
        keep = [vi for vi in proto.graph.input if vi.name not in inits]
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
        proto.ir_version = max(proto.ir_version, 4)  # IR 3 wants every initializer as an input
        name = os.path.basename(path)[:-5]
        out = os.path.join(work, f"{name}.onnx")
        onnx.save(proto, out)
        rng = np.random.default_rng(seed)
        feeds = {}
        for vi in keep:
            tt = vi.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
            feeds[vi.name] = rng.standard_normal(shape).astype(
                onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        cases.append(Case(name, out, feeds, "light"))
    return cases


# -- optimizers -----------------------------------------------------------------------------
def run_irc(level: int) -> Callable[[str, str], None]:
    def optimize(src: str, dst: str) -> None:
        model = irlib.load(src)
        compile_model(model, level, target="ort" if level >= 3 else None)
        irlib.save(model, dst)

    return optimize


def run_onnxslim(src: str, dst: str) -> None:
    import onnxslim

    onnx.save(onnxslim.slim(src), dst)


def run_onnxsim(src: str, dst: str) -> None:
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(src), check_n=0)
    if not ok:
        raise RuntimeError("onnxsim reports its check failed")
    onnx.save(model, dst)


def run_ort(level: str) -> Callable[[str, str], None]:
    def optimize(src: str, dst: str) -> None:
        so = ort.SessionOptions()
        so.graph_optimization_level = LEVELS[level]
        so.optimized_model_filepath = dst
        so.log_severity_level = 3
        ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])

    return optimize


def available_optimizers() -> dict[str, Callable[[str, str], None]]:
    found = {"irc-O2": run_irc(2), "irc-O3": run_irc(3)}
    for name, optimize in (("onnxslim", run_onnxslim), ("onnxsim", run_onnxsim)):
        try:
            __import__(name)
        except ImportError as e:
            log.warning("%s not available (%s): skipped", name, e)
            continue
        found[name] = optimize
    found["ort-extended"] = run_ort("extended")
    found["ort-all"] = run_ort("all")
    return found


def histogram(path: str) -> collections.Counter:
    proto = onnx.load(path, load_external_data=False)
    return collections.Counter(
        (f"{n.domain}." if n.domain not in ("", "ai.onnx") else "") + n.op_type
        for n in proto.graph.node)


# -- running --------------------------------------------------------------------------------
def session(path: str, level: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    # No spinning: the rounds interleave up to nine sessions, each with its own thread pool, and
    # a pool that spins after its run would steal a core from the next session on a 2-core box.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def output_errors(reference: list[np.ndarray], got: list[np.ndarray]) -> tuple[float, float]:
    """Max |diff| over all outputs, and the largest per-output max |diff| / max |reference|."""
    worst_abs = worst_rel = 0.0
    for w, g in zip(reference, got):
        if w.shape != g.shape:
            return float("inf"), float("inf")
        diff = float(np.abs(g.astype(np.float64) - w.astype(np.float64)).max()) if w.size else 0.0
        scale = float(np.abs(w).max()) if w.size else 0.0
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / scale if scale else (0.0 if diff == 0 else float("inf")))
    return worst_abs, worst_rel


def time_interleaved(sessions: dict[str, ort.InferenceSession], feeds: dict, budget: float,
                     min_rounds: int, max_rounds: int) -> tuple[dict[str, float], int, int]:
    """Median seconds per run of each session over interleaved rounds.

    One warm-up run each, then a calibration run; a round runs every session ``reps`` times
    (enough for ~20 ms per sample, so tiny models are not all timer noise) and the rounds fit
    ``budget`` seconds, within ``[min_rounds, max_rounds]``.
    """
    for s in sessions.values():
        s.run(None, feeds)
    one = {}
    for label, s in sessions.items():
        t0 = time.perf_counter()
        s.run(None, feeds)
        one[label] = time.perf_counter() - t0
    per_run = max(statistics.median(one.values()), 1e-6)
    reps = max(1, int(0.02 / per_run))
    round_cost = sum(one.values()) * reps
    rounds = int(min(max_rounds, max(min_rounds, budget // max(round_cost, 1e-9))))
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(rounds):
        order = list(sessions.items())
        if r % 2:  # alternate the order so no variant always runs right after the same one
            order.reverse()
        for label, s in order:
            t0 = time.perf_counter()
            for _ in range(reps):
                s.run(None, feeds)
            samples[label].append((time.perf_counter() - t0) / reps)
    return {k: statistics.median(v) for k, v in samples.items()}, rounds, reps


def bench_case(case: Case, work: str, optimizers: dict, threads: list[int], budget: float,
               min_rounds: int, max_rounds: int) -> dict:
    result: dict = {"name": case.name, "group": case.group, "nodes": {}, "histograms": {},
                    "compile_seconds": {}, "errors": {}, "latency": {}, "failures": {}}
    paths = {"original": case.path}
    result["histograms"]["original"] = dict(histogram(case.path))
    result["nodes"]["original"] = sum(result["histograms"]["original"].values())
    for name, optimize in optimizers.items():
        dst = os.path.join(work, f"{case.name}.{name}.onnx")
        gc.collect()
        t0 = time.perf_counter()
        try:
            optimize(case.path, dst)
        except Exception as e:  # a tool failing on a model is a result, not a crash
            log.warning("%s: %s failed: %s", case.name, name, " ".join(str(e).split())[:300])
            result["failures"][name] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
            continue
        result["compile_seconds"][name] = time.perf_counter() - t0
        paths[name] = dst
        hist = histogram(dst)
        result["histograms"][name] = dict(hist)
        result["nodes"][name] = sum(hist.values())
        log.info("%s: %s %d -> %d nodes in %.2f s", case.name, name, result["nodes"]["original"],
                 result["nodes"][name], result["compile_seconds"][name])

    # Output error of each optimized model against the original, ORT optimizations off.
    reference = session(case.path, "disabled", 2).run(None, case.feeds)
    for name in optimizers:
        if name not in paths:
            continue
        try:
            got = session(paths[name], "disabled", 2).run(None, case.feeds)
        except Exception as e:
            result["failures"][f"{name} (run)"] = f"{type(e).__name__}: {str(e)[:200]}"
            continue
        result["errors"][name] = output_errors(reference, got)
    del reference

    result["loadavg_before"] = os.getloadavg()[0]
    for t in threads:
        sessions = {}
        for label, variant, level in LATENCY:
            if variant in paths:
                sessions[label] = session(paths[variant], level, t)
        medians, rounds, reps = time_interleaved(sessions, case.feeds, budget, min_rounds,
                                                 max_rounds)
        result["latency"][str(t)] = {"median_s": medians, "rounds": rounds, "reps": reps}
        log.info("%s: %d thread(s): %d rounds x %d: %s", case.name, t, rounds, reps,
                 ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in medians.items()))
        del sessions
        gc.collect()
    result["loadavg_after"] = os.getloadavg()[0]
    for name, path in paths.items():
        if name != "original":
            os.remove(path)
    return result


# -- report ---------------------------------------------------------------------------------
def _ratio(lat: dict, a: str, b: str) -> float | None:
    if a in lat and b in lat and lat[b] > 0:
        return lat[a] / lat[b]
    return None


def _fmt_ratio(r: float | None, goal: float | None = None) -> str:
    if r is None:
        return "–"
    mark = "" if goal is None else (" ✓" if r <= goal else " ✗")
    return f"{r:.3f}{mark}"


def markdown(results: list[dict], threads: list[int], meta: dict) -> str:
    cols = ("original",) + OPTIMIZERS
    out = [f"Machine: {meta['machine']}; {meta['versions']}; irc at {meta['git']}. "
           f"Total benchmark time {meta['seconds'] / 60:.1f} min.", "",
           f"`{meta['command']}`", ""]
    out += [f"- irc {k}: `{v}`" for k, v in meta["pipelines"].items()] + [""]

    out += ["### Node counts", "",
            "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in results:
        out.append(f"| {r['name']} | " + " | ".join(
            str(r["nodes"].get(c, "fail" if c in r["failures"] else "–")) for c in cols) + " |")

    out += ["", "### Optimization wall time (s, file to file, one run)", "",
            "| model | " + " | ".join(OPTIMIZERS) + " |", "|---" * (len(OPTIMIZERS) + 1) + "|"]
    for r in results:
        out.append(f"| {r['name']} | " + " | ".join(
            f"{r['compile_seconds'][c]:.2f}" if c in r["compile_seconds"] else "–"
            for c in OPTIMIZERS) + " |")

    for t in threads:
        out += ["", f"### ORT latency, {t} thread{'s' if t > 1 else ''}", "",
                "Median ms of the original with ORT's optimizations disabled, then ratios"
                " (lower is better; ✓/✗: goal met or missed). load: the machine's 1-minute"
                " load average before and after the model's timing (above the core count,"
                f" {meta['cores']}, other work was competing).", "",
                "| model | load | rounds | orig@disabled ms | BASIC / disabled | EXTENDED / disabled "
                "| ALL / disabled | (i) O2@disabled / disabled | (i) O2@disabled / EXTENDED "
                "| (ii) O3@disabled / orig@ALL | (iii) O3@ALL / orig@ALL "
                "| onnxslim@disabled / disabled | onnxsim@disabled / disabled |",
                "|---" * 12 + "|"]
        for r in results:
            lt = r["latency"].get(str(t))
            if not lt:
                continue
            m = lt["median_s"]
            base = "orig@disabled"
            out.append(" | ".join([
                f"| {r['name']}", f"{r['loadavg_before']:.1f}–{r['loadavg_after']:.1f}",
                f"{lt['rounds']}x{lt['reps']}", f"{m[base] * 1e3:.2f}",
                _fmt_ratio(_ratio(m, "orig@basic", base)),
                _fmt_ratio(_ratio(m, "orig@extended", base)),
                _fmt_ratio(_ratio(m, "orig@all", base)),
                _fmt_ratio(_ratio(m, "O2@disabled", base)),
                _fmt_ratio(_ratio(m, "O2@disabled", "orig@extended"), 1.0),
                _fmt_ratio(_ratio(m, "O3@disabled", "orig@all"), 1.0),
                _fmt_ratio(_ratio(m, "O3@all", "orig@all"), 0.95),
                _fmt_ratio(_ratio(m, "onnxslim@disabled", base)),
                _fmt_ratio(_ratio(m, "onnxsim@disabled", base)),
            ]) + " |")

    out += ["", "### Output error against the original", "",
            "max \\|diff\\| / (max \\|diff\\| ÷ max \\|reference\\|), worst output, ORT optimizations off.",
            "", "| model | " + " | ".join(OPTIMIZERS) + " |", "|---" * (len(OPTIMIZERS) + 1) + "|"]
    for r in results:
        out.append(f"| {r['name']} | " + " | ".join(
            f"{r['errors'][c][0]:.1e} / {r['errors'][c][1]:.1e}" if c in r["errors"] else "–"
            for c in OPTIMIZERS) + " |")

    out += ["", "### Op histograms (zoo models)", ""]
    for r in results:
        if r["group"] != "zoo":
            continue
        hist = r["histograms"]
        ops = sorted({op for h in hist.values() for op in h},
                     key=lambda op: (-hist["original"].get(op, 0), op))
        present = [c for c in cols if c in hist]
        out += [f"**{r['name']}**", "", "| op | " + " | ".join(present) + " |",
                "|---" * (len(present) + 1) + "|"]
        for op in ops:
            out.append(f"| {op} | " + " | ".join(str(hist[c].get(op, "")) for c in present) + " |")
        out += ["| **total** | " + " | ".join(str(r["nodes"][c]) for c in present) + " |", ""]
    failures = [(r["name"], k, v) for r in results for k, v in r["failures"].items()]
    if failures:
        out += ["### Failures", ""] + [f"- {n}: {k}: {v}" for n, k, v in failures] + [""]
    return "\n".join(out) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu}, Python {platform.python_version()}"


def git_state() -> str:
    """The commit benchmarked, and whether the pass pipeline files had local edits."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "passes", "irlib"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted edits under passes/ or irlib/" if dirty else "")


def versions() -> str:
    parts = [f"onnx {onnx.__version__}", f"onnxruntime {ort.__version__}"]
    for mod in ("onnxslim", "onnxsim"):
        try:
            parts.append(f"{mod} {getattr(__import__(mod), '__version__', '?')}")
        except ImportError:
            parts.append(f"{mod} not installed")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=ZOO, help="zoo folder (default: zoo/)")
    parser.add_argument("--no-light", action="store_true", help="skip the onnx light models")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--threads", default="1,2", help="ORT intra-op thread counts")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed rounds per model and thread setting")
    parser.add_argument("--min-rounds", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=25)
    parser.add_argument("--md", help="write the markdown tables here")
    parser.add_argument("--json", dest="json_path", help="write all figures as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bench_optimize: %(message)s",
                        stream=sys.stderr)
    log.setLevel(logging.INFO)  # our progress; irc's own INFO lines would drown it
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    start = time.perf_counter()
    git = git_state()  # now: passes/ may change while the benchmark runs
    optimizers = available_optimizers()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_optimize-") as work:
        cases = zoo_cases(args.zoo) + ([] if args.no_light else light_cases(work))
        if only:
            missing = only - {c.name for c in cases}
            if missing:
                parser.error(f"no such model(s): {', '.join(sorted(missing))}")
            cases = [c for c in cases if c.name in only]
        if not cases:
            parser.error(f"no models: run tools/export_zoo.py (looked in {args.zoo})")
        for case in cases:
            log.info("== %s", case.name)
            results.append(bench_case(case, work, optimizers, threads, args.budget,
                                      args.min_rounds, args.max_rounds))
    meta = {"machine": machine(), "cores": os.cpu_count(), "versions": versions(),
            "git": git,
            "pipelines": {f"-O{lv}": level_pipeline_text(lv, "ort") for lv in (2, 3)},
            "seconds": time.perf_counter() - start, "threads": threads,
            "command": " ".join(["python", "tools/bench_optimize.py"] + (argv or sys.argv[1:]))}
    text = markdown(results, threads, meta)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
