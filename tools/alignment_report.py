"""Numerical alignment figures: each real model at -O2 against ONNX Runtime's unoptimized run.

    python tools/alignment_report.py                 # (re)writes its section of docs/conformance.md
    python tools/alignment_report.py -o -            # the section on stdout

For examples/tiny_cnn.onnx and every light_* model of ONNX's backend test data (the installed
onnx package), ``irc.check.check_model(path, level=2, seed=0)`` compiles the model at -O2, runs it
on the ORT backend (ORT's own optimizations off) and compares it with the original model run by
ORT with every optimization disabled, on seeded random inputs. The table gives, per model, the
worst max abs and max rel error over its outputs, the mismatches under irc check's default
tolerances (fp32: rtol 1e-4, atol 1e-5) and the lowest cosine similarity.

Only the section titled ``Numerical alignment (irc check -O2)`` of docs/conformance.md is
replaced (or appended when missing); the rest of the file belongs to the conformance sweep
(tools/conformance_report.py) and is left as it is.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import sys
import time

import onnx
import onnxruntime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from irc.check import check_model  # noqa: E402
from irlib import atomic_write  # noqa: E402

TITLE = "Numerical alignment (irc check -O2)"
DOC = os.path.join(ROOT, "docs", "conformance.md")
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


ZOO = os.path.join(ROOT, "zoo")


def models() -> list[tuple[str, str]]:
    """(label, path) of the models to report: tiny_cnn, the light models, then the zoo models
    that tools/export_zoo.py wrote into zoo/ (if it ran; each with the inputs .npz beside it)."""
    found = sorted(glob.glob(os.path.join(LIGHT, "light_*.onnx")) +
                   glob.glob(os.path.join(LIGHT, "light_*", "model.onnx")))
    out = [("examples/tiny_cnn.onnx", os.path.join(ROOT, "examples", "tiny_cnn.onnx"))]
    for p in found:
        name = os.path.basename(os.path.dirname(p)) if p.endswith("model.onnx") else \
            os.path.basename(p)[:-5]
        out.append((name, p))
    for p in sorted(glob.glob(os.path.join(ZOO, "*.onnx"))):
        out.append((f"zoo/{os.path.basename(p)}", p))
    return out


def _worst(values, key):
    vals = [v for v in values if v is not None]
    return key(vals) if vals else None


def _fmt(x, spec=".2e") -> str:
    return "-" if x is None else ("0" if x == 0 else format(x, spec))


def measure(label: str, path: str) -> dict:
    counts = {}

    def count(model):
        counts["after"] = sum(1 for _ in model.graph.all_nodes())

    before = len(onnx.load(path, load_external_data=False).graph.node)
    t0 = time.perf_counter()
    npz = path[:-5] + ".npz"
    inputs = npz if path.startswith(ZOO) and os.path.exists(npz) else None
    result = check_model(path, level=2, seed=0, inputs=inputs, on_compiled=count)
    seconds = time.perf_counter() - t0
    outs = result.outputs
    return {
        "model": label, "nodes": f"{before} -> {counts.get('after', '?')}",
        "outputs": len(outs),
        "max_abs": _worst([c.max_abs_error for c in outs], max),
        "max_rel": _worst([c.max_rel_error for c in outs], max),
        "mismatches": sum(c.mismatches for c in outs),
        "cosine": _worst([c.cosine for c in outs], min),
        "aligned": result.aligned, "seconds": seconds,
    }


def section(rows: list[dict]) -> str:
    aligned = sum(r["aligned"] for r in rows)
    lines = [
        f"## {TITLE}",
        "",
        "Written by `python tools/alignment_report.py` (the same check as",
        "`irc check MODEL.onnx -O2`, and as tests/test_check_models.py). Each model is compiled at",
        "-O2, run on the ORT backend with ORT's own graph optimizations off, and compared with the",
        "original model run by ONNX Runtime with every optimization disabled (the reference), on",
        "seeded random inputs (`--seed 0`, standard normal; zoo models: the inputs .npz that",
        "tools/export_zoo.py writes beside each model). Errors are the worst over a model's",
        "outputs; max rel is `max |got - ref| / |ref|` over non-zero reference elements; mismatches",
        "count elements outside irc check's default fp32 tolerance (rtol 1e-4, atol 1e-5).",
        "",
        f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}. **{aligned} of {len(rows)} models"
        " aligned.**",
        "",
        "| model | nodes (-O2) | outputs | max abs error | max rel error | mismatches "
        "| min cosine | aligned | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['nodes']} | {r['outputs']} | {_fmt(r['max_abs'])} | "
            f"{_fmt(r['max_rel'])} | {r['mismatches']} | {_fmt(r['cosine'], '.7f')} | "
            f"{'yes' if r['aligned'] else '**no**'} | {r['seconds']:.1f} |")
    lines += [
        "",
        "The light models' weights are constants filled by ConstantOfShape, so their outputs are",
        "uniform and the errors come out exactly 0; tiny_cnn and the zoo models (seeded random",
        "weights) show the rounding left by -O2's fusions. The zoo models are generated, not",
        "committed: their rows appear when tools/export_zoo.py has run.",
        "",
    ]
    return "\n".join(lines)


def replace_section(text: str, new: str) -> str:
    """``text`` with the section titled TITLE replaced by ``new`` (appended when absent)."""
    pattern = re.compile(rf"^## {re.escape(TITLE)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        return pattern.sub(lambda m: new + ("\n" if not new.endswith("\n\n") else ""), text,
                           count=1).rstrip("\n") + "\n"
    sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    return text + sep + new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=DOC,
                    help="the markdown file whose section to (re)write, or - for stdout")
    args = ap.parse_args(argv)
    rows = []
    for label, path in models():
        rows.append(measure(label, path))
        r = rows[-1]
        print(f"{label}: max abs {_fmt(r['max_abs'])}, max rel {_fmt(r['max_rel'])}, "
              f"{'aligned' if r['aligned'] else 'MISALIGNED'} ({r['seconds']:.1f} s)",
              file=sys.stderr)
    text = section(rows)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        # Re-read right before writing: another tool owns the rest of the file.
        old = open(args.output).read() if os.path.exists(args.output) else ""
        atomic_write(args.output, replace_section(old, text).encode())
        print(f"wrote the {TITLE!r} section of {args.output}", file=sys.stderr)
    return 0 if all(r["aligned"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
