"""The -O levels: which passes each level runs, in what order. One source of truth: ``irc
passes`` and docs/passes.md derive a pass's level from these pipelines.

- ``-O0``: nothing (import, verify, export).
- ``-O1``: cleanup, ``infer-shapes,fixpoint(fold-constants,eliminate-identity,cse,dce),infer-shapes``.
- ``-O2``: ``-O1`` plus fusions that keep the model portable standard ONNX.
- ``-O3``: ``-O2`` plus the target backend's own fusions (contrib ops), chosen by ``target``.

Why the cleanup runs in that order:

1. ``infer-shapes`` first: ``fold-constants`` turns ``Shape``/``Size`` of static shapes into
   constants, and the no-op rules of ``eliminate-identity`` (``x + 0``, ``Expand``, ``Reshape``,
   ``Slice``) only fire when they can prove the output type equals the input's. Both need types.
2. ``fold-constants`` opens the loop: it turns constant subtrees (the ``Shape -> Gather -> Concat``
   arithmetic of PyTorch exports) into initializers, which is what the identity rules match
   (``Mul(x, Cast(1))`` only becomes ``x * 1`` once the Cast is folded) and what ``cse`` compares.
3. ``eliminate-identity`` next: bypassing Identity/no-op Cast/Reshape makes two readers of ``x``
   and of ``Identity(x)`` read the same value, so ``cse`` can merge them; and it can expose new
   all-constant nodes for the next round of folding.
4. ``cse`` after both, so that it sees their results; it merges nodes and equal initializers
   (folding often makes several equal shape constants).
5. ``dce`` last: it removes what the three left behind (the producers of folded values, dead
   duplicate constants), so each round ends clean and the next starts on a smaller graph.

The group repeats until no pass changes anything; it terminates because every change removes a
node, turns a node into a constant, or merges two constants. A last ``infer-shapes`` records the
shapes that became static after folding (a ``Reshape`` by a now-constant shape), for the fusions
of ``-O2`` and for the exported ``value_info``. ``-O2`` and ``-O3`` start from the same cleanup.
"""

from __future__ import annotations

from passes.pipeline import PipelineItem, parse_pipeline, without_passes

__all__ = ["LEVELS", "level_pipeline", "level_of_pass"]

_CLEANUP = "infer-shapes,fixpoint(fold-constants,eliminate-identity,cse,dce),infer-shapes"

#: Pipeline text per level. Targets may append their own passes at -O3 (TARGET_O3).
#: Portable fusions (standard ONNX only). Groups are fixpoints so that a fusion fires whatever
#: order the ops come in (Conv -> Add -> BN, BN -> Mul ...).
_FUSIONS = (
    "fold-scalar-chains,fuse-pad-into-conv"
    ",fixpoint(fuse-conv-bn,fuse-conv-add,fuse-conv-mul)"
    ",fixpoint(fuse-matmul-add,fuse-gemm-bn,fold-transpose-into-gemm)"
    # fuse-horizontal (sibling MatMul/Gemm/Conv -> one wide op + Split) is not in the levels: on
    # ONNX Runtime's CPU kernels it does not pay for itself (QKV of BERT-base: 0 to 5% slower at
    # 1 thread, up to 29% at 4; see passes/transforms/fuse_horizontal.py). Opt in with --passes.
)
#: Recognition of decomposed standard ops (LayerNormalization, RMSNormalization, Gelu, Softmax,
#: Attention), each only where the model's opset has the op. They run after the cleanup, whose
#: shapes, folded scalar constants and removed Identity nodes they read (after identity
#: elimination the last node of a Gelu writes the graph output itself; the fused node takes over
#: its name). They run before the vertical fusions, which merge Mul/Add-by-constant nodes into
#: their neighbours (fold-scalar-chains, bias Adds into Gemm/Conv): in a decomposition those
#: nodes belong to the pattern (LayerNorm's beta, Gelu's 0.5, the attention scale), so the whole
#: pattern is seen before anything takes a piece of it. Among themselves: layer-norm before
#: rms-norm (a LayerNorm's tail is an RMSNorm of x - mean: the longer pattern first), softmax
#: before attention (attention matches the Softmax op that fuse-softmax may have just made).
_RECOGNITION = "fuse-layer-norm,fuse-rms-norm,fuse-gelu,fuse-softmax,fuse-attention"
#: Memory: an execution order with a lower peak, then the arena plan (the report's ``memory``
#: section). Models with unbound symbolic dims are reported as skipped, not failed.
_MEMORY = "reorder-for-memory{skip-dynamic=true},memory-plan{skip-dynamic=true}"

LEVELS: dict[int, str] = {
    0: "",
    1: _CLEANUP,
    2: f"{_CLEANUP},{_RECOGNITION},{_FUSIONS},{_CLEANUP},{_MEMORY}",
    3: f"{_CLEANUP},{_RECOGNITION},{_FUSIONS},{_CLEANUP},{_MEMORY}",
}

TARGET_O3: dict[str, str] = {
    # ONNX Runtime contrib ops (com.microsoft) and its NCHWc layout (com.microsoft.nchwc): the
    # element-wise recognitions first (QuickGelu, GELU + bias, residual + LayerNorm), then the
    # activation fusions into Gemm/Conv, then the NCHWc rewrite, which takes FusedConv too.
    "ort": "ort-fuse-quick-gelu,ort-fuse-bias-gelu,ort-fuse-skip-layer-norm"
           ",ort-fuse-gemm-activation,ort-fuse-conv-activation,ort-nchwc,dce",
}


def level_pipeline_text(level: int, target: str | None = None) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown optimization level {level} (choose 0-3)")
    text = LEVELS[level]
    if level >= 3 and target in TARGET_O3:
        text = ",".join(t for t in (text, TARGET_O3[target]) if t)
    return text


def level_pipeline(level: int, target: str | None = None,
                   disable: tuple[str, ...] = ()) -> list[PipelineItem]:
    """The parsed pipeline of ``level`` without the passes named in ``disable``."""
    return without_passes(parse_pipeline(level_pipeline_text(level, target)), disable)


def level_of_pass(name: str) -> int | None:
    """The lowest level whose default pipeline (any target) runs pass ``name``."""
    import re

    for level in sorted(LEVELS):
        texts = [LEVELS[level]] + ([*TARGET_O3.values()] if level >= 3 else [])
        for text in texts:
            if re.search(rf"(^|[,(]){re.escape(name)}($|[,){{])", text.replace(" ", "")):
                return level
    return None
