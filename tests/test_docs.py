"""Generated docs stay in step with the code they describe."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pass_catalogue_is_current():
    """docs/passes.md is generated from the registry: adding a pass means regenerating it
    (python tools/gen_pass_docs.py)."""
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_pass_docs.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_built_in_pass_is_in_the_catalogue():
    from passes import all_passes

    text = (ROOT / "docs" / "passes.md").read_text()
    built_in = [name for name, cls in all_passes().items() if cls.__module__.startswith("passes.")]
    assert "dce" in built_in  # (tests register passes of their own: those are not catalogued)
    missing = [name for name in built_in if f"### {name}\n" not in text]
    assert not missing
