"""Export the model zoo: real architectures from PyTorch with seeded random weights, as ONNX.

The zoo is what the optimizer benchmark (``tools/bench_optimize.py``) and the zoo tests
(``pytest -m zoo``) run on. Every model is built from its definition, never downloaded:
torchvision architectures with ``weights=None`` and transformers models from a default config
(``BertConfig()``, ``GPT2Config()``), with ``torch.manual_seed(seed)`` before each build, so two
exports with the same seed and versions give the same weights.

    pip install -e ".[zoo]"                     # torch, torchvision, transformers (pinned)
    python tools/export_zoo.py                  # all models into zoo/
    python tools/export_zoo.py --only resnet50,bert_base --out /tmp/zoo

For each model NAME it writes ``NAME.onnx`` and ``NAME.npz`` (seeded inputs keyed by input
name: images from a standard normal, token ids uniform over the vocabulary, an attention mask of
ones), usable as ``irc check zoo/NAME.onnx --inputs zoo/NAME.npz``; and it updates
``manifest.json`` (file, inputs, outputs, parameter count, exporter and library versions).

Export settings: batch 1, 224x224 images, sequence length 128 (``--seq-len``), opset 17, static
shapes, the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``; the dynamo exporter,
torch's default, needs onnxscript and runs onnxscript's own optimizer on the graph, which would
leave the optimizers we compare less to do than a typical export gives them). transformers
models use ``attn_implementation="eager"`` (the explicit MatMul/Softmax attention most exported
transformer graphs have). The exporter writes IR version 8; should a later one write an IR
version ONNX Runtime cannot load, the model is lowered to the oldest IR version its opsets allow
(never below what the opsets need).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
import warnings
from typing import Callable

import numpy as np

log = logging.getLogger("export_zoo")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "zoo")
OPSET = 17
#: The highest IR version ONNX Runtime 1.20+ loads (ORT 1.32 refuses IR version 14).
MAX_IR_VERSION = 10
IMAGE = (1, 3, 224, 224)


@dataclasses.dataclass
class Exported:
    """What a builder returns: the module, its example inputs (named, in order) and outputs."""

    module: object
    inputs: dict[str, np.ndarray]
    output_names: list[str]


def _image_input(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"input": rng.standard_normal(IMAGE).astype(np.float32)}


def _torchvision(arch: str) -> Callable[[np.random.Generator, int], Exported]:
    def build(rng: np.random.Generator, seq_len: int) -> Exported:
        import torchvision

        module = getattr(torchvision.models, arch)(weights=None)
        return Exported(module, _image_input(rng), ["logits"])

    return build


def _tuple_outputs(model, names: list[str], count: int):
    """Wrap a transformers model so that it takes positional tensors and returns a tuple."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            out = self.model(**dict(zip(names, args)), return_dict=False)
            return tuple(out[:count])

    return Wrapper()


def _bert(rng: np.random.Generator, seq_len: int) -> Exported:
    import transformers

    config = transformers.BertConfig(attn_implementation="eager")
    model = transformers.BertModel(config)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = {
        "input_ids": rng.integers(0, config.vocab_size, (1, seq_len), dtype=np.int64),
        "attention_mask": np.ones((1, seq_len), np.int64),
        "token_type_ids": np.zeros((1, seq_len), np.int64),
    }
    return Exported(_tuple_outputs(model, names, 2), inputs,
                    ["last_hidden_state", "pooler_output"])


def _gpt2(rng: np.random.Generator, seq_len: int) -> Exported:
    import transformers

    config = transformers.GPT2Config(attn_implementation="eager", use_cache=False)
    model = transformers.GPT2LMHeadModel(config)
    # With an attention mask: without one, transformers looks for packed sequences in the
    # position ids with aten::diff, which the exporter cannot write.
    inputs = {"input_ids": rng.integers(0, config.vocab_size, (1, seq_len), dtype=np.int64),
              "attention_mask": np.ones((1, seq_len), np.int64)}
    return Exported(_tuple_outputs(model, list(inputs), 1), inputs, ["logits"])


