"""The ``irc`` command line: a thin layer over :mod:`irlib` and :mod:`irc.compile`.

    irc inspect MODEL.onnx [--print | --json]
    irc compile MODEL.onnx -O0 -o OUT.onnx
    irc --version

Every subcommand runs inside one error boundary (:class:`_IrcGroup`): a bad model, a missing file
or an unreadable protobuf becomes ``irc: error: <one line>`` on stderr and exit status 1; usage
errors are click's (status 2). An unexpected exception (a bug in irc) is reported as
``irc: internal error: ...`` with status 70, and ``--debug`` shows its traceback. Output files are
written atomically by :func:`irlib.save`, so a failure never leaves a half-written file.

To add a subcommand, write a function decorated with ``@main.command()``; to add an option to
``compile``, add a click option and pass it on to :func:`irc.compile.compile_model`.
"""

from __future__ import annotations

import json
import logging
import sys

import click
import onnx
from google.protobuf.message import DecodeError

import irlib
from irc import __version__
from irc.compile import DEFAULT_LEVEL, LEVELS, compile_model
from irc.summary import ModelSummary, summarize
from passes import ConvergenceError, PassError, PassFailure

__all__ = ["main"]

#: Exit status for a failure caused by the input (bad model, missing file ...).
EXIT_ERROR = 1
#: Exit status for bad usage (as click's own usage errors).
EXIT_USAGE = 2
#: Exit status for a bug in irc itself (EX_SOFTWARE).
EXIT_INTERNAL = 70

#: Exceptions that mean "the input is bad", reported as one line without a traceback.
_USER_ERRORS = (
    irlib.IRError, OSError, DecodeError, onnx.checker.ValidationError,
    onnx.shape_inference.InferenceError, PassFailure, ConvergenceError,
)


class IrcFailure(click.ClickException):
    """An error reported as ``irc: <kind>: <one line>``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, kind: str = "error"):
        super().__init__(message)
        self.exit_code = exit_code
        self.kind = kind

    def show(self, file=None) -> None:
        click.echo(f"irc: {self.kind}: {self.format_message()}", err=True)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` squeezed onto one line (OSError: ``path: reason``)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    text = " ".join(text.split())
    return text or type(exc).__name__


class _IrcGroup(click.Group):
    """The error boundary around every subcommand."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except PassError as e:  # a bad pipeline, pass name or option: a usage error
            if ctx.meta.get("irc.debug"):
                raise
            raise IrcFailure(one_line(e), EXIT_USAGE, "usage error") from None
        except _USER_ERRORS as e:
            if ctx.meta.get("irc.debug"):
                raise
            raise IrcFailure(one_line(e)) from None
        except Exception as e:  # a bug in irc: say so, without a traceback unless --debug
            if ctx.meta.get("irc.debug"):
                raise
            raise IrcFailure(f"{type(e).__name__}: {one_line(e)} (run with --debug for a traceback)",
                             EXIT_INTERNAL, "internal error") from None


