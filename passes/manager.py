"""The pass manager: runs a pipeline over a model with verification, timing and instruments.

    pm = PassManager("fixpoint(dce,eliminate-identity),fuse-conv-bn")
    report = pm.run(model)            # CompileReport: per-pass seconds, node counts, changed

After every pass the verifier runs (``verify_each=False`` skips it); a pass that raises or leaves
the IR invalid stops the pipeline with :class:`PassFailure`, which names the pass and the passes
that ran before it and, when ``reproducer_dir`` is set, points at a folder holding the input model
and the exact pipeline string for ``irc compile input.onnx --passes "$(cat pipeline.txt)"``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Iterable, Sequence

import irlib
from irlib import Model
from passes.base import Pass, PassKind, PassResult
from passes.context import PassContext
from passes.errors import ConvergenceError, PassFailure
from passes.instruments import Instrument
from passes.pipeline import FixedPoint, PipelineItem, format_pipeline, parse_pipeline
from passes.report import CompileReport, PassRecord, summarize

__all__ = ["PassManager", "run_passes"]

log = logging.getLogger(__name__)


def _count_nodes(model: Model) -> int:
    return sum(1 for _ in model.graph.all_nodes())


class PassManager:
    def __init__(
        self,
        pipeline: str | Sequence[PipelineItem],
        *,
        verify_each: bool = True,
        instruments: Iterable[Instrument] = (),
        config: dict | None = None,
        reproducer_dir: str | None = None,
        input_path: str | None = None,
        max_pass_runs: int | None = None,
    ):
        """``max_pass_runs``: run only the first N pass executions and skip the rest (counting
        each round of a fixpoint group separately), like LLVM's ``-opt-bisect-limit``; used by
        ``irc check --bisect`` to find the first pass after which outputs diverge."""
        self.items: list[PipelineItem] = (
            parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline))
        self.verify_each = verify_each
        self.instruments = list(instruments)
        self.config = dict(config or {})
        self.reproducer_dir = reproducer_dir
        self.input_path = input_path
        self.max_pass_runs = max_pass_runs

    @property
    def pipeline_text(self) -> str:
        return format_pipeline(self.items)

    def run(self, model: Model) -> CompileReport:
        """Run the pipeline on ``model`` in place and return the report."""
        snapshot = None
        if self.reproducer_dir and not self.input_path:
            snapshot = irlib.to_onnx(model)
        report = CompileReport(pipeline=self.pipeline_text, input=summarize(model))
        ctx = PassContext(model, config=self.config)
        self._ran: list[str] = []
        self._snapshot = snapshot
        start = time.perf_counter()
        for item in self.items:
            self._run_item(item, model, ctx, report, None)
        report.total_seconds = time.perf_counter() - start
        report.output = summarize(model)
        report.sections.update(ctx.report_sections)
        return report

    # -- internals --------------------------------------------------------------------------
    def _run_item(self, item: PipelineItem, model, ctx, report, iteration) -> bool:
        if isinstance(item, FixedPoint):
            return self._run_fixpoint(item, model, ctx, report)
        return self._run_pass(item, model, ctx, report, iteration)

    def _run_fixpoint(self, group: FixedPoint, model, ctx, report) -> bool:
        changed_any = False
        for i in range(group.max_iterations):
            if self._budget_spent():
                return changed_any
            changed_now = []
            for item in group.items:
                if self._run_item(item, model, ctx, report, i + 1):
                    changed_now.append(item.name)
            if not changed_now:
                return changed_any
            changed_any = True
        names = ",".join(group.pass_names())
        message = (f"fixpoint({names}) did not converge in {group.max_iterations} iterations;"
                   f" still changing: {', '.join(changed_now)}")
        repro = self._write_reproducer(group)
        raise ConvergenceError(message + (f"; reproducer: {repro}" if repro else ""))

    def _budget_spent(self) -> bool:
        return self.max_pass_runs is not None and len(self._ran) >= self.max_pass_runs

    def _run_pass(self, p: Pass, model, ctx, report, iteration) -> bool:
        if self._budget_spent():
            return False
        nodes_before = _count_nodes(model)
        for inst in self.instruments:
            inst.before_pass(p, model)
        t0 = time.perf_counter()
        try:
            result = p.run(model, ctx)
            if not isinstance(result, PassResult):
                raise TypeError(f"run() returned {type(result).__name__}, not PassResult")
        except Exception as e:
            self._fail(f"pass {p.name!r} failed: {type(e).__name__}: {e}", p, e)
        seconds = time.perf_counter() - t0
        if p.kind is PassKind.ANALYSIS and result.changed:
            self._fail(f"analysis pass {p.name!r} reported a change to the model", p, None)
        if result.changed:
            ctx.analyses.invalidate(p.preserves)
        if self.verify_each:
            problems = irlib.check(model)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                self._fail(f"IR is invalid after pass {p.name!r}: {problems[0]}{more}", p, None)
        record = PassRecord(p.name, seconds, nodes_before, _count_nodes(model), result.changed,
                            dict(result.stats), iteration)
        report.passes.append(record)
        self._ran.append(p.name)
        log.info("%s: %.3fs, nodes %d -> %d%s", p.name, seconds, record.nodes_before,
                 record.nodes_after, " (changed)" if result.changed else "")
        for inst in self.instruments:
            try:
                inst.after_pass(p, model, record)
            except Exception as e:  # an instrument's verdict on this pass (e.g. numerics)
                self._ran.pop()
                self._fail(f"after pass {p.name!r}: {e}", p, e)
        return result.changed

    def _fail(self, message: str, p: Pass, cause: BaseException | None):
        before = ", ".join(self._ran[-8:]) if self._ran else "none"
        if len(self._ran) > 8:
            before = f"... {before}"
        repro = self._write_reproducer(p)
        msg = f"{message} (passes run before it: {before})"
        if repro:
            msg += f"; reproducer: {repro}"
        for inst in self.instruments:
            inst.on_failure(p, msg)
        raise PassFailure(msg, p.name, self._ran, repro, cause) from cause

    def _write_reproducer(self, p: Pass) -> str | None:
        if not self.reproducer_dir:
            return None
        try:
            os.makedirs(self.reproducer_dir, exist_ok=True)
            target = os.path.join(self.reproducer_dir, "input.onnx")
            if self.input_path:
                shutil.copyfile(self.input_path, target)
            elif self._snapshot is not None:
                irlib.io.save_proto(self._snapshot, target)
            with open(os.path.join(self.reproducer_dir, "pipeline.txt"), "w") as f:
                f.write(self.pipeline_text + "\n")
            with open(os.path.join(self.reproducer_dir, "README.txt"), "w") as f:
                f.write(
                    f"Pass {p.name!r} failed. Replay with:\n"
                    f"  irc compile {target} --passes '{self.pipeline_text}' -o /tmp/replay.onnx\n")
            return self.reproducer_dir
        except OSError as e:
            log.warning("could not write the reproducer to %s: %s", self.reproducer_dir, e)
            return None


def run_passes(model: Model, pipeline: str | Sequence[PipelineItem], **kwargs) -> CompileReport:
    """Shorthand for ``PassManager(pipeline, **kwargs).run(model)``."""
    return PassManager(pipeline, **kwargs).run(model)
