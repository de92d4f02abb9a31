"""Export a checkpoint for serving: Paddle static graph, ONNX, tokenizer files and ``manifest.json``.

The manifest is the contract with everything downstream (builder, clients, benchmarks): tensor
names, dtypes and shapes are read back from the written graphs, never assumed. Layout::

    EXPORT_DIR/
      float32.json, float32.pdiparams   Paddle 3 (PIR) static graph, for Paddle Inference
      model.onnx                        ONNX (paddle2onnx), input/output names set deliberately
      vocab.txt, tokenizer_config.json  tokenizer files
      label.txt                         label names, one per line, in logit order
      manifest.json                     see :func:`build_manifest`
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import ModelError
from tritoncls.training import checkpoint as ckpt
from tritoncls.training import data, modeling
from tritoncls.training.inference import encode, predict_logits

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "tritoncls-export"
MANIFEST_VERSION = 1
INPUT_NAMES = ("input_ids", "token_type_ids")
OUTPUT_NAME = "logits"
PADDLE_PREFIX = "float32"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 14
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16"}
_SAMPLE_TEXTS = ("a short text", "一个中文的例子", "x" * 300)


@dataclass
class ExportConfig:
    checkpoint: str = "./checkpoint"
    output: str = "./export"
    max_seq_length: int | None = None  # default: the checkpoint's training max_seq_length
    force: bool = True  # the reference overwrites; kept for parity


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
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
    graph.output[0].name = OUTPUT_NAME
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                dim.dim_param = "batch" if i == 0 else "sequence"


def onnx_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Names, dtypes and shapes (-1 for dynamic) of an ONNX graph's inputs and outputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> dict[str, Any]:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return {"name": value.name, "dtype": _ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": shape}

    initializers = {init.name for init in graph.initializer}
    return {
        "inputs": [describe(v) for v in graph.input if v.name not in initializers],
        "outputs": [describe(v) for v in graph.output],
    }


def paddle_predictor(out: Path, threads: int = 1):
    from paddle import inference

    config = inference.Config(str(out / f"{PADDLE_PREFIX}.json"), str(out / f"{PADDLE_PREFIX}.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    return inference.create_predictor(config)


def run_paddle(predictor, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
    names = predictor.get_input_names()
    for name, array in zip(names, (input_ids, token_type_ids)):
        predictor.get_input_handle(name).copy_from_cpu(array)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def paddle_io(out: Path, num_labels: int) -> dict[str, list[dict[str, Any]]]:
    """Names read back from the Paddle static graph; output shape confirmed by one run."""
    predictor = paddle_predictor(out)
    logits = run_paddle(predictor, np.array([[1, 2]], dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    if logits.shape != (1, num_labels):
        raise ModelError(f"static graph output has shape {logits.shape}, expected (1, {num_labels})")
    return {
        "inputs": [{"name": n, "dtype": "int64", "shape": [-1, -1]} for n in predictor.get_input_names()],
        "outputs": [{"name": n, "dtype": str(logits.dtype), "shape": [-1, num_labels]} for n in predictor.get_output_names()],
    }


def _tokenizer_section(tokenizer, directory: Path) -> dict[str, Any]:
    files = {name.split(".")[0]: name for name in TOKENIZER_FILES if (directory / name).is_file()}
    return {
        "kind": "wordpiece",
        "class": type(tokenizer).__name__,
        "files": files,
        "do_lower_case": bool(getattr(tokenizer, "do_lower_case", True)),
        "special_tokens": {k: getattr(tokenizer, k) for k in ("pad_token", "cls_token", "sep_token", "unk_token", "mask_token")},
        "pad_token_id": int(tokenizer.pad_token_id),
        "pad_token_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
    }


def build_manifest(model, tokenizer, labels: list[str], max_seq_length: int, out: Path,
                   source: Path, parity: dict[str, float]) -> dict[str, Any]:
    from tritoncls.training.train import versions

    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "task": "sequence_classification",
        "labels": labels,
        "label_file": "label.txt",
        "max_seq_length": max_seq_length,
        "precision": "fp32",
        "tokenizer": _tokenizer_section(tokenizer, out),
        "architecture": modeling.model_architecture_summary(model),
        "onnx": {"file": ONNX_FILE, "opset": ONNX_OPSET, **onnx_io(out / ONNX_FILE)},
        "paddle": {"model_file": f"{PADDLE_PREFIX}.json", "params_file": f"{PADDLE_PREFIX}.pdiparams",
                   **paddle_io(out, len(labels))},
        "source_checkpoint": str(source),
        "export_check": parity,
        "versions": versions(),
    }


def _parity(model, tokenizer, out: Path, max_len: int) -> dict[str, float]:
    """Max |logit| difference of Paddle Inference and ONNX Runtime vs the dynamic graph on samples."""
    import onnxruntime as ort

    enc = encode(tokenizer, list(_SAMPLE_TEXTS), max_len)
    from tritoncls.training.inference import pad_batch

    ids, types = pad_batch(enc, list(range(len(enc))), int(tokenizer.pad_token_id))
    reference = predict_logits(model, enc, batch_size=len(enc))
    session = ort.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
    onnx_logits = session.run([OUTPUT_NAME], {"input_ids": ids, "token_type_ids": types})[0]
    paddle_logits = run_paddle(paddle_predictor(out), ids, types)
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
    max_len = config.max_seq_length or _trained_max_len(source)

    def fill(out: Path) -> None:
        _save_static(model, out)
        _save_onnx(out)
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        (out / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        parity = _parity(model, tokenizer, out, max_len)
        manifest = build_manifest(model, tokenizer, labels, max_len, out, source, parity)
        ckpt.write_json(out / MANIFEST_NAME, manifest)

    target = Path(config.output)
    if target.exists() and not (target / MANIFEST_NAME).is_file() and any(target.iterdir()):
        raise ModelError(
            f"{target}: exists, is not empty and holds no {MANIFEST_NAME}; refusing to replace it. "
            f"Choose another --output or empty the directory."
        )
    ckpt.write_checkpoint(target, fill)
    log.info("Exported %s to %s", source, target)
    return target


def _checkpoint_labels(source: Path, num_labels: int) -> list[str]:
    path = source / "label.txt"
    if path.is_file():
        labels = data.read_labels(path)
    else:
        labels = [str(i) for i in range(num_labels)]
        log.warning("%s has no label.txt: labels exported as class ids 0..%d", source, num_labels - 1)
    if len(labels) != num_labels:
        raise ModelError(f"{path}: {len(labels)} labels, but the model predicts {num_labels}.")
    return labels


def _trained_max_len(source: Path) -> int:
    config_path = source / "training_config.json"
    if config_path.is_file():
        return int(ckpt.read_json(config_path).get("max_seq_length", 128))
    return 128


def load_manifest(export_dir: str | Path) -> dict[str, Any]:
    """Read and check an export's manifest."""
    path = Path(export_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{path}: not found. Create the export with `tritoncls export --checkpoint CKPT --output {export_dir}`.")
    manifest = ckpt.read_json(path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path}: field 'format' is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}.")
    if manifest.get("format_version", 0) > MANIFEST_VERSION:
        raise ModelError(f"{path}: format_version {manifest['format_version']} is newer than this tritoncls supports ({MANIFEST_VERSION}); upgrade tritoncls.")
    return manifest
