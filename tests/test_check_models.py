"""Every real model irc ships or tests against stays numerically aligned at -O2.

examples/tiny_cnn.onnx and each light_* model of ONNX's backend test data (the installed onnx
package's ``backend/test/data/light``) are compiled at -O2, run on ONNX Runtime (optimizations
off) and compared with the original under the same runtime, on seeded random inputs.
tools/alignment_report.py writes the same figures into docs/conformance.md.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import onnx
import pytest

from irc.check import check_model

ROOT = Path(__file__).resolve().parents[1]
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def light_models() -> list[str]:
    """light_*.onnx files (onnx >= 1.15 layout), or light_*/model.onnx folders (older)."""
    found = glob.glob(os.path.join(LIGHT, "light_*.onnx")) + \
        glob.glob(os.path.join(LIGHT, "light_*", "model.onnx"))
    return sorted(found)


MODELS = [str(ROOT / "examples" / "tiny_cnn.onnx")] + light_models()


def test_the_light_models_are_there():
    assert len(light_models()) >= 9, f"expected ONNX's light models under {LIGHT}"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: os.path.basename(os.path.dirname(p))
                         if p.endswith("model.onnx") else os.path.basename(p)[:-5])
def test_O2_is_aligned(path):
    result = check_model(path, level=2, seed=0)
    bad = [c.summary() for c in result.outputs if not c.aligned]
    assert result.aligned, f"{os.path.basename(path)}: {bad}; first divergence: " \
        f"{result.first_divergence.summary() if result.first_divergence else None}"
    assert result.outputs and all(c.cosine > 0.9999 for c in result.outputs)