@click.group(cls=_IrcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="irc",
                      message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="Log progress (-v) or details (-vv) to stderr.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """irc: an inference graph compiler for ONNX models."""
    ctx.meta["irc.debug"] = debug
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="irc: %(name)s: %(message)s", stream=sys.stderr, force=True,
        )
    else:
        logging.basicConfig(level=logging.WARNING, format="irc: warning: %(message)s",
                            stream=sys.stderr, force=True)


def _load(path: str) -> irlib.Model:
    model = irlib.load(path)
    irlib.verify(model)
    return model


# -- inspect --------------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--print", "print_graph", is_flag=True, help="Print the whole graph, one node a line.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(model: str, print_graph: bool, as_json: bool) -> None:
    """Summarize MODEL: versions, inputs/outputs, op histogram, parameters."""
    if print_graph and as_json:
        raise click.UsageError("--print and --json cannot be combined")
    m = _load(model)
    if print_graph:
        click.echo(irlib.format_model(m), nl=False)
        return
    summary = summarize(m)
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
        return
    _show_summary(model, summary)


def _show_summary(path: str, s: ModelSummary) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    opsets = ", ".join(f"{d} {v}" for d, v in s.opsets.items())
    console.print(f"[bold]{escape(path)}[/bold]")
    console.print(f"  producer     {escape(s.producer or '-')}")
    console.print(f"  IR version   {s.ir_version}")
    console.print(f"  opsets       {escape(opsets or '-')}")
    sub = f" ({s.subgraph_nodes} of them in subgraphs)" if s.subgraph_nodes else \
        " (no subgraphs)"
    console.print(f"  nodes        {s.nodes}{sub}")
    console.print(f"  parameters   {s.parameters:,} ({_human_bytes(s.parameter_bytes)})")
    io = Table(title=None, box=None, pad_edge=False, show_header=True, header_style="bold")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind, values in (("input", s.inputs), ("output", s.outputs)):
        for v in values:
            shape = "?" if v.shape is None else \
                "[" + ",".join("?" if d is None else str(d) for d in v.shape) + "]"
            io.add_row(kind, escape(v.name), escape(v.dtype or "?"), escape(shape))
    console.print(io)
    hist = Table(box=None, pad_edge=False, header_style="bold")
    hist.add_column("op")
    hist.add_column("count", justify="right")
    for op, n in s.op_histogram.items():
        hist.add_row(escape(op), str(n))
    console.print(hist)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # not reached


# -- compile --------------------------------------------------------------------------------
@main.command(name="compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the compiled model (written atomically).")
@click.option("-O", "--opt-level", "level", type=click.Choice([str(lv) for lv in LEVELS]),
              default=str(DEFAULT_LEVEL), show_default=True,
              help="Optimization level: 0 none, 1 cleanup, 2 + portable fusions, 3 + target fusions.")
@click.option("--passes", "pipeline", metavar="PIPELINE",
              help="Run this pipeline instead of the level's, e.g. 'infer-shapes,fixpoint(dce,cse)'.")
@click.option("--disable", multiple=True, metavar="PASS", help="Drop PASS from the pipeline (repeatable).")
@click.option("--print-after", multiple=True, metavar="PASS|all|changed",
              help="Print the IR after PASS, after every pass, or after passes that changed it.")
@click.option("--verify-each/--no-verify", default=True, show_default=True,
              help="Run the IR verifier after every pass.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the compile report as JSON to this file.")
@click.option("--dump-dir", type=click.Path(file_okay=False),
              help="Write the IR text after every pass into numbered files in this folder.")
@click.option("--reproducer-dir", type=click.Path(file_okay=False),
              help="Where to write a reproducer if a pass fails (default: a new temporary folder).")
@click.option("--backend", metavar="NAME",
              help="Lower the optimized model with this backend and write its artifact to OUTPUT"
                   " (see `irc backends`); -O3 then fuses for it.")
@click.option("--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="A backend option, e.g. threads=2 or graph_optimization_level=all (repeatable).")
@click.option("--target", metavar="BACKEND", help="The backend -O3 fuses for, when no --backend.")
@click.option("--verify-numerics", is_flag=True,
              help="After every pass that changed the model, run it under ONNX Runtime and stop"
                   " at the first pass whose outputs diverge from the original's.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE",
              help="Value of a symbolic input dimension for --verify-numerics (default 1).")
@click.option("--rtol", type=float, help="Relative tolerance for --verify-numerics.")
@click.option("--atol", type=float, help="Absolute tolerance for --verify-numerics.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIM[,NAME=DIM...]",
              help="Fix symbolic input dimensions in the compiled model, e.g. N=1 (repeatable).")
@click.option("--plan-out", type=click.Path(dir_okay=False),
              help="Write the memory plan (arena offsets, JSON) of the compiled model here.")
@click.option("-q", "--quiet", is_flag=True, help="Print no report table.")
def compile_command(model: str, output: str, level: str, pipeline: str | None,
                    disable: tuple[str, ...], print_after: tuple[str, ...], verify_each: bool,
                    report_path: str | None, dump_dir: str | None, reproducer_dir: str | None,
                    backend: str | None, backend_options: tuple[str, ...], target: str | None,
                    verify_numerics: bool, dims: tuple[str, ...], rtol: float | None,
                    atol: float | None, shapes: tuple[str, ...], plan_out: str | None,
                    quiet: bool) -> None:
    """Compile MODEL with a pass pipeline and write the result to OUTPUT."""
    from passes import DumpDir, PrintAfter

    m = irlib.load(model)  # compile_model verifies it before any pass runs
    bindings = {}
    if shapes:
        from passes.memory import bind_input_shapes, parse_shapes

        bindings = parse_shapes(",".join(shapes))
        bind_input_shapes(m, bindings)
    instruments = []
    if verify_numerics:
        from backends.numerics import NumericsCheck
        from irc.check import parse_dims, random_inputs

        inputs = random_inputs(m, parse_dims(dims))
        instruments.append(NumericsCheck(irlib.to_onnx(m), inputs, rtol=rtol, atol=atol))
    if backend is not None:
        from backends import get_backend
        from irc.cmd_check import parse_backend_options

        get_backend(backend).require_available()  # fail before optimizing, not after
        options = parse_backend_options(backend_options)
        target = target or backend
    elif backend_options:
        raise click.UsageError("--backend-option needs --backend")
    if print_after:
        instruments.append(PrintAfter(print_after, lambda text: click.echo(text, nl=False)))
    if dump_dir:
        instruments.append(DumpDir(dump_dir))
    if reproducer_dir is None:
        import os
        import tempfile

        reproducer_dir = os.path.join(tempfile.gettempdir(), f"irc-reproducer-{os.getpid()}")
    result = compile_model(
        m, int(level), passes=pipeline, disable=disable, verify=True, verify_each=verify_each,
        instruments=instruments, target=target, reproducer_dir=reproducer_dir,
        input_path=model,
    )
    plan_json = _plan_json(result.model, bindings) if plan_out else None  # may fail: before writing
    if backend is not None:
        from backends import build_artifact

        result.report.sections["backend"] = build_artifact(result.model, backend, output, options)
    else:
        irlib.save(result.model, output)
    if plan_out:
        irlib.atomic_write(plan_out, plan_json)
    report = result.report.to_json()
    if report_path:
        irlib.atomic_write(report_path, (json.dumps(report, indent=2) + "\n").encode())
    if not quiet and result.report.passes:
        _show_report(result.report)
    label = f"-O{result.level}" if result.level is not None else "--passes"
    click.echo(f"irc: wrote {output} ({label}: {result.nodes_before} -> "
               f"{result.nodes_after} nodes)")


def _plan_json(model: irlib.Model, bindings: dict) -> bytes:
    """The plan the pipeline's memory-plan pass made, or a fresh one of the final model."""
    from passes.memory import plan_memory

    plan = model.meta.get("memory_plan")
    if plan is None:
        plan = plan_memory(model, shapes=bindings)
    return (json.dumps(plan.to_json(), indent=1) + "\n").encode()


def _show_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, just in (("pass", "left"), ("round", "right"), ("seconds", "right"),
                      ("nodes", "right"), ("changed", "left")):
        table.add_column(col, justify=just)
    for r in report.passes:
        table.add_row(r.name, "" if r.iteration is None else str(r.iteration),
                      f"{r.seconds:.4f}", f"{r.nodes_before} -> {r.nodes_after}",
                      "yes" if r.changed else "")
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    console.print(f"total {report.total_seconds:.3f} s, nodes {report.input['nodes']} -> "
                  f"{report.output['nodes']}")


# -- passes ---------------------------------------------------------------------------------
@main.command(name="passes")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def passes_command(as_json: bool) -> None:
    """List the registered passes: name, kind, level, description."""
    from irc.catalogue import pass_catalogue

    rows = pass_catalogue()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("name", "kind", "level", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], "-" if r["level"] is None else f"-O{r['level']}",
                      r["description"])
    Console(highlight=False, soft_wrap=True).print(table)


from irc.cmd_check import register as _register_check  # noqa: E402
from irc.cmd_plan import register as _register_plan  # noqa: E402

_register_check(main)
_register_plan(main)

if __name__ == "__main__":  # python -m irc.cli
    main()
