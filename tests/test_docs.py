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


def test_every_registered_pass_is_in_the_catalogue():
    from passes import all_passes

    text = (ROOT / "docs" / "passes.md").read_text()
    missing = [name for name in all_passes() if f"### {name}\n" not in text]
    assert not missing
