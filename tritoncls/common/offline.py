"""The offline predictor: classify texts in-process on an export, with no Paddle dynamic graph and
no server (the reference's ``deploy/predictor``).

The loop itself is :class:`tritoncls.runtime.Predictor` (the serving tokenizer, texts sorted by
length, ONNX Runtime or Paddle Inference); this module adds what only a user-facing command needs:
validated options and the INT8 graph, quantized once and cached beside the export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritoncls.common.metrics import override_thresholds
from tritoncls.common.onnx import quantized_onnx
from tritoncls.errors import ConfigError
from tritoncls.runtime import Manifest, Predictor
from tritoncls.runtime.predictor import BACKENDS

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class OfflineConfig:
    model: str
    backend: str = "onnxruntime"
    precision: str = "fp32"
    num_threads: int | None = None
    batch_size: int = 32
    sort_by_length: bool = True
    device: str = "cpu"
    threshold: float | None = None  # multi-label: one threshold for every label instead of the export's
    thresholds_file: str | None = None  # multi-label: label<TAB>threshold lines instead of the export's

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


def open_predictor(config: OfflineConfig) -> Predictor:
    """A :class:`~tritoncls.runtime.Predictor` over ``config.model`` with the options it names."""
    manifest = Manifest.load(config.model)
    manifest = manifest.replace(task=override_thresholds(manifest.task, manifest.labels, config.threshold,
                                                         config.thresholds_file))
    onnx_file = quantized_onnx(config.model, manifest) if config.precision == "int8" else None
    return Predictor.from_export(config.model, manifest, config.backend, onnx_file, config.num_threads,
                                 config.device, config.batch_size, config.sort_by_length)


@dataclass(frozen=True)
class FilePredictions:
    """What :func:`predict_file` did: how many texts, where their predictions went, how long the model took."""

    texts: int
    output: Path
    seconds: float

    @property
    def texts_per_s(self) -> float:
        return self.texts / max(self.seconds, 1e-9)


def predict_file(config: OfflineConfig, source: str | Path, output: str | Path, progress: bool = True) -> FilePredictions:
    """Classify every line of ``source`` in-process with the export ``config`` names, and write the task's
    predictions file (``text<TAB>label<TAB>confidence``, or label sets and their probabilities) to ``output``."""
    from functools import partial

    from tqdm import tqdm

    from tritoncls.common.data import read_texts
    from tritoncls.common.predictions import write_decisions

    predictor = open_predictor(config)
    texts = read_texts(source)
    bar = partial(tqdm, desc="predict", unit="batch", leave=False, disable=not progress)
    result = predictor.predict_probs(texts, progress=bar)
    out = write_decisions(Path(output), texts, predictor.labels, result.probs, result.mask,
                          predictor.head.spec.multi_label)
    return FilePredictions(len(texts), out, result.seconds)
