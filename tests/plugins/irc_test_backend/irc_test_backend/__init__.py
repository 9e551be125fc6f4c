"""A backend plugin for irc's tests: ``onnx-reference`` runs models with ``onnx.reference``."""

from irc_test_backend.backend import OnnxReferenceBackend

__all__ = ["OnnxReferenceBackend"]
