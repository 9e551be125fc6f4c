"""Numerical alignment: compare outputs with ONNX Runtime's unoptimized run of the original.

The reference is always ONNX Runtime with every graph optimization disabled
(:func:`run_reference`), so a difference is irc's doing, not ORT's. Arrays are compared by
:func:`compare` under per-dtype tolerances (:func:`default_tolerance`):

============  ======  ======
dtype         rtol    atol
============  ======  ======
float, double 1e-4    1e-5
float16, bf16 1e-2    1e-3
ints, bools   0       0       (exact)
============  ======  ======

An element matches when ``|got - ref| <= atol + rtol * |ref|`` (NaN matches NaN, an infinity
the same infinity). :class:`NumericsCheck` is a pass-manager instrument that runs the model after
every pass and stops the pipeline at the first pass whose outputs diverge::

    check = NumericsCheck(onnx_proto_of_the_input, inputs)
    PassManager(level_pipeline(2), instruments=[check]).run(model)   # PassFailure names the pass
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

import irlib
from backends.base import BackendError
from backends.ort import make_session
from passes.instruments import Instrument

__all__ = [
    "Comparison", "NumericsCheck", "NumericsDivergence", "Tolerance", "compare",
    "compare_outputs", "default_tolerance", "run_reference",
]


@dataclasses.dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


_FP16_LIKE = {"float16", "bfloat16"}


def default_tolerance(dtype: np.dtype, rtol: float | None = None,
                      atol: float | None = None) -> Tolerance:
    """The tolerance for comparing arrays of ``dtype``; ``rtol``/``atol`` override the default."""
    dtype = np.dtype(dtype)
    if dtype.name in _FP16_LIKE:
        base = Tolerance(1e-2, 1e-3)
    elif np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating) or \
            dtype.name.startswith("float"):
        base = Tolerance(1e-4, 1e-5)
    else:
        base = Tolerance(0.0, 0.0)
    return Tolerance(base.rtol if rtol is None else rtol, base.atol if atol is None else atol)


@dataclasses.dataclass
class Comparison:
    """How one tensor compares with its reference.

    ``max_rel_error`` is ``max |got - ref| / |ref|`` over the elements where ``ref != 0``.
    Errors are ``inf`` where the two disagree on a NaN or an infinity; ``None`` (and
    ``aligned=False``) when the shapes or dtypes differ, with the reason in ``note``.
    """

    name: str
    dtype: str
    shape: list[int]
    max_abs_error: float | None
    max_rel_error: float | None
    mismatches: int
    cosine: float | None
    aligned: bool
    rtol: float
    atol: float
    note: str = ""

    def as_json(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "dtype", "shape", "max_abs_error",
                                             "max_rel_error", "mismatches", "cosine", "aligned")}
        for k in ("max_abs_error", "max_rel_error", "cosine"):
            v = d[k]
            if v is not None and not math.isfinite(v):
                d[k] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if self.note:
            d["note"] = self.note
        return d

    def summary(self) -> str:
        """One line: ``name: max abs 1.2e-06, max rel 3e-05, 0 mismatches, cosine 1.000000``."""
        if self.note:
            return f"{self.name}: {self.note}"
        return (f"{self.name}: max abs {_fmt(self.max_abs_error)}, max rel "
                f"{_fmt(self.max_rel_error)}, {self.mismatches} of {int(np.prod(self.shape))}"
                f" mismatched, cosine {_fmt(self.cosine, '.6f')}")


def _fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def compare(name: str, ref, got, rtol: float | None = None,
            atol: float | None = None) -> Comparison:
    """Compare ``got`` with the reference ``ref`` (tolerances default by ``ref``'s dtype)."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    tol = default_tolerance(ref.dtype, rtol, atol)
    shape = [int(d) for d in ref.shape]
    if ref.shape != got.shape or ref.dtype != got.dtype:
        note = (f"shape {list(got.shape)} != reference {shape}" if ref.shape != got.shape
                else f"dtype {got.dtype} != reference {ref.dtype}")
        return Comparison(name, str(ref.dtype), shape, None, None, int(ref.size), None, False,
                          tol.rtol, tol.atol, note)
    if ref.dtype.kind in "OSU":  # strings: exact
        bad = int(np.count_nonzero(ref != got))
        return Comparison(name, str(ref.dtype), shape, 0.0 if not bad else None, None, bad,
                          None, bad == 0, tol.rtol, tol.atol)
    r = ref.astype(np.complex128 if ref.dtype.kind == "c" else np.float64)
    g = got.astype(r.dtype)
    if ref.dtype.kind in "iub":  # exact, without float64's rounding of large int64s
        same = ref == got
    else:  # equal infinities and NaNs count as equal
        same = (r == g) | (np.isnan(r) & np.isnan(g))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(g - r))
        if ref.dtype.kind in "iu":  # unequal ints differ by at least 1 (float64 may round to 0)
            diff = np.where(same, 0.0, np.maximum(diff, 1.0))
        diff = np.where(np.isnan(diff), np.inf, diff)
        ok = same | (diff <= tol.atol + tol.rtol * np.abs(r))
        nz = r != 0
        rel = np.where(nz, diff / np.where(nz, np.abs(r), 1.0), 0.0)
    mismatches = int(ref.size - np.count_nonzero(ok))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float(rel.max()) if rel.size else 0.0
    return Comparison(name, str(ref.dtype), shape, max_abs, max_rel, mismatches, _cosine(r, g),
                      mismatches == 0, tol.rtol, tol.atol)


