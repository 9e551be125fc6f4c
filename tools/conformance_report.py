"""Sweep ONNX's own backend test corpus through irlib's round trip and ONNX Runtime.

    python tools/conformance_report.py                  # writes docs/conformance.md
    python tools/conformance_report.py --jobs 2 -o -    # the report on stdout

The corpus is what ships inside the installed ``onnx`` package: the ~1,900 node test cases of
``onnx.backend.test.case.node.collect_testcases`` and the model folders under
``onnx/backend/test/data`` (light, pytorch-converted, pytorch-operator, simple, real). Each case
is a model with inputs and expected outputs, except ``real/*``, which names a light model and ships
no data: there the round-tripped model is compared with the original, under ORT, on seeded random
inputs.

For each case (:func:`run_case`):

1. ONNX Runtime (CPU) runs the *original* model; the case's tolerance (or rtol=1e-3, atol=1e-7)
   decides whether it reproduces the expected outputs. That is the baseline: a case ORT cannot
   load, cannot run, or gets wrong is counted under its reason, never assumed reachable.
2. The round trip ``irlib.load(proto) -> irlib.verify -> irlib.to_onnx`` must succeed for every
   case, and ``onnx.checker.check_model(full_check=True)`` must accept the exported model whenever
   it accepted the original.
3. The round-tripped model must behave under ORT as the original did: reproduce the expected
   outputs with the same tolerance where the original did, give the original's outputs where the
   original ran but missed the expected ones, and fail with the same status where the original
   failed.

``tests/test_conformance.py`` runs the same sweep case by case; this script runs it in parallel
and writes the figures to ``docs/conformance.md``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import glob
import json
import logging
import multiprocessing
import os
import re
import sys
import time
import warnings
from typing import Any, Callable, Iterable

import numpy as np
import onnx
from onnx import numpy_helper

import irlib

log = logging.getLogger("conformance")

DATA_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
#: The model folders of the corpus, in report order.
MODEL_FOLDERS = ("light", "pytorch-converted", "pytorch-operator", "simple", "real")
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-7
#: Seed of the random inputs used where a case ships no data.
SEED = 0
REPORT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "docs", "conformance.md")

# Baseline outcomes (Result.ort_original): "pass", or one of these reason categories.
ORT_PASS = "pass"
MISMATCH = "ORT output differs from the expected output"


# -- the corpus ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One conformance case: a model, its data sets (``None``: no data) and tolerances."""

    name: str  # "node/test_abs", "light/light_resnet50", "real/test_resnet50" ...
    model: onnx.ModelProto
    data_sets: list[tuple[list, list]] | None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    #: The graph inputs the data feeds, in order (default: the graph's inputs).
    input_names: list[str] | None = None

    def inputs(self) -> list[str]:
        if self.input_names is not None:
            return self.input_names
        return [vi.name for vi in self.model.graph.input]


@functools.lru_cache(maxsize=1)
def _node_testcases() -> dict[str, Any]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the generators overflow casts on purpose
        return {f"node/{tc.name}": tc for tc in collect_testcases(None)}


def case_names() -> list[str]:
    """Every case of the corpus, by name (node cases first, then the model folders)."""
    names = list(_node_testcases())
    for folder in MODEL_FOLDERS:
        root = os.path.join(DATA_DIR, folder)
        if folder == "light":
            names += [f"light/{os.path.basename(p)[:-5]}"
                      for p in sorted(glob.glob(os.path.join(root, "*.onnx")))]
        else:
            names += [f"{folder}/{d}" for d in sorted(os.listdir(root))
                      if os.path.isdir(os.path.join(root, d))]
    return names