#: name -> builder. The names are the file names in the zoo.
MODELS: dict[str, Callable[[np.random.Generator, int], Exported]] = {
    "resnet50": _torchvision("resnet50"),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "vit_b_16": _torchvision("vit_b_16"),
    "bert_base": _bert,
    "gpt2": _gpt2,
}


def lowest_ir_version(opsets: dict[str, int]) -> int:
    """The oldest IR version that supports the default-domain opset ``opsets[""]``."""
    from onnx import helper

    needed = 3
    want = opsets.get("", opsets.get("ai.onnx", 1))
    for _release, ir, opset, *_ in helper.VERSION_TABLE:
        if opset >= want:
            return max(needed, ir)
    return helper.VERSION_TABLE[-1][1]


def fix_ir_version(proto) -> int:
    """Lower ``proto.ir_version`` to what ORT loads when the exporter wrote a newer one."""
    if proto.ir_version <= MAX_IR_VERSION:
        return proto.ir_version
    opsets = {o.domain: o.version for o in proto.opset_import}
    target = max(lowest_ir_version(opsets), min(proto.ir_version, MAX_IR_VERSION))
    if target > MAX_IR_VERSION:
        raise RuntimeError(f"opset {opsets} needs IR version {target}, newer than ORT loads")
    log.info("lowering IR version %d -> %d", proto.ir_version, target)
    proto.ir_version = target
    return target


def export_one(name: str, out_dir: str, seed: int, seq_len: int) -> dict:
    """Export model ``name`` into ``out_dir``; return its manifest entry."""
    import onnx
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    exported = MODELS[name](rng, seq_len)
    module = exported.module.eval()
    params = sum(p.numel() for p in module.parameters())
    args = tuple(torch.from_numpy(a) for a in exported.inputs.values())
    path = os.path.join(out_dir, f"{name}.onnx")
    tmp = path + ".export.tmp"
    start = time.perf_counter()
    # Autograd stays on: under no_grad, nn.MultiheadAttention (ViT) takes its fused fast path,
    # aten::_native_multi_head_attention, which the exporter cannot write.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and trace notes
        torch.onnx.export(module, args, tmp, input_names=list(exported.inputs),
                          output_names=exported.output_names, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    seconds = time.perf_counter() - start
    proto = onnx.load(tmp)
    os.remove(tmp)
    ir_written = proto.ir_version
    fix_ir_version(proto)
    onnx.checker.check_model(proto)
    # Save atomically: a benchmark never sees half a model.
    onnx.save(proto, tmp)
    os.replace(tmp, path)
    npz = os.path.join(out_dir, f"{name}.npz")
    np.savez(npz + ".tmp.npz", **exported.inputs)
    os.replace(npz + ".tmp.npz", npz)
    log.info("%s: %d nodes, %.1f M parameters, exported in %.1f s", name, len(proto.graph.node),
             params / 1e6, seconds)
    return {
        "file": os.path.basename(path),
        "inputs_file": os.path.basename(npz),
        "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in exported.inputs.items()},
        "outputs": exported.output_names,
        "parameters": int(params),
        "nodes": len(proto.graph.node),
        "opset": OPSET,
        "ir_version": proto.ir_version,
        "ir_version_written": ir_written,
        "seed": seed,
        "seq_len": seq_len if name in ("bert_base", "gpt2") else None,
        "export_seconds": round(seconds, 2),
    }


def versions() -> dict[str, str]:
    import onnx
    import torch

    out = {"torch": torch.__version__, "onnx": onnx.__version__}
    for mod in ("torchvision", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: zoo/)")
    parser.add_argument("--only", default="", help="comma-separated model names: "
                        + ", ".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length of BERT/GPT-2")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="export_zoo: %(message)s", stream=sys.stderr)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    manifest = {"models": {}}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    manifest["exporter"] = "torch.onnx.export(dynamo=False) (TorchScript)"
    manifest["versions"] = versions()
    for name in names:
        manifest["models"][name] = export_one(name, args.out, args.seed, args.seq_len)
        with open(manifest_path + ".tmp", "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        os.replace(manifest_path + ".tmp", manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
