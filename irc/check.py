"""``irc check`` as library functions: compile a model, run it, compare it with the reference.

The reference is the *original* model run by ONNX Runtime with every graph optimization disabled
(:func:`backends.numerics.run_reference`). The candidate is the model compiled by irc's passes and
run by a backend (ORT by default, also with ORT's optimizations off, so that any difference is
irc's). ::

    from irc.check import check_model
    result = check_model("examples/tiny_cnn.onnx", level=2)
    result.aligned, [c.max_abs_error for c in result.outputs]

When outputs differ, :func:`first_divergence` finds the first node of the compiled model (in
topological order) whose output no longer matches the same-named tensor of the original, and
:func:`bisect` finds the first pass after which the outputs diverge (binary search over
``PassManager(max_pass_runs=N)``, like LLVM's opt-bisect; it assumes that once a pass breaks the
outputs, later passes do not repair them).

Inputs are seeded random arrays (:func:`random_inputs`) or read from a file
(:func:`load_inputs`: ``.npz``, a folder of ``NAME.npy``, a folder of ONNX ``TensorProto`` files
``input_0.pb ...``); :class:`InputError` reports a bad one on one line.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx

import irlib
import passes
from backends import Backend, BackendError, get_backend
from backends.numerics import Comparison, compare, compare_outputs, run_reference
from irlib import IRError, Model, TensorType

__all__ = [
    "BisectResult", "CandidateError", "CheckResult", "Divergence", "InputError", "InputSpec", "bisect",
    "candidate_pipeline", "check_model", "check_models", "first_divergence", "input_specs",
    "load_inputs", "parse_dims", "random_inputs", "validate_inputs",
]

log = logging.getLogger(__name__)

#: Options ``irc check`` gives the ORT backend unless told otherwise: ORT's own graph
#: optimizations off, so that the candidate differs from the reference only by irc's passes.
CHECK_ORT_OPTIONS = {"graph_optimization_level": "disable"}


class InputError(IRError):
    """Bad input data or usage for a check (missing input, wrong shape or dtype ...)."""


class CandidateError(BackendError):
    """The compiled model could not be compiled or run by the backend (a failed check, not bad
    input: the original runs)."""


# -- inputs ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InputSpec:
    """A graph input the caller must feed: ``shape`` dims are ints, symbolic names or None."""

    name: str
    dtype: np.dtype
    shape: tuple | None
    has_default: bool = False  # an initializer gives it a value when not fed


def input_specs(model: Model) -> list[InputSpec]:
    """The model's graph inputs, in order (inputs with an initializer default included)."""
    specs = []
    for v in model.graph.inputs:
        t = v.type
        if not isinstance(t, TensorType):
            raise InputError(f"input {v.name!r} is a {t or 'value of unknown type'}, not a tensor:"
                             " irc check feeds tensors only")
        try:
            dtype = np.dtype(object) if t.dtype.name == "STRING" else np.dtype(t.dtype.numpy)
        except TypeError as e:
            raise InputError(f"input {v.name!r}: {e}") from None
        specs.append(InputSpec(v.name, dtype, t.shape, v.const_value is not None))
    return specs


def parse_dims(items: Sequence[str]) -> dict[str, int]:
    """``["N=2", "seq=16"]`` -> ``{"N": 2, "seq": 16}``."""
    dims = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            dims[name.strip()] = int(value)
        except ValueError:
            raise InputError(f"--dim {item!r}: expected NAME=INTEGER") from None
        if dims[name.strip()] < 0:
            raise InputError(f"--dim {item!r}: a dimension cannot be negative")
    return dims


def _concrete_shape(spec: InputSpec, dims: Mapping[str, int]) -> tuple[int, ...]:
    if spec.shape is None:
        raise InputError(f"input {spec.name!r} has an unknown rank: give its data with --inputs")
    return tuple(d if isinstance(d, int) else dims.get(d, 1) if isinstance(d, str) else 1
                 for d in spec.shape)