def load_case(name: str) -> Case:
    """The case called ``name`` (see :func:`case_names`)."""
    folder, _, case = name.partition("/")
    if folder == "node":
        tc = _node_testcases()[name]
        data = [([_to_value(x) for x in ins], [_to_value(x) for x in outs])
                for ins, outs in tc.data_sets]
        return Case(name, tc.model, data, tc.rtol, tc.atol)
    if folder == "light":
        return _light_case(name, os.path.join(DATA_DIR, "light", case + ".onnx"))
    if folder == "real":
        with open(os.path.join(DATA_DIR, folder, case, "data.json")) as f:
            info = json.load(f)
        path = os.path.join(os.path.dirname(onnx.__file__), "..", info["url"])
        model = onnx.load(os.path.normpath(path))
        return Case(name, model, None, info.get("rtol", DEFAULT_RTOL),
                    info.get("atol", DEFAULT_ATOL), _data_inputs(model))
    folder_path = os.path.join(DATA_DIR, folder, case)
    model = onnx.load(os.path.join(folder_path, "model.onnx"))
    inputs = list(model.graph.input)
    outputs = list(model.graph.output)
    data = []
    for ds in sorted(glob.glob(os.path.join(folder_path, "test_data_set_*"))):
        n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(ds, "output_*.pb")))
        ins = [_read_pb(os.path.join(ds, f"input_{i}.pb"), inputs[i].type) for i in range(n_in)]
        outs = [_read_pb(os.path.join(ds, f"output_{i}.pb"), outputs[i].type) for i in range(n_out)]
        data.append((ins, outs))
    return Case(name, model, data or None)


def _light_case(name: str, path: str) -> Case:
    """A light model: inputs as onnx's runner makes them (``arange / n``), expected outputs from
    ``<model>_output_<i>.pb`` beside it."""
    model = onnx.load(path)
    names = _data_inputs(model)
    ins = []
    for vi in model.graph.input:
        if vi.name not in names:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        ins.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    outs = []
    for i, vi in enumerate(model.graph.output):
        pb = f"{path[:-5]}_output_{i}.pb"
        if not os.path.exists(pb):
            return Case(name, model, None, input_names=names)
        outs.append(_read_pb(pb, vi.type))
    return Case(name, model, [(ins, outs)], input_names=names)


def _data_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs that are not initializers (those a caller must feed)."""
    inits = {t.name for t in model.graph.initializer}
    return [vi.name for vi in model.graph.input if vi.name not in inits]


def _read_pb(path: str, tp: onnx.TypeProto):
    with open(path, "rb") as f:
        data = f.read()
    if tp.HasField("sequence_type"):
        msg = onnx.SequenceProto()
        msg.ParseFromString(data)
        return numpy_helper.to_list(msg)
    if tp.HasField("optional_type"):
        msg = onnx.OptionalProto()
        msg.ParseFromString(data)
        return numpy_helper.to_optional(msg)
    msg = onnx.TensorProto()
    msg.ParseFromString(data)
    return numpy_helper.to_array(msg)


def _to_value(x):
    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, onnx.SequenceProto):
        return numpy_helper.to_list(x)
    if isinstance(x, onnx.OptionalProto):
        return numpy_helper.to_optional(x)
    return x


# -- running ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    """What the sweep found for one case. ``None`` in an ``*_error`` field means no problem."""

    name: str
    ort_original: str  # ORT_PASS, or the reason category ORT cannot run the case
    ort_detail: str = ""  # one line: why, for a case ORT cannot run
    compared_with: str = "expected"  # "expected" outputs, or the "original" model's (no data)
    roundtrip_error: str | None = None  # load -> verify -> to_onnx failed
    checker_original: str | None = None  # onnx.checker's complaint about the original
    checker_roundtrip: str | None = None  # ... and about the round-tripped model
    ort_roundtrip_error: str | None = None  # the round trip behaves differently under ORT

    @property
    def ort_passes(self) -> bool:
        return self.ort_original == ORT_PASS

    @property
    def checker_regressed(self) -> bool:
        return self.checker_original is None and self.checker_roundtrip is not None

    @property
    def roundtrip_ok(self) -> bool:
        """The round trip succeeded, kept the checker's verdict and ORT's behaviour."""
        return (self.roundtrip_error is None and not self.checker_regressed
                and self.ort_roundtrip_error is None)


def round_trip(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``irlib.load -> irlib.verify -> irlib.to_onnx``."""
    model = irlib.load(proto)
    irlib.verify(model)
    return irlib.to_onnx(model)


