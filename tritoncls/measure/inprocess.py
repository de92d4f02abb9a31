"""In-process baselines: the same texts and export, batch 32 with dynamic padding, no server.

Three runtimes (ONNX Runtime and Paddle Inference through the offline predictor, and the Paddle
dynamic graph on the export's source checkpoint), each in file order and sorted by length. Every
timing covers tokenization (HF ``tokenizers``, as the served ensemble does), padding and the
model; one warm-up batch runs first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.errors import BenchmarkError
from tritoncls.modeling.dynamic import DygraphRunner
from tritoncls.runtime import BatchedRun, Manifest, Predictor, export_tokenizer, length_batches
from tritoncls.runtime.runners import usable_cores

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
    cpu_seconds: float = 0.0  # the process's CPU time over the timed run, every thread

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_text(self) -> float:
        return 1e3 * self.cpu_seconds / self.texts if self.texts else 0.0

    @property
    def padding_ratio(self) -> float:
        return self.padded_tokens / self.real_tokens if self.real_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"texts_per_s": self.texts_per_s, "padding_ratio": self.padding_ratio,
                               "cpu_ms_per_text": self.cpu_ms_per_text}


def padded_tokens(lengths: np.ndarray, batch_size: int, order: str) -> int:
    """Token positions computed when each batch is padded to its longest text."""
    _check_order(order)
    return int(sum(len(b) * lengths[b].max() for b in length_batches(lengths, batch_size, order == "sorted")))


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise BenchmarkError(f"order {order!r} is not one of {ORDERS}")


def _dygraph_runner(export_dir: Path) -> DygraphRunner:
    """The dynamic graph of the export's source checkpoint (the manifest names it)."""
    from tritoncls import modeling

    source = Path(Manifest.load(export_dir).source_checkpoint or "")
    if not (source / "model_state.pdparams").is_file():
        raise BenchmarkError(f"{export_dir}: its source checkpoint {str(source)!r} is gone, and the Paddle dynamic "
                             f"graph needs it; skip this baseline or keep the checkpoint beside the export.")
    import paddle

    paddle.set_device("cpu")
    model = modeling.load_checkpoint_model(source)
    model.eval()
    return DygraphRunner(model)


def predictor(export_dir: Path, runtime: str, order: str, batch_size: int = 32, precision: str = "fp32",
              threads: int | None = None) -> Predictor:
    """The runtime's one Predictor over ``export_dir``, with ``runtime``'s runner."""
    if runtime not in RUNTIMES:
        raise BenchmarkError(f"runtime {runtime!r} is not one of {RUNTIMES}")
    _check_order(order)
    sort = order == "sorted"
    if runtime == "paddle_dygraph":
        manifest = Manifest.load(export_dir)
        return Predictor(export_tokenizer(export_dir, manifest), _dygraph_runner(Path(export_dir)), manifest.labels,
                         manifest.tokenizer.pad_token_id, batch_size, sort, manifest.head())
    return open_predictor(OfflineConfig(model=str(export_dir), backend=runtime, precision=precision,
                                        num_threads=threads, batch_size=batch_size, sort_by_length=sort))


def run_baseline(export_dir: Path, texts: Sequence[str], runtime: str, order: str, batch_size: int = 32,
                 precision: str = "fp32", threads: int | None = None, repeats: int = 1) -> tuple[InProcessResult, np.ndarray]:
    """Time one runtime over ``texts``; returns the best of ``repeats`` runs and the logits (input order)."""
    threads = threads or usable_cores()
    model = predictor(Path(export_dir), runtime, order, batch_size, precision, threads)
    best, logits = best_run(model, texts, repeats)
    result = InProcessResult(runtime, order, precision, batch_size, len(texts), best.seconds,
                             best.padded_tokens, best.real_tokens, threads, best.cpu_seconds)
    log.info("in-process %s %s %s: %.1f texts/s (padding x%.2f)", runtime, precision, order,
             result.texts_per_s, result.padding_ratio)
    return result, logits


def best_run(model: Predictor, texts: Sequence[str], repeats: int = 1) -> tuple[BatchedRun, np.ndarray]:
    """After a warm-up batch (session, kernels and allocator setup), the fastest of ``repeats`` passes over
    ``texts`` and the logits (input order)."""
    model.logits(texts[:model.batch_size])
    runs = [model.logits(texts) for _ in range(max(1, repeats))]
    return min(runs, key=lambda run: run.seconds), runs[-1].logits


def token_rows(export_dir: Path, texts: Sequence[str]) -> list[list[int]]:
    """Token ids ([CLS] and [SEP] included, truncated to max_seq_length) with the export's tokenizer."""
    return export_tokenizer(export_dir, Manifest.load(export_dir)).encode(list(texts))
