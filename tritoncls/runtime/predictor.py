"""The in-process inference loop: tokenize -> sort by length -> pad -> run -> scatter back.

One implementation for every path that classifies texts without a server: the offline predictor
(``tritoncls predict --model``), the benchmarks' in-process baselines, the soak test's reference,
the GPU check, and (through :func:`run_batched`) the Paddle dynamic graph in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .batching import pad_rows
from .errors import OptionError
from .manifest import Manifest
from .runners import OnnxRunner, PaddleRunner, Runner, usable_cores
from .task import Head, TaskSpec, label_sets
from .wordpiece import WordPieceTokenizer

BACKENDS = ("onnxruntime", "paddle_inference")
T = TypeVar("T")
Progress = Callable[[Iterable[T]], Iterable[T]]  # e.g. functools.partial(tqdm, desc="predict")


def length_batches(lengths: np.ndarray, batch_size: int, sort: bool = True) -> list[np.ndarray]:
    """Row indices per batch: grouped by length (``sort``, far less padding) or consecutive in input order."""
    order = np.argsort(lengths, kind="stable") if sort else np.arange(len(lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass(frozen=True)
class BatchedRun:
    """Logits of every row in input order, and what computing them cost."""

    logits: np.ndarray  # float32 [rows, num_labels]
    seconds: float
    padded_tokens: int  # token positions computed (each batch padded to its longest row)
    real_tokens: int
    cpu_seconds: float = 0.0  # this process's CPU time (every thread), where measured

    @property
    def padding_ratio(self) -> float:
        return self.padded_tokens / self.real_tokens if self.real_tokens else 0.0


def run_batched(rows: Sequence[Sequence[int]], runner: Runner, pad_token_id: int, batch_size: int,
                sort: bool = True, progress: Progress | None = None) -> BatchedRun:
    """Run token-id rows through ``runner`` in batches, each padded to its own longest row."""
    started = time.perf_counter()
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    batches = length_batches(lengths, batch_size, sort)
    out: np.ndarray | None = None
    padded = 0
    for batch in (progress(batches) if progress else batches):
        selected = [rows[r] for r in batch]
        ids, types = pad_rows(selected, max(len(r) for r in selected), pad_token_id)
        logits = runner.run(ids, types)
        if out is None:
            out = np.zeros((len(rows), logits.shape[-1]), dtype=np.float32)
        out[batch] = logits
        padded += ids.size
    if out is None:
        out = np.zeros((0, 0), dtype=np.float32)
    return BatchedRun(out, time.perf_counter() - started, padded, int(lengths.sum()))


@dataclass(frozen=True)
class Probabilities:
    probs: np.ndarray  # float32 [texts, num_labels], input order: softmax, or a sigmoid per label
    seconds: float  # tokenization included
    padded_tokens: int
    real_tokens: int
    mask: np.ndarray | None = None  # bool [texts, num_labels]: the predicted labels, as the task's head decides


class Predictor:
    """Classify texts in-process with an export's tokenizer and a runner over its graph."""

    def __init__(self, tokenizer: WordPieceTokenizer, runner: Runner, labels: Sequence[str], pad_token_id: int,
                 batch_size: int = 32, sort_by_length: bool = True, head: Head | None = None) -> None:
        if batch_size <= 0:
            raise OptionError(f"batch_size must be positive, got {batch_size}")
        self.tokenizer = tokenizer
        self.runner = runner
        self.labels = list(labels)
        self.head = head or TaskSpec().head(labels)
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length

    @classmethod
    def from_export(cls, export_dir: str | Path, manifest: Manifest | None = None, backend: str = "onnxruntime",
                    onnx_file: str | Path | None = None, threads: int | None = None, device: str = "cpu",
                    batch_size: int = 32, sort_by_length: bool = True) -> Predictor:
        """A predictor over ``export_dir``; ``onnx_file`` replaces the export's graph (e.g. its INT8 quantization)."""
        export_dir = Path(export_dir)
        manifest = manifest or Manifest.load(export_dir)
        runner = export_runner(export_dir, manifest, backend, onnx_file, threads, device)
        return cls(export_tokenizer(export_dir, manifest), runner, manifest.labels, manifest.tokenizer.pad_token_id,
                   batch_size, sort_by_length, manifest.head())

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(list(texts))

    def logits(self, texts: Sequence[str], progress: Progress | None = None) -> BatchedRun:
        """Logits in input order; ``seconds`` and ``cpu_seconds`` cover tokenization too."""
        started, cpu = time.perf_counter(), time.process_time()
        run = run_batched(self.encode(texts), self.runner, self.pad_token_id, self.batch_size, self.sort_by_length,
                          progress)
        return BatchedRun(run.logits, time.perf_counter() - started, run.padded_tokens, run.real_tokens,
                          time.process_time() - cpu)

    def predict_probs(self, texts: Sequence[str], progress: Progress | None = None) -> Probabilities:
        """Every label's probability and the predicted labels of each text."""
        run = self.logits(texts, progress)
        logits = run.logits if len(texts) else np.zeros((0, len(self.labels)), dtype=np.float32)
        probs, mask = self.head.predict(logits)
        return Probabilities(probs, run.seconds, run.padded_tokens, run.real_tokens, mask)

    def predict(self, texts: Sequence[str], progress: Progress | None = None) -> tuple[list[str], list[float]]:
        """The best label and its probability for each text (multi-class; see :meth:`predict_sets`)."""
        if self.head.spec.multi_label:
            raise TypeError(f"a {self.head.task} model predicts label sets: call predict_sets")
        probs = self.predict_probs(texts, progress).probs
        best = probs.argmax(1)
        return [self.labels[i] for i in best], [float(probs[i, j]) for i, j in enumerate(best)]

    def predict_sets(self, texts: Sequence[str], progress: Progress | None = None) -> list[list[tuple[str, float]]]:
        """Each text's predicted labels with their probabilities, in label order (any task)."""
        result = self.predict_probs(texts, progress)
        return [[(self.labels[j], float(result.probs[i, j])) for j in ids]
                for i, ids in enumerate(label_sets(result.mask))]


def export_tokenizer(export_dir: str | Path, manifest: Manifest) -> WordPieceTokenizer:
    """The export's tokenizer at HF ``tokenizers`` speed, ids identical to the training tokenizer's."""
    spec = manifest.tokenizer
    return WordPieceTokenizer(Path(export_dir) / spec.vocab_file, spec.do_lower_case, spec.special_tokens,
                              manifest.max_seq_length, spec.rules)


def export_runner(export_dir: str | Path, manifest: Manifest, backend: str = "onnxruntime",
                  onnx_file: str | Path | None = None, threads: int | None = None, device: str = "cpu") -> Runner:
    """ONNX Runtime over the export's ONNX graph, or Paddle Inference over its static graph."""
    if backend not in BACKENDS:
        raise OptionError(f"backend {backend!r} is not one of {BACKENDS}")
    export_dir = Path(export_dir)
    threads = threads or usable_cores()
    if backend == "paddle_inference":
        graph = manifest.paddle
        return PaddleRunner(export_dir / graph.model_file, export_dir / graph.params_file, graph.input_names,
                            graph.output_name, threads, device)
    graph = manifest.onnx
    return OnnxRunner(onnx_file or export_dir / graph.file, graph.input_names, graph.output_name, threads, 1, device)
