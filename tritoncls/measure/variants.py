"""Exports the benchmark derives: architecture shapes with random weights, INT8 and fused ONNX graphs.

* :func:`shape_export` builds ERNIE 3.0 ``medium``/``mini``/``nano`` from their configurations with
  random weights (speed does not depend on weight values), saves a checkpoint like ``train`` does and
  exports it with ``tritoncls export``. The vocabulary, labels and task (with its thresholds) are the
  trained export's, so the same texts tokenize to the same ids and a multi-label export's shapes are
  multi-label repositories, with the same postprocess to measure.
* :func:`derived_export` copies an export with its ``model.onnx`` replaced (INT8 dynamic or static
  quantization, ORT transformer fusions) and the manifest updated, so the builder and the offline
  predictor use it like any export. Large files are hard-linked where the filesystem allows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tritoncls.common.onnx import CalibrationTexts
from tritoncls.errors import BenchmarkError
from tritoncls.runtime import Manifest
from tritoncls.runtime.contract import MANIFEST_FILE

log = logging.getLogger(__name__)

SHAPES = {"medium": "ernie-3.0-medium-zh", "mini": "ernie-3.0-mini-zh", "nano": "ernie-3.0-nano-zh"}
SHAPE_MAX_SEQ_LENGTH = 128  # the reference application's default
_STAMP = "tritoncls_bench_shape.json"


def shape_export(shape: str, vocab_export: Path, work_dir: Path, max_seq_length: int = SHAPE_MAX_SEQ_LENGTH,
                 seed: int = 0) -> Path:
    """Export of ``shape`` with random weights and ``vocab_export``'s vocabulary, labels and task; reused when up
    to date."""
    from tritoncls.modeling.export import ExportConfig, export

    if shape not in SHAPES:
        raise BenchmarkError(f"--shapes: unknown shape {shape!r}; choose from {', '.join(SHAPES)}.")
    vocab_export = Path(vocab_export)
    manifest = Manifest.load(vocab_export)
    stamp = {"shape": shape, "max_seq_length": max_seq_length, "seed": seed,
             "vocab": _file_fingerprint(vocab_export / manifest.tokenizer.vocab_file),
             "labels": list(manifest.labels)}
    if manifest.task.multi_label:  # multi-class stamps stay as they were, so their cached exports are reused
        stamp["task"] = manifest.task.to_dict()
    out = work_dir / "exports" / shape
    if (out / _STAMP).is_file() and json.loads((out / _STAMP).read_text(encoding="utf-8")) == stamp:
        log.info("reusing the %s shape export in %s", shape, out)
        return out
    checkpoint = work_dir / "checkpoints" / shape
    _random_checkpoint(shape, vocab_export, manifest, checkpoint, max_seq_length, seed)
    # random weights have no dev data to describe: no reference distribution
    export(ExportConfig(checkpoint=str(checkpoint), output=str(out), max_seq_length=max_seq_length, no_reference=True))
    (out / _STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return out


def _random_checkpoint(shape: str, vocab_export: Path, manifest: Manifest, target: Path,
                       max_seq_length: int, seed: int) -> Path:
    """A checkpoint as ``train`` writes it: weights, tokenizer files, label.txt, task.json (the export's task and
    thresholds, which ``export`` carries into the shape's manifest), training_config.json."""
    import paddle

    from tritoncls import modeling
    from tritoncls.modeling import checkpoint as ckpt

    paddle.set_device("cpu")
    paddle.seed(seed)
    tokenizer = modeling.load_tokenizer(vocab_export)
    arch = modeling.named_architecture(SHAPES[shape])
    labels = list(manifest.labels)
    model = modeling.scratch_model(arch, len(labels), len(tokenizer.vocab), int(tokenizer.pad_token_id))
    model.eval()

    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        ckpt.write_labels(tmp, labels)
        if manifest.task.multi_label:  # a checkpoint without task.json is multi-class, as train writes one
            ckpt.write_task(tmp, manifest.task, thresholds_from=f"the export {vocab_export}; the weights are random")
        ckpt.write_json(tmp / "training_config.json", {
            "model_name": SHAPES[shape], "from_scratch": True, "max_seq_length": max_seq_length,
            "num_labels": len(labels), "task": manifest.task.task, "note": "random weights, written by tritoncls bench for speed measurements"})

    return ckpt.write_checkpoint(target, fill)


def _file_fingerprint(path: Path) -> str:
    import hashlib

    return hashlib.sha1(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Derived exports: INT8, fused
# ---------------------------------------------------------------------------------------------


def derived_export(source: Path, target: Path, make_onnx: Callable[[Path, Path], dict[str, Any]],
                   precision: str, variant: str) -> Path:
    """Copy ``source`` to ``target`` with ``model.onnx`` written by ``make_onnx(source_onnx, target_onnx)``.

    ``make_onnx`` returns facts for the manifest's ``variant`` section.
    """
    from tritoncls.common.files import write_text
    from tritoncls.common.onnx import onnx_io

    manifest = Manifest.load(source)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    onnx_name = manifest.onnx.file
    for item in source.iterdir():
        if item.is_file() and item.name not in (onnx_name, MANIFEST_FILE) and not item.name.endswith(".onnx"):
            _link_or_copy(item, target / item.name)
    facts = make_onnx(source / onnx_name, target / onnx_name)
    graph = onnx_io(target / onnx_name)
    derived = manifest.replace(
        precision=precision, onnx=replace(manifest.onnx, inputs=graph.inputs, outputs=graph.outputs),
        variant={"variant": variant, "derived_from": str(source.resolve()), **facts})
    write_text(target / MANIFEST_FILE, derived.to_json())
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def int8_export(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic INT8 quantization (weights int8 per tensor, activations at run time)."""
    from tritoncls.common.onnx import quantized_onnx

    def make(src: Path, dst: Path) -> dict[str, Any]:
        shutil.copy2(quantized_onnx(src.parent), dst)
        return {"quantization": "onnxruntime quantize_dynamic, QInt8 weights, per-tensor"}

    return derived_export(source, target, make, "int8", "int8")


def int8_static_export(source: Path, target: Path, calibration_texts: CalibrationTexts | str | Path) -> Path:
    """ONNX Runtime static INT8 quantization (QDQ, activation ranges calibrated on ``calibration_texts``: a
    :class:`CalibrationTexts`, or a texts file read with its default count), beside :func:`int8_export` so the two
    can be compared on the same export. The manifest's ``variant`` records the settings and the texts."""
    from tritoncls.common.onnx import int8_record, static_quantized_onnx

    calibration = calibration_texts if isinstance(calibration_texts, CalibrationTexts) \
        else CalibrationTexts.read(calibration_texts)

    def make(src: Path, dst: Path) -> dict[str, Any]:
        static_quantized_onnx(src.parent, calibration, dst)
        return {"quantization": int8_record("static", calibration)}

    return derived_export(source, target, make, "int8", "int8-static")


def fused_export(source: Path, target: Path) -> Path:
    """ONNX Runtime transformer fusions (``optimize_model(model_type="bert", opt_level=0)``).

    opt_level 0 runs only the Python fusion passes: higher levels need torch here, and ORT applies its
    own level-99 optimizations when the session loads anyway.
    """
    arch = Manifest.load(source).architecture

    def make(src: Path, dst: Path) -> dict[str, Any]:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(src), model_type="bert", num_heads=int(arch["num_attention_heads"]),
                                   hidden_size=int(arch["hidden_size"]), opt_level=0, use_gpu=False)
        optimized.save_model_to_file(str(dst))
        fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        return {"fusion": "onnxruntime.transformers optimize_model(model_type='bert', opt_level=0)",
                "fused_operators": fused}

    return derived_export(source, target, make, "fp32", "fused")
