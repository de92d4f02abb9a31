"""Export a checkpoint for serving: Paddle static graph, ONNX, tokenizer files and ``manifest.json``.

The manifest is the contract with everything downstream (builder, clients, benchmarks): tensor
names, dtypes and shapes are read back from the written graphs, never assumed. Layout::

    EXPORT_DIR/
      float32.json, float32.pdiparams   Paddle 3 (PIR) static graph, for Paddle Inference
      model.onnx                        ONNX (paddle2onnx), input/output names set deliberately
      vocab.txt, tokenizer_config.json  tokenizer files
      label.txt                         label names, one per line, in logit order
      reference.json                    the reference distribution on dev data (modeling/reference.py)
      manifest.json                     see :func:`build_manifest`
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritoncls.common.files import write_text
from tritoncls.common.metrics import override_thresholds
from tritoncls.common.onnx import onnx_io
from tritoncls.common.versions import versions
from tritoncls.errors import ModelError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling import ernie as modeling
from tritoncls.modeling.dynamic import encode, pad_batch, predict_logits
from tritoncls.modeling.reference import compute_reference, default_reference_data, reference_data_file
from tritoncls.runtime import Manifest, OnnxGraph, PaddleGraph, PaddleRunner, TaskSpec, TensorSpec, TokenizerSpec
from tritoncls.runtime.contract import (
    INPUT_NAMES,
    LABEL_FILE,
    LOGITS,
    MANIFEST_FILE,
    ONNX_FILE,
    PADDLE_MODEL_FILE,
    PADDLE_PARAMS_FILE,
    PADDLE_PREFIX,
    TOKENIZER_FILES,
)
from tritoncls.runtime.metrics import REFERENCE_FILE

log = logging.getLogger(__name__)

ONNX_OPSET = 14
REFERENCE_MAX_SEQ_LENGTH = 128  # PaddleNLP's export default, for checkpoints trained elsewhere
_SAMPLE_TEXTS = ("a short text", "一个中文的例子", "x" * 300)


@dataclass
class ExportConfig:
    checkpoint: str = "./checkpoint"
    output: str = "./export"
    max_seq_length: int | None = None  # default: the checkpoint's training max_seq_length
    force: bool = True  # the reference overwrites; kept for parity
    threshold: float | None = None  # multi-label: one threshold for every label instead of the checkpoint's
    thresholds_file: str | None = None  # multi-label: label<TAB>threshold lines instead of the checkpoint's
    reference_data: str | None = None  # dev data for the reference distribution (default: the training's dev.txt)
    no_reference: bool = False  # write no reference distribution


def _wrapped(model):
    """A layer with named positional inputs, so the static graph and ONNX get deliberate names."""
    import paddle

    class _Classifier(paddle.nn.Layer):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, token_type_ids):
            return self.inner(input_ids, token_type_ids=token_type_ids)

    layer = _Classifier(model)
    layer.eval()
    return layer


def _save_static(model, out: Path) -> None:
    import paddle

    spec = [paddle.static.InputSpec([None, None], "int64", name) for name in INPUT_NAMES]
    paddle.jit.save(_wrapped(model), str(out / PADDLE_PREFIX), input_spec=spec)


def _save_onnx(out: Path) -> None:
    import onnx
    import paddle2onnx

    path = out / ONNX_FILE
    paddle2onnx.export(
        str(out / f"{PADDLE_PREFIX}.json"), str(out / f"{PADDLE_PREFIX}.pdiparams"), str(path),
        opset_version=ONNX_OPSET, enable_onnx_checker=True,
    )
    proto = onnx.load(str(path))
    _name_onnx_io(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _name_onnx_io(proto) -> None:
    """Rename the single output to ``logits`` and the dynamic dims to ``batch``/``sequence``."""
    graph = proto.graph
    if len(graph.output) != 1:
        raise ModelError(f"expected one ONNX output, found {[o.name for o in graph.output]}")
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = [LOGITS if name == old else name for name in node.output]
    graph.output[0].name = LOGITS
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                dim.dim_param = "batch" if i == 0 else "sequence"


def _paddle_graph(out: Path, num_labels: int) -> PaddleGraph:
    """Names read back from the Paddle static graph; output shape confirmed by one run."""
    from paddle import inference

    config = inference.Config(str(out / PADDLE_MODEL_FILE), str(out / PADDLE_PARAMS_FILE))
    config.disable_gpu()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    inputs, outputs = predictor.get_input_names(), predictor.get_output_names()
    logits = PaddleRunner(out / PADDLE_MODEL_FILE, out / PADDLE_PARAMS_FILE, inputs, outputs[0]).run(
        np.array([[1, 2]], dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    if logits.shape != (1, num_labels):
        raise ModelError(f"static graph output has shape {logits.shape}, expected (1, {num_labels})")
    return PaddleGraph(inputs=tuple(TensorSpec(n, "int64", (-1, -1)) for n in inputs),
                       outputs=tuple(TensorSpec(n, str(logits.dtype), (-1, num_labels)) for n in outputs),
                       model_file=PADDLE_MODEL_FILE, params_file=PADDLE_PARAMS_FILE)


def _tokenizer_spec(tokenizer, directory: Path) -> TokenizerSpec:
    files = {name.split(".")[0]: name for name in TOKENIZER_FILES if (directory / name).is_file()}
    return TokenizerSpec(
        files=files, do_lower_case=bool(getattr(tokenizer, "do_lower_case", True)),
        special_tokens={k: getattr(tokenizer, k) for k in ("pad_token", "cls_token", "sep_token", "unk_token", "mask_token")},
        pad_token_id=int(tokenizer.pad_token_id),
        pad_token_type_id=int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        kind="wordpiece", class_name=type(tokenizer).__name__, rules=getattr(tokenizer, "rules", "paddlenlp"),
    )


def build_manifest(model, tokenizer, labels: list[str], max_seq_length: int, out: Path, source: Path,
                   paddle: PaddleGraph, parity: dict[str, float], task: TaskSpec | None = None) -> Manifest:
    onnx = onnx_io(out / ONNX_FILE)
    return Manifest(task=task or TaskSpec(),
        labels=tuple(labels), max_seq_length=max_seq_length, tokenizer=_tokenizer_spec(tokenizer, out),
        architecture=modeling.model_architecture_summary(model),
        onnx=OnnxGraph(onnx.inputs, onnx.outputs, file=ONNX_FILE, opset=ONNX_OPSET),
        paddle=paddle, label_file=LABEL_FILE, precision="fp32",
        source_checkpoint=str(source), export_check=parity, versions=versions(),
    )


def _parity(model, tokenizer, out: Path, max_len: int, paddle: PaddleGraph) -> dict[str, float]:
    """Max |logit| difference of Paddle Inference and ONNX Runtime vs the dynamic graph on samples."""
    from tritoncls.runtime import OnnxRunner

    enc = encode(tokenizer, list(_SAMPLE_TEXTS), max_len)
    ids, types = pad_batch(enc, list(range(len(enc))), int(tokenizer.pad_token_id))
    reference = predict_logits(model, enc, batch_size=len(enc))
    onnx_logits = OnnxRunner(out / ONNX_FILE, INPUT_NAMES, LOGITS).run(ids, types)
    paddle_logits = PaddleRunner(out / paddle.model_file, out / paddle.params_file, paddle.input_names,
                                 paddle.output_name).run(ids, types)
    diffs = {"onnxruntime_max_abs_diff": float(np.abs(onnx_logits - reference).max()),
             "paddle_inference_max_abs_diff": float(np.abs(paddle_logits - reference).max())}
    worst = max(diffs.values())
    if worst > 1e-3:
        raise ModelError(f"exported graphs disagree with the dynamic graph (max |diff| {worst:.2e}); export aborted.")
    return diffs


def export(config: ExportConfig) -> Path:
    """Write the static graph, ONNX, tokenizer, labels and manifest into ``config.output``."""
    import paddle

    paddle.set_device("cpu")
    source = ckpt.resolve_checkpoint(config.checkpoint)
    model = modeling.load_checkpoint_model(source)
    tokenizer = modeling.load_tokenizer(source)
    labels = _checkpoint_labels(source, int(model.config.num_labels))
    task = override_thresholds(ckpt.saved_task(source, labels), labels, config.threshold, config.thresholds_file)
    max_len = config.max_seq_length or _trained_max_len(source)
    positions = int(model.config.max_position_embeddings)
    if max_len > positions:
        raise ModelError(f"{source}: max_seq_length {max_len} exceeds the model's {positions} positions "
                         f"(max_position_embeddings in config.json); pass --max_seq_length {positions} or less.")

    reference_data = _reference_data(config, source)

    def fill(out: Path) -> None:
        _save_static(model, out)
        _save_onnx(out)
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        ckpt.write_labels(out, labels)
        paddle = _paddle_graph(out, len(labels))
        parity = _parity(model, tokenizer, out, max_len, paddle)
        manifest = build_manifest(model, tokenizer, labels, max_len, out, source, paddle, parity, task)
        if reference_data is not None:
            write_text(out / REFERENCE_FILE, compute_reference(out, manifest, reference_data).to_json())
            manifest = manifest.replace(reference_file=REFERENCE_FILE)
        write_text(out / MANIFEST_FILE, manifest.to_json())

    target = Path(config.output)
    if target.exists() and not (target / MANIFEST_FILE).is_file() and any(target.iterdir()):
        raise ModelError(
            f"{target}: exists, is not empty and holds no {MANIFEST_FILE}; refusing to replace it. "
            f"Choose another --output or empty the directory."
        )
    ckpt.write_checkpoint(target, fill)
    log.info("Exported %s (%s) to %s", source, task.task, target)
    return target


def _reference_data(config: ExportConfig, source: Path) -> Path | None:
    """The data the reference distribution is computed on: --reference_data, else the training's dev.txt."""
    if config.no_reference:
        return None
    if config.reference_data:
        return reference_data_file(config.reference_data)
    config_path = source / "training_config.json"
    found = default_reference_data(source, ckpt.read_json(config_path)) if config_path.is_file() else None
    if found is None:
        log.warning("%s: its training dev.txt is not found, so the export records no reference distribution "
                    "(the served metrics work, `tritoncls monitor` has nothing to compare with); pass "
                    "--reference_data DEV.txt to record one", source)
    return found


def _checkpoint_labels(source: Path, num_labels: int) -> list[str]:
    labels = ckpt.saved_labels(source)
    if labels is None:
        labels = [str(i) for i in range(num_labels)]
        log.warning("%s has no label.txt: labels exported as class ids 0..%d", source, num_labels - 1)
    if len(labels) != num_labels:
        raise ModelError(f"{source / LABEL_FILE}: {len(labels)} labels, but the model predicts {num_labels}.")
    return labels


def _trained_max_len(source: Path) -> int:
    """The max_seq_length the checkpoint was trained with (its training_config.json must say)."""
    config_path = source / "training_config.json"
    if not config_path.is_file():
        log.warning("%s has no training_config.json (not written by tritoncls train): exporting with the "
                    "reference's max_seq_length %d; pass --max_seq_length to choose", source, REFERENCE_MAX_SEQ_LENGTH)
        return REFERENCE_MAX_SEQ_LENGTH
    value = ckpt.read_json(config_path).get("max_seq_length")
    if not isinstance(value, int):
        raise ModelError(f"{config_path}: field 'max_seq_length' is {value!r}; pass --max_seq_length.")
    return value
