"""``PassContext``: what a running pass may read besides the model.

Configuration is explicit (no environment variables): the target backend, the opset policy and
any key a pass documents. Analyses come through ``analysis()`` so they are cached and invalidated
by the pass manager, and passes that produce a report section (memory plan, quantization) add it
with ``add_report_section``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from irlib import Model
from passes.analysis import AnalysisManager

__all__ = ["PassContext"]


@dataclasses.dataclass
class PassContext:
    model: Model
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    analyses: AnalysisManager = None  # type: ignore[assignment]
    report_sections: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.analyses is None:
            self.analyses = AnalysisManager(self.model)

    def analysis(self, analysis_cls):
        """The (cached) result of ``analysis_cls`` on the model."""
        return self.analyses.get(analysis_cls)

    def add_report_section(self, key: str, data: Any) -> None:
        """Put ``data`` under ``key`` in the compile report (e.g. ``"memory"``)."""
        self.report_sections[key] = data

    @property
    def target(self) -> str | None:
        """The backend the model is compiled for (``"ort"``, ``"tvm"`` ...), if any."""
        return self.config.get("target")