def _cosine(r: np.ndarray, g: np.ndarray) -> float:
    """Cosine similarity over the elements finite in both (1.0 when both are all zero)."""
    finite = np.isfinite(r) & np.isfinite(g)
    a, b = r[finite].ravel(), g[finite].ravel()
    if a.dtype.kind == "c":
        a, b = np.concatenate([a.real, a.imag]), np.concatenate([b.real, b.imag])
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                    names: Sequence[str] | None = None, rtol: float | None = None,
                    atol: float | None = None) -> list[Comparison]:
    """Compare each named output (default: every reference output); one missing from ``got``
    is a misaligned comparison."""
    out = []
    for name in (names if names is not None else list(ref)):
        r = ref[name]
        if name not in got:
            arr = np.asarray(r)
            out.append(Comparison(name, str(arr.dtype), list(arr.shape), None, None,
                                  int(arr.size), None, False, 0.0, 0.0,
                                  "missing from the compiled model's outputs"))
            continue
        out.append(compare(name, r, got[name], rtol, atol))
    return out


def run_reference(model_bytes: bytes, inputs: Mapping[str, np.ndarray],
                  outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run a serialized ONNX model under ONNX Runtime with every optimization disabled.

    Returns the outputs by name (``outputs``: only these). Values that are not tensors
    (sequences, maps) are left out. Raises :class:`BackendError` when ORT cannot load or run it.
    """
    session = make_session(model_bytes, graph_optimization_level="disable")
    names = [o.name for o in session.get_outputs()]
    wanted = list(outputs) if outputs is not None else names
    feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
    try:
        results = session.run(wanted, feed)
    except Exception as e:
        raise BackendError(f"ort: run failed: {' '.join(str(e).split())}") from e
    return {n: r for n, r in zip(wanted, results) if isinstance(r, np.ndarray)}


class NumericsDivergence(Exception):
    """Outputs diverged from the reference; the message is one line naming the outputs."""

    def __init__(self, message: str, comparisons: list[Comparison]):
        super().__init__(message)
        self.comparisons = comparisons


class NumericsCheck(Instrument):
    """After every pass, run the model under ORT (optimizations off) and compare with the
    reference; raise :class:`NumericsDivergence` when an output diverges, which the pass
    manager turns into a ``PassFailure`` naming that pass.

    ``reference`` is the original ``onnx.ModelProto`` (or its bytes); its outputs on ``inputs``
    are computed once. ``only_changed`` (default) skips passes that reported no change.

    >>> pm = PassManager(level_pipeline(2), instruments=[NumericsCheck(proto, {"x": x})])  # doctest: +SKIP
    """

    def __init__(self, reference, inputs: Mapping[str, np.ndarray], *, rtol: float | None = None,
                 atol: float | None = None, only_changed: bool = True):
        data = reference if isinstance(reference, bytes) else reference.SerializeToString()
        self.inputs = dict(inputs)
        self.rtol, self.atol = rtol, atol
        self.only_changed = only_changed
        self.expected = run_reference(data, self.inputs)
        self.checked: list[str] = []

    def after_pass(self, p, model, record) -> None:
        if self.only_changed and not record.changed:
            return
        try:
            got = run_reference(irlib.to_onnx(model).SerializeToString(), self.inputs)
        except BackendError as e:
            raise NumericsDivergence(f"the model no longer runs under ORT: {e}", []) from e
        comparisons = compare_outputs(self.expected, got, rtol=self.rtol, atol=self.atol)
        self.checked.append(p.name)
        bad = [c for c in comparisons if not c.aligned]
        if bad:
            more = f" (and {len(bad) - 1} more output(s))" if len(bad) > 1 else ""
            raise NumericsDivergence(f"outputs diverge from the reference: {bad[0].summary()}{more}",
                                     comparisons)