def _checker(proto: onnx.ModelProto) -> str | None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # noqa: BLE001 - any complaint is the finding
        return _one_line(e)
    return None


def _one_line(e: BaseException | str, limit: int = 240) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OrtFailure(Exception):
    """ORT refused a model or failed running it; ``category`` groups alike failures."""

    def __init__(self, stage: str, error: BaseException):
        text = str(error)
        m = re.search(r"\[ONNXRuntimeError\] : \d+ : (\w+) :", text)
        code = m.group(1) if m else type(error).__name__
        self.category = f"ORT cannot {stage} the model: {code}"
        detail = text[m.end():] if m else text
        super().__init__(_one_line(detail))


def _session(proto: onnx.ModelProto):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(proto.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises several types; all mean "cannot load"
        raise OrtFailure("load", e) from None


#: Element types ORT's numpy bridge cannot take or give: fed and read through raw bytes.
_EXOTIC = {
    onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ,
    onnx.TensorProto.FLOAT8E5M2, onnx.TensorProto.FLOAT8E5M2FNUZ, onnx.TensorProto.FLOAT8E8M0,
    onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1,
    onnx.TensorProto.INT2, onnx.TensorProto.UINT2,
}


def _elem_type(tp: onnx.TypeProto) -> int | None:
    return tp.tensor_type.elem_type if tp.HasField("tensor_type") else None


def _run(sess, proto: onnx.ModelProto, names: list[str], inputs: list) -> list:
    """Run ``sess`` feeding ``inputs`` to the graph inputs ``names``."""
    graph = proto.graph
    exotic = any(_elem_type(vi.type) in _EXOTIC for vi in list(graph.input) + list(graph.output))
    by_name = {vi.name: vi for vi in graph.input}
    fed = [(by_name[n], x) for n, x in zip(names, inputs) if x is not None]
    try:
        if not exotic:
            return sess.run(None, {vi.name: _feed(x) for vi, x in fed})
        import onnxruntime as ort

        feeds = {}
        for vi, x in fed:
            if x is None:
                continue
            et = _elem_type(vi.type)
            if et in _EXOTIC:
                feeds[vi.name] = _exotic_ortvalue(np.asarray(x), et)
            else:
                feeds[vi.name] = ort.OrtValue.ortvalue_from_numpy(_feed(x))
        return [_from_ortvalue(v) for v in sess.run_with_ort_values(None, feeds)]
    except OrtFailure:
        raise
    except Exception as e:  # noqa: BLE001
        raise OrtFailure("run", e) from None


def _feed(x):
    if isinstance(x, list):
        return [_feed(e) for e in x]
    return np.asarray(x) if isinstance(x, np.generic) else x


def _exotic_ortvalue(x: np.ndarray, elem_type: int):
    """An OrtValue of ONNX type ``elem_type`` holding ``x``, packed as onnx packs it."""
    import ctypes

    import onnxruntime as ort

    raw = numpy_helper.from_array(x).raw_data
    v = ort.OrtValue.ortvalue_from_shape_and_type(list(x.shape), elem_type)
    if len(raw) != v.tensor_size_in_bytes():
        raise ValueError(f"packed {len(raw)} bytes for a {v.tensor_size_in_bytes()}-byte tensor")
    ctypes.memmove(v.data_ptr(), raw, len(raw))
    return v


_ORT_TYPE = re.compile(r"tensor\((\w+)\)")


def _from_ortvalue(v):
    import ctypes

    if v.is_tensor():
        et = v.element_type() if hasattr(v, "element_type") else None
        if isinstance(et, int) and et in _EXOTIC:
            raw = ctypes.string_at(v.data_ptr(), v.tensor_size_in_bytes())
            tp = onnx.TensorProto(data_type=et, dims=v.shape(), raw_data=raw)
            return numpy_helper.to_array(tp)
    return v.numpy()


def random_inputs(proto: onnx.ModelProto, names: list[str], seed: int = SEED) -> list[np.ndarray]:
    """Seeded random data for the tensor inputs ``names``; symbolic dimensions are 1."""
    rng = np.random.default_rng(seed)
    by_name = {vi.name: vi for vi in proto.graph.input}
    out = []
    for name in names:
        vi = by_name[name]
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim)
        dtype = irlib.DType(tt.elem_type).numpy
        if np.issubdtype(dtype, np.floating):
            out.append(rng.standard_normal(shape).astype(dtype))
        elif dtype == np.bool_:
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            out.append(rng.integers(0, 10, shape).astype(dtype))
    return out


