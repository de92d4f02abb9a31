"""In-process baselines: the same texts and export, batch 32 with dynamic padding, no server.

Three runtimes (ONNX Runtime and Paddle Inference through the offline predictor, and the Paddle
dynamic graph on the export's source checkpoint), each in file order and sorted by length. Every
timing covers tokenization (HF ``tokenizers``, as the served ensemble does), padding and the
model; one warm-up batch runs first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.benchmarks import BenchmarkError

log = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "paddle_inference", "paddle_dygraph")
ORDERS = ("file", "sorted")


@dataclass(frozen=True)
class InProcessResult:
    runtime: str
    order: str
    precision: str
    batch_size: int
    texts: int
    seconds: float
    padded_tokens: int
    real_tokens: int
    threads: int

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0

    @property
    def padding_ratio(self) -> float:
        return self.padded_tokens / self.real_tokens if self.real_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"texts_per_s": self.texts_per_s, "padding_ratio": self.padding_ratio}


def batches(lengths: np.ndarray, batch_size: int, order: str) -> list[np.ndarray]:
    """Row indices per batch: consecutive in file order, or grouped by length (``sorted``)."""
    if order not in ORDERS:
        raise BenchmarkError(f"order {order!r} is not one of {ORDERS}")
    rows = np.argsort(lengths, kind="stable") if order == "sorted" else np.arange(len(lengths))
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


def padded_tokens(lengths: np.ndarray, batch_size: int, order: str) -> int:
    """Token positions computed when each batch is padded to its longest text."""
    return int(sum(len(b) * lengths[b].max() for b in batches(lengths, batch_size, order)))


class _Runner:
    """Logits for padded int64 ids; one of the three runtimes."""

    def __init__(self, export_dir: Path, runtime: str, precision: str, threads: int) -> None:
        self.runtime = runtime
        if runtime == "paddle_dygraph":
            self._model = _dygraph_model(export_dir)
        else:
            from tritoncls.training.offline import ExportedModel

            self._model = ExportedModel(export_dir, runtime, precision, threads)

    def __call__(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        if self.runtime == "paddle_dygraph":
            import paddle

            with paddle.no_grad():
                return self._model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)).numpy()
        return self._model.logits(ids, types)


def _dygraph_model(export_dir: Path):
    """The dynamic graph of the export's source checkpoint (the manifest names it)."""
    from tritoncls.training import modeling
    from tritoncls.training.export import load_manifest

    source = Path(load_manifest(export_dir).get("source_checkpoint") or "")
    if not (source / "model_state.pdparams").is_file():
        raise BenchmarkError(f"{export_dir}: its source checkpoint {str(source)!r} is gone, and the Paddle dynamic "
                             f"graph needs it; skip this baseline or keep the checkpoint beside the export.")
    import paddle

    paddle.set_device("cpu")
    return modeling.load_checkpoint_model(source)


def run_baseline(export_dir: Path, texts: Sequence[str], runtime: str, order: str, batch_size: int = 32,
                 precision: str = "fp32", threads: int | None = None, repeats: int = 1) -> tuple[InProcessResult, np.ndarray]:
    """Time one runtime over ``texts``; returns the best of ``repeats`` runs and the logits (input order)."""
    import os

    from tritoncls.training.offline import fast_tokenizer, pad_ids

    if runtime not in RUNTIMES:
        raise BenchmarkError(f"runtime {runtime!r} is not one of {RUNTIMES}")
    threads = threads or os.cpu_count() or 1
    runner = _Runner(Path(export_dir), runtime, precision, threads)
    from tritoncls.training.export import load_manifest

    manifest = load_manifest(export_dir)
    tokenizer = fast_tokenizer(export_dir, manifest)
    pad_id = int(manifest["tokenizer"]["pad_token_id"])
    warm = tokenizer.encode_batch(list(texts[:batch_size]))
    runner(*pad_ids(warm, pad_id))
    best = float("inf")
    logits: np.ndarray | None = None
    lengths = np.zeros(len(texts), dtype=np.int64)
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        out = None
        for rows in batches(lengths, batch_size, order):
            result = runner(*pad_ids([encodings[r] for r in rows], pad_id))
            if out is None:
                out = np.zeros((len(texts), result.shape[-1]), dtype=np.float32)
            out[rows] = result
        best = min(best, time.perf_counter() - started)
        logits = out
    assert logits is not None
    result = InProcessResult(runtime, order, precision, batch_size, len(texts), best,
                             padded_tokens(lengths, batch_size, order), int(lengths.sum()), threads)
    log.info("in-process %s %s %s: %.1f texts/s (padding x%.2f)", runtime, precision, order,
             result.texts_per_s, result.padding_ratio)
    return result, logits


def token_rows(export_dir: Path, texts: Sequence[str]) -> list[list[int]]:
    """Token ids ([CLS] and [SEP] included, truncated to max_seq_length) with the export's tokenizer."""
    from tritoncls.training.offline import fast_tokenizer

    return [list(e.ids) for e in fast_tokenizer(export_dir).encode_batch(list(texts))]
