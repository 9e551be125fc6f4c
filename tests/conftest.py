"""Fixtures shared by the whole suite. Plain helpers (building ONNX models, checking IR models)
live in ``tests/helpers.py``; import them with ``from helpers import make_model, assert_valid``.

``verified`` checks a model when the test hands it over *and again when the test ends*, so a
test that goes on mutating a model after checking it still fails if the model ends up broken::

    def test_fold(verified):
        model = verified(parse_ir(TEXT))    # fails now if the IR is broken
        run_my_pass(model)                  # ... and at teardown if this broke it
"""

from __future__ import annotations

import pytest

from helpers import assert_valid


@pytest.fixture
def verified():
    """A function ``verified(model) -> model``: verify now and again at the end of the test."""
    models = []

    def check(model):
        assert_valid(model)
        models.append(model)
        return model

    yield check
    for model in models:
        assert_valid(model)
