"""``irc plan``: where every intermediate tensor of a model lives in one arena.

    irc plan MODEL.onnx [--json] [-O N] [--reorder] [--shape N=1,...] [--plan-out plan.json]

The model is planned as given, in its stored node order, unless ``-O`` or ``--reorder`` is
passed. The figures: the naive total (every tensor in its own buffer), the lower bound for the
order, the planned arena (peak), peak / lower bound, naive / peak, and the in-place count.
"""

from __future__ import annotations

import json

import click

import irlib
from passes.memory import STRATEGIES

__all__ = ["register", "plan_command"]


@click.command(name="plan")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-O", "--opt-level", "level", type=click.Choice(["0", "1", "2", "3"]), default=None,
              help="Optimize at this level before planning (default: plan the model as stored).")
@click.option("--reorder", is_flag=True, help="Reorder independent nodes to lower the peak first.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIM[,NAME=DIM...]",
              help="Bind symbolic dimensions (repeatable or comma-separated), e.g. N=1.")
@click.option("--strategy", type=click.Choice(["auto", *STRATEGIES]),
              default="auto", show_default=True, help="Offset strategy (auto keeps the best).")
@click.option("--alignment", type=click.IntRange(1), default=64, show_default=True,
              help="Byte alignment of every offset.")
@click.option("--plan-out", type=click.Path(dir_okay=False), help="Write the plan as JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def plan_command(model: str, level: str | None, reorder: bool, shapes: tuple[str, ...],
                 strategy: str, alignment: int, plan_out: str | None, as_json: bool) -> None:
    """Plan the memory of MODEL's intermediate tensors in one arena."""
    from passes.memory import MemoryPlanError, plan_model

    m = irlib.load(model)
    irlib.verify(m)
    bindings = ",".join(shapes)
    try:
        plan, summary = plan_model(m, level=None if level is None else int(level), reorder=reorder,
                                   shapes=bindings or None, strategy=strategy, alignment=alignment)
    except MemoryPlanError as e:
        from irc.cli import IrcFailure, one_line

        raise IrcFailure(one_line(e)) from None
    if plan_out:
        irlib.atomic_write(plan_out, (json.dumps(plan.to_json(), indent=1) + "\n").encode())
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    mib = 1 / (1 << 20)
    rows = [
        ("naive (one buffer per tensor)", f"{summary['naive_bytes'] * mib:,.3f} MiB"),
        ("lower bound for this order", f"{summary['lower_bound_bytes'] * mib:,.3f} MiB"),
        ("planned arena (peak)", f"{summary['peak_bytes'] * mib:,.3f} MiB"),
        ("peak / lower bound", f"{summary['peak_over_lower_bound']:.4f}"),
        ("naive / peak", f"{summary['naive_over_peak']:.2f}x"),
        ("in-place reuses", str(summary["inplace_count"])),
        ("strategy", f"{summary['strategy']} (alignment {summary['alignment']})"),
        ("tensors planned", str(summary["tensors"])),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
    if plan_out:
        click.echo(f"irc: wrote {plan_out}")


def register(group: click.Group) -> None:
    group.add_command(plan_command)
