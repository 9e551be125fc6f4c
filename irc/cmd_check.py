"""The ``irc check`` and ``irc backends`` commands (the logic lives in :mod:`irc.check`).

    irc check MODEL.onnx                      # -O2 on ORT vs ORT with optimizations off
    irc check MODEL.onnx --bisect --json      # and the first pass after which outputs diverge
    irc check MODEL.onnx OTHER.onnx           # two given models
    irc backends                              # registered backends and their availability

Exit status of ``check``: 0 aligned, 1 misaligned (or the compiled model fails to run),
2 bad usage or input (missing file, bad --inputs, a model the reference cannot run).
"""

from __future__ import annotations

import json

import click

__all__ = ["register", "check_command", "backends_command"]

EXIT_ALIGNED = 0
EXIT_MISALIGNED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> None:
    from irc.cli import IrcFailure, one_line  # late: irc.cli imports this module at its end

    raise IrcFailure(one_line(Exception(message)), code)


def parse_backend_options(items) -> dict:
    """``KEY=VALUE`` pairs; VALUE is read as JSON when it parses (numbers, lists, dicts)."""
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--backend-option {item!r}: expected KEY=VALUE", EXIT_USAGE)
        try:
            opts[key] = json.loads(value)
        except ValueError:
            opts[key] = value
    return opts


@click.command(name="check")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("other", required=False, type=click.Path(dir_okay=False))
@click.option("-O", "--opt-level", "level", type=click.Choice(["0", "1", "2", "3"]), default=None,
              help="Optimization level to compile MODEL at [default: 2].")
@click.option("--passes", "pipeline", default=None, help="An explicit pass pipeline instead of -O.")
@click.option("--backend", default="ort", show_default=True, help="Backend that runs the candidate.")
@click.option("--backend-option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="A backend option (repeatable); VALUE is JSON or a string.")
@click.option("--inputs", "inputs", default=None, type=click.Path(),
              help="Input data: a .npz, a folder of NAME.npy, or a folder of input_N.pb.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=VALUE",
              help="Value of a symbolic dimension for random inputs (default 1).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random inputs.")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default by dtype).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default by dtype).")
@click.option("--bisect", "do_bisect", is_flag=True,
              help="On a mismatch, find the first pass after which the outputs diverge.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_command(model, other, level, pipeline, backend, backend_options, inputs, dims, seed,
                  rtol, atol, do_bisect, as_json):
    """Compile MODEL and check its outputs against the original run by ONNX Runtime with all
    optimizations off; with OTHER, compare the two models instead."""
    from google.protobuf.message import DecodeError

    import irlib
    from irc import check
    from passes import PassError

    if other is not None and (level is not None or pipeline is not None or do_bisect):
        _fail("-O, --passes and --bisect apply to one model compiled by irc, not to MODEL OTHER",
              EXIT_USAGE)
    if level is not None and pipeline is not None:
        _fail("-O and --passes cannot be combined", EXIT_USAGE)
    for name, tol in (("--rtol", rtol), ("--atol", atol)):
        if tol is not None and not tol >= 0:
            _fail(f"{name} must be a non-negative number, not {tol}", EXIT_USAGE)
    opts = parse_backend_options(backend_options)
    try:
        dim_values = check.parse_dims(dims)
        common = dict(backend=backend, backend_options=opts, inputs=inputs, dims=dim_values,
                      seed=seed, rtol=rtol, atol=atol)
        if other is None:
            result = check.check_model(model, level=int(level or 2), pipeline=pipeline,
                                       bisect_passes=do_bisect, **common)
        else:
            result = check.check_models(model, other, **common)
    except check.CandidateError as e:
        _fail(str(e), EXIT_MISALIGNED)
    except (PassError, irlib.IRError, OSError, DecodeError) as e:  # InputError, BackendError too
        from irc.cli import one_line

        _fail(one_line(e), EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _show(model, other, result)
    raise SystemExit(EXIT_ALIGNED if result.aligned else EXIT_MISALIGNED)


def _show(model: str, other: str | None, result) -> None:
    what = f"{other} vs {model}" if other else f"{model} ({result.pipeline or 'no passes'})"
    click.echo(f"irc check: {what} on {result.backend} vs ONNX Runtime (optimizations off)")
    rows = [("output", "dtype", "shape", "max abs", "max rel", "mismatches", "cosine", "")]
    for c in result.outputs:
        j = c.as_json()
        rows.append((c.name, c.dtype, "[" + ",".join(map(str, c.shape)) + "]",
                     _num(j["max_abs_error"]), _num(j["max_rel_error"]), str(c.mismatches),
                     _num(j["cosine"], ".6f"), "ok" if c.aligned else "MISMATCH"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  " + "  ".join(s.ljust(w) for s, w in zip(r, widths)).rstrip())
    for c in result.outputs:
        if c.note:
            click.echo(f"  {c.name}: {c.note}")
    bad = [c for c in result.outputs if not c.aligned]
    if not bad:
        click.echo(f"aligned: {len(result.outputs)} output(s) within tolerance")
        return
    click.echo(f"MISALIGNED: {len(bad)} of {len(result.outputs)} output(s) differ "
               f"(rtol {bad[0].rtol:g}, atol {bad[0].atol:g} for {bad[0].name})")
    d = result.first_divergence
    if d is not None:
        click.echo(f"first divergence: {d.node}")
        if d.name:
            click.echo(f"  node name: {d.name}")
        click.echo(f"  op {d.op}, inputs: {', '.join('%' + i for i in d.inputs if i)}")
        click.echo(f"  error: {d.comparison.summary()}")
        if d.rule:
            replaced = f" (replaced {', '.join(d.replaced)})" if d.replaced else ""
            click.echo(f"  created by rule {d.rule!r}{replaced}")
    else:
        click.echo("first divergence: no same-named intermediate tensor differs under ORT")
    b = result.bisect
    if b is not None:
        if b.pass_name is None:
            click.echo(f"bisect: outputs stay aligned after all {b.runs} pass runs")
        else:
            click.echo(f"bisect: first diverging pass: {b.pass_name} (pass run {b.index} of"
                       f" {b.runs})")
            for t in b.added:
                click.echo(f"  + {t}")
            for t in b.removed:
                click.echo(f"  - {t}")
            for t in b.changed:
                click.echo(f"  ~ {t}")


def _num(x, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return format(x, spec)


@click.command(name="backends")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def backends_command(as_json: bool) -> None:
    """List the registered backends, whether each can run here, and why not."""
    from backends import all_backends

    rows = []
    for name, b in all_backends().items():
        ok, reason = b.is_available()
        rows.append({"name": name, "available": ok, "reason": reason, "version": b.version(),
                     "description": b.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "available" if r["available"] else f"unavailable: {r['reason']}"
        version = f" {r['version']}" if r["version"] else ""
        click.echo(f"{r['name']}{version}: {state}")
        click.echo(f"    {r['description']}")


def register(group: click.Group) -> None:
    """Attach ``check`` and ``backends`` to the ``irc`` command group."""
    group.add_command(check_command)
    group.add_command(backends_command)