def compare(expected: list, actual: list, rtol: float, atol: float) -> str | None:
    """``None`` when ``actual`` matches ``expected`` (as onnx's backend runner judges), else why."""
    if len(expected) != len(actual):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        why = _compare_one(e, a, rtol, atol)
        if why:
            return f"output {i}: {why}"
    return None


def _compare_one(e, a, rtol: float, atol: float) -> str | None:
    if isinstance(e, (list, tuple)) or isinstance(a, (list, tuple)):
        if not isinstance(e, (list, tuple)) or not isinstance(a, (list, tuple)):
            return f"got {type(a).__name__}, expected {type(e).__name__}"
        if len(e) != len(a):
            return f"sequence of {len(a)}, expected {len(e)}"
        for j, (x, y) in enumerate(zip(e, a)):
            why = _compare_one(x, y, rtol, atol)
            if why:
                return f"item {j}: {why}"
        return None
    if e is None or a is None:
        return None if e is None and a is None else f"got {a!r:.40}, expected {e!r:.40}"
    e, a = np.asarray(e), np.asarray(a)
    if e.shape != a.shape:
        return f"shape {a.shape}, expected {e.shape}"
    if e.dtype == object or a.dtype == object:
        return None if np.array_equal(e, a) else "strings differ"
    if e.dtype != a.dtype:
        return f"dtype {a.dtype}, expected {e.dtype}"
    if e.dtype.name == "bfloat16":
        rtol = max(rtol, 2 ** -6)  # two bfloat16 ulps, as onnx's runner allows
    if e.dtype.kind == "V":  # ml_dtypes types, which numpy cannot compare approximately
        wide = np.float32 if "float" in e.dtype.name else np.int32
        e, a = e.astype(wide), a.astype(wide)
    try:
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    except AssertionError as err:
        lines = [s.strip() for s in str(err).splitlines() if "Mismatch" in s or "Max abs" in s]
        return "; ".join(lines) or "values differ"
    return None


def run_case(case: Case) -> Result:
    """Run the baseline, the round trip and the comparison for one case."""
    proto = case.model
    before = proto.SerializeToString(deterministic=True)
    result = Result(case.name, ORT_PASS)
    if case.data_sets is None:
        result.compared_with = "original"
        data = [(random_inputs(proto, case.inputs()), None)]
    else:
        data = case.data_sets

    # 1. the baseline: ORT on the original model.
    baseline: list | OrtFailure
    try:
        sess = _session(proto)
        baseline = [_run(sess, proto, case.inputs(), ins) for ins, _ in data]
    except OrtFailure as e:
        baseline = e
        result.ort_original, result.ort_detail = e.category, str(e)
    else:
        for (_, expected), got in zip(data, baseline):
            why = None if expected is None else compare(expected, got, case.rtol, case.atol)
            if why:
                result.ort_original, result.ort_detail = MISMATCH, _one_line(why)
                break

    # 2. the round trip and the checker.
    try:
        rt = round_trip(proto)
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        result.roundtrip_error = f"{type(e).__name__}: {_one_line(e)}"
        return result
    if proto.SerializeToString(deterministic=True) != before:
        result.roundtrip_error = "the round trip modified the original ModelProto"
    result.checker_original = _checker(proto)
    result.checker_roundtrip = _checker(rt)

    # 3. ORT on the round-tripped model: same behaviour as the original.
    try:
        rt_sess = _session(rt)
        rt_outputs = [_run(rt_sess, rt, case.inputs(), ins) for ins, _ in data]
    except OrtFailure as e:
        if not isinstance(baseline, OrtFailure):
            result.ort_roundtrip_error = f"{e.category}: {e}"
        elif e.category != baseline.category:
            result.ort_roundtrip_error = (f"{e.category} ({e}); the original failed with"
                                          f" {baseline.category}")
        return result
    if isinstance(baseline, OrtFailure):
        result.ort_roundtrip_error = f"ORT runs the round trip but not the original ({baseline})"
        return result
    for (_, expected), got, orig in zip(data, rt_outputs, baseline):
        if result.ort_passes and expected is not None:
            why = compare(expected, got, case.rtol, case.atol)
        else:  # no data, or ORT misses the expected outputs: the original's outputs are the bar
            why = compare(orig, got, case.rtol, case.atol)
        if why:
            result.ort_roundtrip_error = _one_line(why)
            break
    return result