def random_inputs(model: Model, dims: Mapping[str, int] | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random data for every input without an initializer default.

    Symbolic dims take their value from ``dims`` (default 1), unknown dims 1. Floats are standard
    normal, integers uniform in [0, 8), bools fair coins, strings short words.
    """
    dims = dict(dims or {})
    rng = np.random.default_rng(seed)
    out = {}
    for spec in input_specs(model):
        if spec.has_default:
            continue
        shape = _concrete_shape(spec, dims)
        dt = spec.dtype
        if dt.kind == "b":
            arr = rng.random(shape) < 0.5
        elif dt.kind in "iu":
            arr = rng.integers(0, 8, size=shape).astype(dt)
        elif dt.kind == "c":
            arr = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
        elif dt.kind == "O":
            words = np.array(["a", "irc", "onnx", "check"], dtype=object)
            arr = words[rng.integers(0, len(words), size=shape)]
        else:  # float32/64/16 and ml_dtypes' bfloat16 / float8 ...
            arr = rng.standard_normal(shape).astype(np.float32).astype(dt)
        out[spec.name] = np.asarray(arr)
    return out


def _safe(name: str) -> str:
    """An input name as a file name: anything but letters, digits, ``_.-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def load_inputs(path: str, model: Model) -> dict[str, np.ndarray]:
    """Read input arrays from ``path`` and check them against the model (:func:`validate_inputs`).

    ``path`` is an ``.npz`` (keys: input names), a folder of ``NAME.npy`` files (``/`` and other
    characters not allowed in file names replaced by ``_``), a folder of ONNX ``TensorProto``
    files (``input_0.pb``, ``input_1.pb`` ... as in ONNX's test_data_set folders: the tensor's
    name if it has one, else the number, picks the input), or one ``.npy``/``.pb`` file for a model
    with one input.
    """
    specs = [s for s in input_specs(model)]
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        arrays = _load_folder(path, specs)
    elif path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: not a readable .npz file ({_one_line(e)})") from None
    elif path.endswith((".npy", ".pb")):
        needed = [s for s in specs if not s.has_default]
        if len(needed) != 1:
            raise InputError(f"{path}: one file can feed a model with one input; this one has"
                             f" {len(needed)} ({', '.join(s.name for s in needed)}): use a .npz"
                             " or a folder")
        arr = _read_npy(path) if path.endswith(".npy") else _read_pb(path)[1]
        arrays = {needed[0].name: arr}
    else:
        raise InputError(f"{path}: expected a .npz file, a .npy/.pb file or a folder of them")
    validate_inputs(model, arrays, source=path)
    return arrays


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable .npy file ({_one_line(e)})") from None


def _read_pb(path: str) -> tuple[str, np.ndarray]:
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    proto = onnx.TensorProto()
    try:
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        if not proto.HasField("data_type") or proto.data_type == 0:
            raise ValueError("no data type")
        return proto.name, numpy_helper.to_array(proto)
    except (DecodeError, ValueError, TypeError, RuntimeError) as e:
        raise InputError(f"{path}: not an ONNX TensorProto ({_one_line(e)})") from None


def _load_folder(folder: str, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    npys = sorted(glob.glob(os.path.join(folder, "*.npy")))
    pbs = sorted(glob.glob(os.path.join(folder, "input_*.pb"))) or \
        sorted(glob.glob(os.path.join(folder, "*.pb")))
    if npys and pbs:
        raise InputError(f"{folder}: holds both .npy and .pb files; keep one kind")
    if not npys and not pbs:
        raise InputError(f"{folder}: no .npy or .pb files in it")
    arrays: dict[str, np.ndarray] = {}
    if npys:
        by_file = {}
        for s in specs:
            by_file.setdefault(s.name, s.name)
            by_file.setdefault(_safe(s.name), s.name)
        for p in npys:
            stem = os.path.basename(p)[:-4]
            arrays[by_file.get(stem, stem)] = _read_npy(p)
        return arrays
    names = [s.name for s in specs if not s.has_default]
    for p in pbs:
        name, arr = _read_pb(p)
        if not name or name not in {s.name for s in specs}:
            m = re.fullmatch(r"input_(\d+)\.pb", os.path.basename(p))
            if m is None:
                raise InputError(f"{p}: the tensor has no input name and the file is not named"
                                 " input_<N>.pb")
            index = int(m.group(1))
            if index >= len(names):
                raise InputError(f"{p}: the model has only {len(names)} input(s)")
            name = names[index]
        if name in arrays:
            raise InputError(f"{p}: a second tensor for input {name!r}")
        arrays[name] = arr
    return arrays


def validate_inputs(model: Model, arrays: Mapping[str, np.ndarray], source: str = "inputs",
                    dims: Mapping[str, int] | None = None) -> None:
    """Raise :class:`InputError` unless ``arrays`` feeds every input with the right dtype and
    shape (symbolic dims bound consistently, to ``dims`` where given) and names no other."""
    specs = input_specs(model)
    known = {s.name for s in specs}
    extra = [k for k in arrays if k not in known]
    if extra:
        raise InputError(f"{source}: {extra[0]!r} is not an input of the model"
                         f" (inputs: {', '.join(s.name for s in specs)})")
    bound = dict(dims or {})
    for s in specs:
        if s.name not in arrays:
            if s.has_default:
                continue
            have = ", ".join(arrays) or "nothing"
            raise InputError(f"{source}: no data for input {s.name!r} (it has: {have})")
        arr = np.asarray(arrays[s.name])
        if arr.dtype != s.dtype and not (s.dtype.kind == "O" and arr.dtype.kind in "OU"):
            raise InputError(f"input {s.name!r}: dtype {arr.dtype} does not match the model's"
                             f" {s.dtype}")
        if s.shape is None:
            continue
        want = "[" + ", ".join("?" if d is None else str(d) for d in s.shape) + "]"
        if arr.ndim != len(s.shape):
            raise InputError(f"input {s.name!r}: shape {list(arr.shape)} does not match the"
                             f" model's {want} (rank {arr.ndim} != {len(s.shape)})")
        for axis, (d, n) in enumerate(zip(s.shape, arr.shape)):
            if isinstance(d, int) and d != n:
                raise InputError(f"input {s.name!r}: shape {list(arr.shape)} does not match the"
                                 f" model's {want} (dim {axis} is {n}, not {d})")
            if isinstance(d, str):
                if bound.setdefault(d, n) != n:
                    raise InputError(f"input {s.name!r}: dim {axis} ({d!r}) is {n}, but {d}="
                                     f"{bound[d]} elsewhere")


# -- compiling and running ------------------------------------------------------------------
def candidate_pipeline(level: int = 2, pipeline: str | None = None,
                       backend: Backend | None = None) -> list:
    """The pass pipeline a check compiles with: ``pipeline`` text if given, else the ``-O level``
    pipeline, plus the backend's own passes at that level."""
    if pipeline is not None:
        return passes.parse_pipeline(pipeline)
    items = passes.level_pipeline(level, target=backend.name if backend else None)
    extra = backend.pipeline(level) if backend is not None else ""
    return items + (passes.parse_pipeline(extra) if extra else [])


def _backend_options(backend: Backend, options: Mapping[str, Any] | None) -> dict:
    opts = dict(CHECK_ORT_OPTIONS) if backend.name == "ort" else {}
    opts.update(options or {})
    return opts


def _run_candidate(backend: Backend, model: Model, options: dict,
                   inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        exe = backend.compile(model, options)
        feed = {k: v for k, v in inputs.items() if k in exe.input_names}
        return exe.run(feed)
    except BackendError as e:
        raise CandidateError(f"the compiled model fails on backend {backend.name!r}: {e}") from e


@dataclasses.dataclass
class Divergence:
    """The first node of the compiled model whose output differs from the original's."""

    node: str            # the node's one-line text (irlib.format_node)
    op: str
    name: str
    inputs: list[str]
    output: str
    comparison: Comparison
    rule: str | None = None        # node.meta["irc.rule"]: the rewrite that made the node
    replaced: list[str] | None = None
    compared: int = 0    # how many same-named tensors were compared

    def as_json(self) -> dict:
        c = self.comparison.as_json()
        return {"node": self.node, "op": self.op, "name": self.name, "inputs": self.inputs,
                "output": self.output, "max_abs_error": c["max_abs_error"],
                "max_rel_error": c["max_rel_error"], "mismatches": c["mismatches"],
                "cosine": c["cosine"], "rule": self.rule, "replaced": self.replaced,
                "compared": self.compared}

    def summary(self) -> str:
        where = f" (created by rule {self.rule!r}" + (
            f" replacing {', '.join(self.replaced)})" if self.replaced else ")") if self.rule else ""
        return f"{self.op} node producing %{self.output}{where}: {self.comparison.summary()}"


def _with_outputs(proto: onnx.ModelProto, names: Sequence[str]) -> bytes:
    """A copy of ``proto`` that also outputs ``names`` (untyped: ORT infers the types)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    present = {o.name for o in copy.graph.output}
    for n in names:
        if n not in present:
            copy.graph.output.add().name = n
    return copy.SerializeToString()


def first_divergence(reference: onnx.ModelProto, candidate: Model,
                     inputs: Mapping[str, np.ndarray], rtol: float | None = None,
                     atol: float | None = None) -> Divergence | None:
    """The first node (topological order of ``candidate``) with an output that exists by name
    in ``reference`` and differs from it, both run under ORT with optimizations off.

    Returns None when no same-named intermediate differs (then the difference comes from where
    no tensor can be compared, or from the backend's execution rather than the graph).
    """
    g = reference.graph
    ref_names = {o for n in g.node for o in n.output if o}
    outside = {i.name for i in g.input} | {t.name for t in g.initializer}
    order = []
    for node in candidate.graph:  # verified models are in topological order
        for v in node.outputs:
            if v.name and v.name in ref_names and v.name not in outside:
                order.append((node, v))
    if not order:
        return None
    names = [v.name for _, v in order]
    ref = run_reference(_with_outputs(reference, names), inputs)
    got = run_reference(_with_outputs(irlib.to_onnx(candidate), names), inputs)
    compared = 0
    for node, v in order:
        if v.name not in ref or v.name not in got:
            continue
        compared += 1
        c = compare(v.name, ref[v.name], got[v.name], rtol, atol)
        if not c.aligned:
            return Divergence(
                node=irlib.format_node(node), op=node.qualified_op, name=node.name,
                inputs=["" if i is None else i.name for i in node.inputs], output=v.name,
                comparison=c, rule=node.meta.get("irc.rule"),
                replaced=list(node.meta["irc.replaced"]) if "irc.replaced" in node.meta else None,
                compared=compared)
    log.info("first_divergence: %d same-named tensors compared, none differs", compared)
    return None


# -- bisect ---------------------------------------------------------------------------------
@dataclasses.dataclass
class BisectResult:
    """The first pass run after which the outputs diverge, and what it changed."""

    pass_name: str | None      # None: the outputs stay aligned after every pass
    index: int                 # 1-based pass run (0: the import/export round trip itself)
    runs: int                  # pass runs in the whole pipeline
    added: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    changed: list[str] = dataclasses.field(default_factory=list)
    steps: list[tuple[int, bool]] = dataclasses.field(default_factory=list)  # (N, aligned)

    def as_json(self) -> dict:
        return {"pass": self.pass_name, "index": self.index, "runs": self.runs,
                "added": self.added, "removed": self.removed, "changed": self.changed,
                "steps": [{"max_pass_runs": n, "aligned": ok} for n, ok in self.steps]}


class _ChangeRecorder(passes.Instrument):
    """Records the nodes added, removed and edited by pass run number ``target`` (1-based)."""

    def __init__(self, target: int):
        self.target = target
        self.count = 0
        self.before: dict = {}
        self.added: list[str] = []
        self.removed: list[str] = []
        self.changed: list[str] = []

    def before_pass(self, p, model) -> None:
        self.count += 1
        if self.count == self.target:
            self.before = {n: irlib.format_node(n) for n in model.graph.all_nodes()}

    def after_pass(self, p, model, record) -> None:
        if self.count != self.target:
            return
        now = list(model.graph.all_nodes())
        alive = set(now)
        for n in now:
            text = irlib.format_node(n)
            if n not in self.before:
                self.added.append(text)
            elif self.before[n] != text:
                self.changed.append(f"{self.before[n]}  ->  {text}")
        self.removed = [t for n, t in self.before.items() if n not in alive]


def bisect(reference: onnx.ModelProto, pipeline: Sequence, inputs: Mapping[str, np.ndarray],
           backend: Backend | str = "ort", options: Mapping[str, Any] | None = None,
           rtol: float | None = None, atol: float | None = None,
           expected: Mapping[str, np.ndarray] | None = None) -> BisectResult:
    """Find the first pass run after which the compiled model's outputs diverge.

    Runs ``pipeline`` on fresh copies of ``reference`` with ``PassManager(max_pass_runs=N)``,
    binary-searching N between 0 (the IR round trip alone) and the number of pass runs of the
    full pipeline, then reruns the culprit to record the nodes it added, removed and changed.
    """
    be = get_backend(backend) if isinstance(backend, str) else backend
    opts = _backend_options(be, options)
    if expected is None:
        expected = run_reference(reference.SerializeToString(), inputs)
    names = list(expected)
    steps: list[tuple[int, bool]] = []

    def aligned_after(n: int | None, instruments=()) -> tuple[bool, Any]:
        model = irlib.load(reference)
        report = passes.PassManager(list(pipeline), max_pass_runs=n,
                                    instruments=instruments).run(model)
        got = _run_candidate(be, model, opts, inputs)
        ok = all(c.aligned for c in compare_outputs(expected, got, names, rtol, atol))
        return ok, report

    ok, report = aligned_after(None)
    total = len(report.passes)
    steps.append((total, ok))
    if ok:
        return BisectResult(None, total, total, steps=steps)
    ok0, _ = aligned_after(0)
    steps.append((0, ok0))
    if not ok0:
        return BisectResult("(import/export round trip)", 0, total, steps=steps)
    lo, hi = 0, total  # aligned after lo pass runs, diverged after hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, _ = aligned_after(mid)
        steps.append((mid, ok))
        if ok:
            lo = mid
        else:
            hi = mid
    recorder = _ChangeRecorder(hi)
    _, report = aligned_after(hi, [recorder])
    culprit = report.passes[hi - 1].name
    log.info("bisect: first diverging pass run %d of %d: %s", hi, total, culprit)
    return BisectResult(culprit, hi, total, recorder.added, recorder.removed, recorder.changed,
                        steps)


# -- the whole check ------------------------------------------------------------------------
@dataclasses.dataclass
class CheckResult:
    """What ``irc check`` found. ``as_json`` is the ``--json`` contract."""

    outputs: list[Comparison]
    first_divergence: Divergence | None = None
    bisect: BisectResult | None = None
    backend: str = "ort"
    pipeline: str = ""
    inputs: dict[str, tuple] = dataclasses.field(default_factory=dict)  # name -> (dtype, shape)

    @property
    def aligned(self) -> bool:
        return all(c.aligned for c in self.outputs)

    def as_json(self) -> dict:
        return {
            "aligned": self.aligned,
            "outputs": [c.as_json() for c in self.outputs],
            "first_divergence": self.first_divergence.as_json() if self.first_divergence else None,
            "bisect": self.bisect.as_json() if self.bisect else None,
        }


def _reference_outputs(reference: onnx.ModelProto, inputs) -> dict[str, np.ndarray]:
    try:
        return run_reference(reference.SerializeToString(), inputs)
    except BackendError as e:
        raise InputError(f"the reference (ONNX Runtime, optimizations off) cannot run the original"
                         f" model: {e}") from None


def _inputs_for(model: Model, inputs, dims, seed) -> dict[str, np.ndarray]:
    if inputs is None:
        return random_inputs(model, dims, seed)
    if isinstance(inputs, (str, os.PathLike)):
        arrays = load_inputs(os.fspath(inputs), model)
        validate_inputs(model, arrays, os.fspath(inputs), dims)
        return arrays
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    validate_inputs(model, arrays, "inputs", dims)
    return arrays


def _load(model) -> tuple[onnx.ModelProto, Model]:
    """The original ``ModelProto`` (the reference runs it as it is) and its verified IR."""
    if isinstance(model, onnx.ModelProto):
        proto, ir = model, irlib.load(model)
    else:
        path = os.fspath(model)
        ir = irlib.load(path)  # the IR's one-line errors for a missing or corrupt file
        proto = onnx.load(path)
    irlib.verify(ir)
    return proto, ir


def check_model(
    model: str | os.PathLike | onnx.ModelProto,
    *,
    level: int = 2,
    pipeline: str | None = None,
    backend: str = "ort",
    backend_options: Mapping[str, Any] | None = None,
    inputs: str | Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    bisect_passes: bool = False,
    instruments: Sequence = (),
    on_compiled: Callable[[Model], None] | None = None,
) -> CheckResult:
    """Compile ``model`` (``-O level`` or an explicit ``pipeline``), run it on ``backend`` and
    compare it with the original under ORT with optimizations off.

    ``inputs``: a path for :func:`load_inputs`, a dict of arrays, or None for seeded random data.
    On a mismatch the result names the first diverging node; with ``bisect_passes`` also the
    first diverging pass. Raises :class:`InputError` for bad inputs or a model the reference
    cannot run, :class:`backends.BackendError` when the backend cannot compile or run it.
    """
    proto, ir = _load(model)
    be = get_backend(backend)
    be.require_available()
    opts = be.check_options(_backend_options(be, backend_options))
    items = candidate_pipeline(level, pipeline, be)
    feed = _inputs_for(ir, inputs, dims, seed)
    expected = _reference_outputs(proto, feed)
    passes.PassManager(items, instruments=instruments).run(ir)
    if on_compiled is not None:
        on_compiled(ir)
    got = _run_candidate(be, ir, opts, feed)
    result = CheckResult(compare_outputs(expected, got, rtol=rtol, atol=atol), backend=be.name,
                         pipeline=passes.format_pipeline(items),
                         inputs={k: (str(v.dtype), list(v.shape)) for k, v in feed.items()})
    if not result.aligned:
        result.first_divergence = first_divergence(proto, ir, feed, rtol, atol)
        if bisect_passes:
            result.bisect = bisect(proto, items, feed, be, backend_options, rtol, atol, expected)
    return result


def check_models(
    reference: str | os.PathLike | onnx.ModelProto,
    other: str | os.PathLike | onnx.ModelProto,
    *,
    backend: str = "ort",
    backend_options: Mapping[str, Any] | None = None,
    inputs: str | Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, int] | None = None,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
) -> CheckResult:
    """Compare ``other`` (run as given on ``backend``) with ``reference`` (ORT, optimizations
    off) on the same inputs; the first divergence is matched by tensor name."""
    ref_proto, ref_ir = _load(reference)
    _, other_ir = _load(other)
    be = get_backend(backend)
    be.require_available()
    opts = be.check_options(_backend_options(be, backend_options))
    feed = _inputs_for(ref_ir, inputs, dims, seed)
    validate_inputs(other_ir, {k: v for k, v in feed.items()
                               if k in {s.name for s in input_specs(other_ir)}},
                    "the second model's inputs", dims)
    expected = _reference_outputs(ref_proto, feed)
    got = _run_candidate(be, other_ir, opts, feed)
    result = CheckResult(compare_outputs(expected, got, rtol=rtol, atol=atol), backend=be.name,
                         inputs={k: (str(v.dtype), list(v.shape)) for k, v in feed.items()})
    if not result.aligned:
        result.first_divergence = first_divergence(ref_proto, other_ir, feed, rtol, atol)
    return result
