"""passes: the pass manager, the pass API, rewrite patterns and the built-in passes.

    from passes import PassManager, level_pipeline
    report = PassManager(level_pipeline(2)).run(model)
    print(report.to_json())

Writing a pass: see docs/writing-a-pass.md. The catalogue: ``irc passes`` and docs/passes.md.
"""

from passes.analysis import Analysis, AnalysisManager, OpHistogram, UseCounts
from passes.base import Pass, PassKind, PassResult, function_pass
from passes.constants import get_const, get_scalar, is_const
from passes.context import PassContext
from passes.errors import ConvergenceError, PassError, PassFailure, PipelineSyntaxError
from passes.instruments import DumpDir, Instrument, PrintAfter
from passes.levels import LEVELS, level_of_pass, level_pipeline, level_pipeline_text
from passes.manager import PassManager, run_passes
from passes.pipeline import FixedPoint, format_pipeline, make_pass, parse_pipeline
from passes.registry import ENTRY_POINT_GROUP, all_passes, get_pass, register_pass
from passes.report import CompileReport, PassRecord, summarize
from passes.rewrite import (
    Const, PatternPass, PatternRewriter, RewriteDriver, RewritePattern, RewriteRule, RuleSet, Var,
    apply_patterns,
)

__all__ = [
    "Analysis", "AnalysisManager", "CompileReport", "Const", "ConvergenceError", "DumpDir",
    "ENTRY_POINT_GROUP", "FixedPoint", "Instrument", "LEVELS", "OpHistogram", "Pass",
    "PassContext", "PassError", "PassFailure", "PassKind", "PassManager", "PassRecord",
    "PassResult", "PatternPass", "PatternRewriter", "PipelineSyntaxError", "PrintAfter",
    "RewriteDriver", "RewritePattern", "RewriteRule", "RuleSet", "UseCounts", "Var",
    "all_passes", "apply_patterns", "format_pipeline", "function_pass", "get_const", "get_pass",
    "get_scalar", "is_const", "level_of_pass", "level_pipeline", "level_pipeline_text",
    "make_pass", "parse_pipeline", "register_pass", "run_passes", "summarize",
]
