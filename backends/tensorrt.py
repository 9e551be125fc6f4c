"""The TensorRT backend: a registered entry that reports honestly whether it could run here.

Lowering an IR model to a TensorRT engine is a later issue: until it lands, ``compile`` raises a
one-line :class:`~backends.base.BackendError` even where TensorRT and a CUDA device are present.
Nothing heavy is imported: availability is probed with ``importlib.util.find_spec`` and the
NVIDIA driver's device files.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from typing import Any, Mapping

from backends.base import Backend, BackendError, Executable
from irlib import Model

__all__ = ["TensorRTBackend", "cuda_device_present"]


def cuda_device_present() -> bool:
    """True when the NVIDIA driver exposes at least one GPU (no CUDA library is loaded)."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or bool(glob.glob("/proc/driver/nvidia/gpus/*"))


class TensorRTBackend(Backend):
    """NVIDIA TensorRT (engine lowering not implemented yet)."""

    name = "tensorrt"
    description = ("NVIDIA TensorRT engines; availability probe only: the lowering to an engine"
                   " is a later issue and compile refuses until then")
    options_help = {
        "fp16": "allow fp16 kernels",
        "workspace_mb": "builder workspace in MiB",
    }

    def is_available(self) -> tuple[bool, str]:
        reasons = []
        if not cuda_device_present():
            reasons.append("no CUDA device")
        if importlib.util.find_spec("tensorrt") is None:
            reasons.append("tensorrt not installed")
        if reasons:
            return False, " / ".join(reasons)
        return False, "irc's TensorRT lowering is not implemented yet"

    def version(self) -> str:
        if importlib.util.find_spec("tensorrt") is None:
            return ""
        try:
            from importlib.metadata import PackageNotFoundError, version

            for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-libs"):
                try:
                    return version(dist)
                except PackageNotFoundError:
                    continue
        except ImportError:  # pragma: no cover - importlib.metadata is stdlib
            pass
        return ""

    def compile(self, model: Model, options: Mapping[str, Any] | None = None) -> Executable:
        self.check_options(options)
        self.require_available()
        raise BackendError("tensorrt: lowering to a TensorRT engine is not implemented yet")