def run_named(name: str) -> Result:
    try:
        return run_case(load_case(name))
    except Exception as e:  # noqa: BLE001 - a broken case is reported, not fatal to the sweep
        return Result(name, f"case cannot be loaded: {type(e).__name__}",
                      _one_line(e), roundtrip_error="case not loaded")


def sweep(names: Iterable[str], jobs: int = 1,
          progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Run :func:`run_case` over ``names`` on ``jobs`` processes, results in ``names`` order."""
    names = list(names)
    results = []
    if jobs <= 1:
        it = map(run_named, names)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_node_testcases)
        it = pool.imap(run_named, names, chunksize=8)
    try:
        for i, r in enumerate(it, 1):
            results.append(r)
            if progress:
                progress(i, len(names))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


# -- the report ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Summary:
    total: int
    ort_passes: int
    roundtrip_passes: int  # of the ORT-passing cases
    roundtrip_ok_all: int  # of all cases: round trip, checker and ORT behaviour kept
    checker_accepts: int
    checker_kept: int
    by_reason: dict[str, list[Result]]
    failures: list[Result]


def summarize(results: list[Result]) -> Summary:
    by_reason: dict[str, list[Result]] = collections.defaultdict(list)
    for r in results:
        if not r.ort_passes:
            by_reason[r.ort_original].append(r)
    return Summary(
        total=len(results),
        ort_passes=sum(r.ort_passes for r in results),
        roundtrip_passes=sum(r.ort_passes and r.roundtrip_ok for r in results),
        roundtrip_ok_all=sum(r.roundtrip_ok for r in results),
        checker_accepts=sum(r.checker_original is None and r.roundtrip_error is None
                            for r in results),
        checker_kept=sum(r.checker_original is None and r.checker_roundtrip is None
                         and r.roundtrip_error is None for r in results),
        by_reason=dict(sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))),
        failures=[r for r in results if not r.roundtrip_ok],
    )


def render(results: list[Result], command: str) -> str:
    import onnxruntime as ort

    s = summarize(results)
    per_source = collections.Counter(r.name.split("/")[0] for r in results)
    lines = [
        "# irlib conformance on ONNX's backend test corpus",
        "",
        "Generated by `tools/conformance_report.py`; do not edit by hand. Produced with:",
        "",
        "```",
        command,
        "```",
        "",
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__} (CPUExecutionProvider),"
        f" numpy {np.__version__}.",
        "",
        "Each case runs under ONNX Runtime as shipped (the baseline), then goes through"
        " `irlib.load -> irlib.verify -> irlib.to_onnx`; the round-tripped model must reproduce the"
        " expected outputs with the case's tolerance (default rtol=1e-3, atol=1e-7) wherever the"
        " original does, behave as the original does where ORT cannot run the case, and pass"
        " `onnx.checker.check_model(full_check=True)` wherever the original does. `real/*` cases"
        " ship no data: the round trip is compared with the original on seeded random inputs.",
        "",
        "## Figures",
        "",
        "| | cases |",
        "|---|---:|",
        f"| total | {s.total} |",
    ]
    for src, n in per_source.items():
        lines.append(f"| &nbsp;&nbsp;{src} | {n} |")
    lines += [
        f"| ORT passes the original | {s.ort_passes} |",
        f"| round trip passes (of those) | {s.roundtrip_passes} |",
        f"| ORT cannot run (listed below) | {s.total - s.ort_passes} |",
        f"| round trip keeps ORT's behaviour, all cases | {s.roundtrip_ok_all} |",
        f"| checker (full_check) accepts the original | {s.checker_accepts} |",
        f"| checker accepts the round trip too | {s.checker_kept} |",
        f"| round-trip failures | {len(s.failures)} |",
        "",
    ]
    if s.failures:
        lines += ["## Round-trip failures", ""]
        for r in s.failures:
            why = (r.roundtrip_error or r.ort_roundtrip_error
                   or f"checker rejects the round trip: {r.checker_roundtrip}")
            lines.append(f"- `{r.name}`: {_md(why)}")
        lines.append("")
    rejected = [r for r in results if r.checker_original is not None]
    if rejected:
        lines += ["## Cases the checker rejects as shipped", "",
                  "(The round trip is not held to the checker there.)", ""]
        lines += [f"- `{r.name}`: {_md(r.checker_original)}" for r in rejected]
        lines.append("")
    lines += ["## Cases ORT cannot run, by reason", ""]
    if not s.by_reason:
        lines += ["None.", ""]
    for reason, rs in s.by_reason.items():
        lines += [f"### {reason} ({len(rs)})", ""]
        for r in rs:
            lines.append(f"- `{r.name}`: {_md(r.ort_detail)}")
        lines.append("")
    return "\n".join(lines)


#: The sections this script writes; any other "## " section of the file (another tool's) is kept.
OWN_SECTIONS = ("Figures", "Round-trip failures", "Cases the checker rejects as shipped",
                "Cases ORT cannot run, by reason")


def merge(existing: str, rendered: str) -> str:
    """``rendered``, followed by the sections of ``existing`` that this script does not write."""
    kept: list[str] = []
    keep = False
    for line in existing.splitlines():
        if line.startswith("## "):
            keep = line[3:].strip() not in OWN_SECTIONS
        if keep:
            kept.append(line)
    if not kept:
        return rendered
    return rendered.rstrip("\n") + "\n\n" + "\n".join(kept).rstrip("\n") + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("<", "&lt;")


def parse_report(text: str) -> dict[str, str]:
    """The case -> reason listing of a rendered report's "cannot run" section."""
    out: dict[str, str] = {}
    reason = None
    section = False
    for line in text.splitlines():
        if line.startswith("## "):
            section = line.startswith("## Cases ORT cannot run")
            reason = None
        elif section and line.startswith("### "):
            reason = re.sub(r" \(\d+\)$", "", line[4:])
        elif section and reason and line.startswith("- `"):
            out[line[3:line.index("`", 3)]] = reason
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default=REPORT_PATH,
                   help="where to write the report ('-' for stdout); default docs/conformance.md")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("-k", "--filter", default="", help="only cases whose name contains this")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = [n for n in case_names() if args.filter in n]
    start = time.perf_counter()

    def progress(i: int, n: int) -> None:
        if i % 200 == 0 or i == n:
            log.info("%d/%d cases", i, n)

    results = sweep(names, args.jobs, progress)
    seconds = time.perf_counter() - start
    command = "python tools/conformance_report.py" + (
        f" -k {args.filter}" if args.filter else "")
    text = render(results, command)
    log.info("the sweep took %.0f s", seconds)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        if os.path.exists(args.output):
            with open(args.output, encoding="utf-8") as f:
                text = merge(f.read(), text)
        irlib.atomic_write(args.output, text.encode("utf-8"))
        log.info("wrote %s", args.output)
    s = summarize(results)
    log.info("%d cases, ORT passes %d, round trip passes %d of those, %d round-trip failures",
             s.total, s.ort_passes, s.roundtrip_passes, len(s.failures))
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
