"""The offline predictor: classify texts in-process on an export, with no Paddle dynamic graph and
no server (the reference's ``deploy/predictor``).

It tokenizes with HF ``tokenizers`` (same ids as the training tokenizer), sorts texts by length so
each batch is padded only to its own longest text, runs ONNX Runtime or Paddle Inference, and
returns results in input order. The benchmark harness measures this as the in-process baseline.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import ConfigError, ModelError
from tritoncls.training.export import ONNX_FILE, load_manifest, paddle_predictor, run_paddle
from tritoncls.training.inference import softmax

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "paddle_inference")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Encoding:
    """One text's ids, shaped like an HF ``tokenizers`` Encoding for callers that use one."""

    ids: list[int]

    @property
    def type_ids(self) -> list[int]:
        return [0] * len(self.ids)


class FastTokenizer:
    """The export's tokenizer at HF ``tokenizers`` speed, with ids identical to the training
    tokenizer (PaddleNLP's ErnieTokenizer): the same code the Triton tokenizer step runs."""

    def __init__(self, export_dir: str | Path, manifest: dict[str, Any] | None = None) -> None:
        from tritoncls.builder.runtime import WordPieceTokenizer

        export_dir = Path(export_dir)
        manifest = manifest or load_manifest(export_dir)
        spec = manifest["tokenizer"]
        self._inner = WordPieceTokenizer(export_dir / spec["files"]["vocab"], bool(spec["do_lower_case"]),
                                         dict(spec["special_tokens"]), int(manifest["max_seq_length"]))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """[CLS] ... [SEP] ids of each text, truncated to the export's max_seq_length."""
        return self._inner.encode(list(texts))

    def encode_batch(self, texts: Sequence[str]) -> list[Encoding]:
        return [Encoding(ids) for ids in self.encode(texts)]


def fast_tokenizer(export_dir: str | Path, manifest: dict[str, Any] | None = None) -> FastTokenizer:
    return FastTokenizer(export_dir, manifest)


def pad_ids(rows: Sequence[Sequence[int] | Encoding], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack id lists (or encodings) into int64 ``input_ids`` padded to the longest, and zero ``token_type_ids``."""
    rows = [getattr(r, "ids", r) for r in rows]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids, np.zeros_like(ids)


@dataclass
class OfflineConfig:
    model: str
    backend: str = "onnxruntime"
    precision: str = "fp32"
    num_threads: int | None = None
    batch_size: int = 32
    sort_by_length: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        if self.batch_size <= 0:
            raise ConfigError(f"--batch_size must be positive, got {self.batch_size}.")
        if self.precision == "int8" and self.backend != "onnxruntime":
            raise ConfigError("--precision int8 is implemented with ONNX Runtime dynamic quantization; use --backend onnxruntime.")
        if self.precision == "fp16" and self.device != "gpu":
            raise ConfigError("--precision fp16 needs a GPU (--device gpu); on CPU use fp32 or int8.")


def quantize_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic INT8 quantization of ``source`` into ``target`` (weights int8 per tensor,
    activations quantized at run time; CPU). Written aside and renamed, so ``target`` is whole or absent."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.stem}.partial.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # quantize_dynamic logs every tensor (and advice) through the root logger
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=False)
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    return target


def quantized_onnx(export_dir: Path) -> Path:
    """INT8 dynamic quantization of the export's ONNX (see :func:`quantize_int8`).

    Cached beside the export as ``model.int8.onnx``; rebuilt when the FP32 model is newer.
    """
    source = export_dir / ONNX_FILE
    target = export_dir / "model.int8.onnx"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    return quantize_int8(source, target)


class ExportedModel:
    """Logits from an export's ONNX (ONNX Runtime) or static graph (Paddle Inference)."""

    def __init__(self, export_dir: str | Path, backend: str = "onnxruntime", precision: str = "fp32",
                 num_threads: int | None = None, device: str = "cpu") -> None:
        self.export_dir = Path(export_dir)
        self.manifest = load_manifest(self.export_dir)
        self.backend = backend
        threads = num_threads or os.cpu_count() or 1
        if backend == "onnxruntime":
            self._session = self._ort_session(precision, threads, device)
            self._input_names = [i["name"] for i in self.manifest["onnx"]["inputs"]]
            self._output_name = self.manifest["onnx"]["outputs"][0]["name"]
        else:
            self._predictor = paddle_predictor(self.export_dir, threads)

    def _ort_session(self, precision: str, threads: int, device: str):
        import onnxruntime as ort

        path = self.export_dir / self.manifest["onnx"]["file"]
        if precision == "int8":
            path = quantized_onnx(self.export_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device == "gpu":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises many types for a bad file
            raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc}). Re-run `tritoncls export`.") from exc

    def logits(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        if self.backend == "onnxruntime":
            feeds = dict(zip(self._input_names, (input_ids, token_type_ids)))
            return self._session.run([self._output_name], feeds)[0]
        return run_paddle(self._predictor, input_ids, token_type_ids)


@dataclass
class OfflineResult:
    probs: np.ndarray
    seconds: float
    padded_tokens: int
    real_tokens: int


class OfflinePredictor:
    """Tokenize, batch (sorted by length unless told not to) and classify texts in-process."""

    def __init__(self, config: OfflineConfig) -> None:
        self.config = config
        self.model = ExportedModel(config.model, config.backend, config.precision, config.num_threads, config.device)
        self.manifest = self.model.manifest
        self.labels: list[str] = list(self.manifest["labels"])
        self.tokenizer = fast_tokenizer(config.model, self.manifest)
        self.pad_id = int(self.manifest["tokenizer"]["pad_token_id"])

    def batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(lengths, kind="stable") if self.config.sort_by_length else np.arange(len(lengths))
        size = self.config.batch_size
        return [order[i:i + size] for i in range(0, len(order), size)]

    def predict_probs(self, texts: Sequence[str], progress: bool = False) -> OfflineResult:
        from tqdm import tqdm

        started = time.perf_counter()
        encodings = self.tokenizer.encode(list(texts))
        lengths = np.array([len(e) for e in encodings])
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        padded = 0
        for rows in tqdm(self.batches(lengths), desc="predict", unit="batch", disable=not progress, leave=False):
            ids, types = pad_ids([encodings[r] for r in rows], self.pad_id)
            probs[rows] = softmax(self.model.logits(ids, types))
            padded += ids.size
        return OfflineResult(probs, time.perf_counter() - started, padded, int(lengths.sum()))

    def predict(self, texts: Sequence[str], progress: bool = False) -> tuple[list[str], list[float]]:
        probs = self.predict_probs(texts, progress).probs
        best = probs.argmax(1)
        return [self.labels[i] for i in best], [float(probs[i, j]) for i, j in enumerate(best)]
