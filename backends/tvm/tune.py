"""Bounded MetaSchedule tuning whose records later compiles reuse.

    info = tune(mod, target, "tuning_db/", trials=512)   # {"tasks": 23, "trials": 512, ...}
    mod = optimize(mod, target, "tuning_db/")             # build with the best schedules found

The module is first put through the same :func:`~backends.tvm.build.optimize` pipeline a build
runs (so the tuned functions are exactly the fused functions the build will look up), its
PrimFuncs become MetaSchedule tasks, and ``tune_tasks`` measures at most ``trials`` candidates
(at most ``per_task`` for one task) on this machine. Records go to MetaSchedule's JSON database
in ``db_dir`` (``database_workload.json``, ``database_tuning_record.json``); compiling again
with ``tuning_db=DIR`` and no ``tune`` applies them without tuning. Records are per workload
and target: a changed model re-tunes only the functions that changed. Only tasks with a
reduction (convolution, matmul, pool, norm, softmax) are tuned; data movement keeps its default
schedule.

Needs xgboost, psutil and cloudpickle (``pip install -e ".[tune]"``). Tuning is never run by
the test suite.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
import sys
import time

from backends.base import BackendError
from backends.tvm._env import import_tvm

__all__ = ["tune", "TUNE_REQUIREMENTS"]

log = logging.getLogger(__name__)

#: Seconds one candidate may take to build / to run. MetaSchedule's default (30 s) counts the
#: start of its worker processes, which import TVM (and PyTorch, when installed): on a loaded
#: 2-core machine every build timed out.
BUILD_TIMEOUT = 300
RUN_TIMEOUT = 120

#: Tasks worth tuning: the ones with a reduction (convolutions, matmuls, pools, norms). Pure
#: data movement (reshape, transpose, concat ...) gains little and some of its candidates build
#: pathologically slowly; those functions keep their default schedule.
_WORTH_TUNING = re.compile(r"conv|matmul|dense|pool|mean|sum|max|min|softmax|norm|prod")

#: Modules MetaSchedule needs beyond TVM itself (its cost model and process pool).
TUNE_REQUIREMENTS = ("xgboost", "psutil", "cloudpickle")


def _require_tune_extras() -> None:
    missing = [m for m in TUNE_REQUIREMENTS if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendError(f"tvm: tuning needs {', '.join(missing)} (pip install -e \".[tune]\")")


class _Progress:
    """Trial counts per task, shown as a rich progress bar on stderr or logged."""

    def __init__(self, names: list[str], total: int, show: bool):
        self.names = names
        self.total = total
        self.done = 0
        self.seen: set[int] = set()
        self.bar = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
                TimeElapsedColumn

            self.bar = Progress(TextColumn("tuning {task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task(f"0/{len(names)} tasks", total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()

    def measured(self, task_id: int, count: int) -> None:
        self.done += count
        self.seen.add(task_id)
        name = self.names[task_id] if task_id < len(self.names) else str(task_id)
        desc = f"{len(self.seen)}/{len(self.names)} tasks ({name})"
        if self.bar is not None:
            self.bar.update(self.task, completed=min(self.done, self.total), description=desc)
        else:
            log.info("tvm: tuned %d/%d trials, %s", self.done, self.total, desc)


def _callback(progress: _Progress):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class ProgressCallback(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
                  runner_results):
            for b in builder_results:
                if b.error_msg:
                    log.debug("tvm: a candidate of task %d failed to build: %s", int(task_id),
                              " ".join(str(b.error_msg).split())[-500:])
                    break
            progress.measured(int(task_id), len(runner_results))

    return ProgressCallback()


def tune(mod, target, db_dir: str, trials: int, *, per_task: int | None = None,
         progress: bool | str = "auto") -> dict:
    """Tune ``mod`` (as lowered, before :func:`optimize`) for ``target`` with at most ``trials``
    measured candidates; records go to ``db_dir``. Returns ``{"tasks", "trials", "seconds"}``."""
    import_tvm()
    _require_tune_extras()
    from tvm.s_tir import meta_schedule as ms

    from backends.tvm.build import open_database, optimize

    t0 = time.perf_counter()
    fused = optimize(mod, target)
    extracted = ms.relax_integration.extract_tasks(fused, target)
    if not extracted:
        raise BackendError("tvm: nothing to tune (the module has no TIR functions)")
    worth = [t for t in extracted if _WORTH_TUNING.search(t.task_name)]
    if worth:
        log.info("tvm: tuning %d of %d tasks (skipping data movement: %s)", len(worth),
                 len(extracted), ", ".join(t.task_name for t in extracted if t not in worth))
        extracted = worth
    threads = int(target.attrs.get("num-cores", 0) or 0) or "physical"
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        extracted, work_dir=db_dir, num_threads=threads)
    per_task = per_task or max(16, math.ceil(trials / len(extracted)))
    names = [t.task_name for t in extracted]
    show = sys.stderr.isatty() if progress == "auto" else bool(progress)
    log.info("tvm: tuning %d tasks, %d trials (at most %d per task) into %s", len(extracted),
             trials, per_task, db_dir)
    database = open_database(db_dir)
    workers = threads if isinstance(threads, int) else None
    builder = ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT, max_workers=workers)
    runner = ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT)
    with _Progress(names, trials, show) as bar:
        callbacks = ms.measure_callback.MeasureCallback.create("default") + [_callback(bar)]
        try:
            ms.tune.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=db_dir,
                max_trials_global=trials, max_trials_per_task=per_task,
                num_trials_per_iter=min(64, per_task, trials), builder=builder, runner=runner,
                database=database, measure_callbacks=callbacks)
        except Exception as e:
            raise BackendError(f"tvm: tuning failed: {' '.join(str(e).split())[:300]}") from e
    seconds = time.perf_counter() - t0
    log.info("tvm: tuned %d tasks in %.1f s", len(extracted), seconds)
    return {"tasks": len(extracted), "trials": bar.done, "seconds": seconds}
