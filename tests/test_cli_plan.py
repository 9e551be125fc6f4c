"""`irc plan` and `irc compile --shape/--plan-out`: the memory figures and the plan JSON contract."""

from __future__ import annotations

import json
import pathlib

from click.testing import CliRunner

from irc.cli import main

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.onnx"
SUMMARY_KEYS = {"naive_bytes", "lower_bound_bytes", "peak_bytes", "peak_over_lower_bound",
                "naive_over_peak", "inplace_count"}


def run(*args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args])


def check_plan_contract(plan: dict) -> None:
    assert plan["alignment"] == 64
    assert set(plan) >= {"alignment", "arena_bytes", "order", "tensors"}
    n = len(plan["order"])
    for t in plan["tensors"]:
        assert set(t) >= {"name", "offset", "size", "first", "last"}
        assert t["offset"] % 64 == 0 and t["offset"] + t["size"] <= plan["arena_bytes"]
        assert 0 <= t["first"] <= t["last"] <= n - 1
    # Tensors in separate buffers that are live at the same time never overlap.
    roots = [t for t in plan["tensors"] if "alias_of" not in t and "inplace_of" not in t]
    for i, a in enumerate(roots):
        for b in roots[i + 1:]:
            if a["first"] <= b["last"] and b["first"] <= a["last"]:
                assert a["offset"] + a["size"] <= b["offset"] or b["offset"] + b["size"] <= a["offset"]


def test_plan_prints_the_figures():
    result = run("plan", EXAMPLE, "--shape", "N=1")
    assert result.exit_code == 0, result.stderr
    for label in ("naive", "lower bound", "planned arena", "peak / lower bound", "naive / peak",
                  "in-place"):
        assert label in result.stdout


def test_plan_json_and_plan_out(tmp_path):
    out = tmp_path / "plan.json"
    result = run("plan", EXAMPLE, "--shape", "N=2", "--json", "--plan-out", out)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["lower_bound_bytes"] <= summary["peak_bytes"] <= summary["naive_bytes"]
    plan = json.loads(out.read_text())
    check_plan_contract(plan)
    assert plan["arena_bytes"] == summary["peak_bytes"]
    assert plan["order"][0] == "stem.conv"  # the stored order: no -O, no --reorder


def test_plan_refuses_unbound_symbolic_dims():
    result = run("plan", EXAMPLE)
    assert result.exit_code == 1
    assert "dim 0 is the symbol 'N'" in result.stderr and "--shape N=1" in result.stderr


def test_plan_after_optimization_is_smaller():
    plain = json.loads(run("plan", EXAMPLE, "--shape", "N=1", "--json").stdout)
    opt = json.loads(run("plan", EXAMPLE, "--shape", "N=1", "--json", "-O2", "--reorder").stdout)
    assert opt["naive_bytes"] < plain["naive_bytes"]  # fused BN/Identity outputs are gone
    assert opt["peak_bytes"] <= plain["peak_bytes"]


def test_compile_shape_and_plan_out(tmp_path):
    out, rep, plan = tmp_path / "o.onnx", tmp_path / "r.json", tmp_path / "p.json"
    result = run("compile", EXAMPLE, "-O2", "--shape", "N=1", "-o", out, "--report", rep,
                 "--plan-out", plan, "-q")
    assert result.exit_code == 0, result.stderr
    memory = json.loads(rep.read_text())["memory"]
    assert {"naive_bytes", "lower_bound_bytes", "peak_bytes", "inplace_count"} <= set(memory)
    check_plan_contract(json.loads(plan.read_text()))
    inspect = json.loads(run("inspect", out, "--json").stdout)
    assert inspect["inputs"][0]["shape"] == [1, 3, 32, 32]  # --shape fixed the batch


def test_compile_plan_out_with_dynamic_dims_fails_before_writing(tmp_path):
    out = tmp_path / "o.onnx"
    result = run("compile", EXAMPLE, "-o", out, "--plan-out", tmp_path / "p.json")
    assert result.exit_code == 1 and "symbol 'N'" in result.stderr
    assert not out.exists()


def test_o2_report_says_when_memory_planning_was_skipped(tmp_path):
    rep = tmp_path / "r.json"
    result = run("compile", EXAMPLE, "-O2", "-o", tmp_path / "o.onnx", "--report", rep, "-q")
    assert result.exit_code == 0 and result.stderr == ""
    assert "symbol 'N'" in json.loads(rep.read_text())["memory"]["skipped"]
