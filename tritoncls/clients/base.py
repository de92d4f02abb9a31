"""What the gRPC and HTTP clients share: the model's signature, batching, retries and results.

A subclass supplies the protocol: how to make a tritonclient, read metadata and config, and infer.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from tritoncls.common.predictions import LABEL_SETS_HEADER, OUTPUT_HEADER, format_row, format_set_row
from tritoncls.errors import ClientError
from tritoncls.runtime.contract import (
    CONFIDENCE,
    LABEL,
    LABEL_COUNT,
    LABEL_PROBS,
    LABELS,
    PROBS,
    TOP_K_LABELS,
    TOP_K_PROBS,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The outputs of a multi-class ensemble, and of a multi-label or hierarchical one (``probs`` on request).
MULTI_CLASS_OUTPUTS = (LABEL, CONFIDENCE)
LABEL_SET_OUTPUTS = (LABELS, LABEL_PROBS, LABEL_COUNT)


@dataclass(frozen=True)
class Prediction:
    """One text's result: best label, its probability, and (when the repository has top-k) the k best."""

    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...] = ()

    header: ClassVar[str] = OUTPUT_HEADER

    def row(self, text: str) -> str:
        """The text's line in the predictions file."""
        return format_row(text, self.label, self.confidence)


@dataclass(frozen=True)
class LabelSetPrediction:
    """One text's result from a multi-label or hierarchical model: its labels with their probabilities (in
    label order; none is a valid answer), and every label's probability when asked for (``probs``)."""

    labels: tuple[tuple[str, float], ...]
    probs: tuple[float, ...] = ()

    header: ClassVar[str] = LABEL_SETS_HEADER

    def row(self, text: str) -> str:
        return format_set_row(text, self.labels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.labels)


@dataclass(frozen=True)
class Signature:
    """What the client learns from the server: tensor names and the batch limit."""

    input_name: str
    output_names: tuple[str, ...]
    max_batch_size: int

    @property
    def has_top_k(self) -> bool:
        return TOP_K_LABELS in self.output_names and TOP_K_PROBS in self.output_names

    @property
    def label_sets(self) -> bool:
        """A multi-label or hierarchical ensemble (label sets) rather than a multi-class one."""
        return LABELS in self.output_names

    def requested(self, all_probs: bool = False) -> tuple[str, ...]:
        """The outputs to ask for: all but ``probs``, which only ``all_probs`` requests."""
        return tuple(name for name in self.output_names if name != PROBS or all_probs)


class TransientError(Exception):
    """A failure worth retrying (server unavailable, connection refused or reset, model not loaded yet)."""


#: What Triton says when the model is known but not loaded: a server still starting (its endpoints open
#: before the models are loaded) or reloading. Not the answer for a wrong model name ("is not found").
NOT_LOADED = ("has no available versions", "is not ready")


def model_not_loaded(message: str) -> bool:
    """Whether a server error says the model exists but is not loaded yet (worth retrying elsewhere or later)."""
    return any(phrase in message for phrase in NOT_LOADED)


class ServerUnavailable(ClientError):
    """The server could not be reached, even after retries; another replica may serve the request."""


class RequestTimedOut(ClientError):
    """A request got no answer within the client's timeout; another replica may serve it."""


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def encode_texts(texts: Sequence[str | bytes]) -> np.ndarray:
    """A BYTES input of shape [n, 1]; str is sent as UTF-8, bytes as they are."""
    return np.array([[t.encode("utf-8") if isinstance(t, str) else bytes(t)] for t in texts], dtype=np.object_).reshape(-1, 1)


def signature_from(metadata: dict[str, Any], config: dict[str, Any], model: str, url: str) -> Signature:
    """The input and outputs a classifier ensemble must have, checked against the server's metadata."""
    inputs = metadata.get("inputs", [])
    if len(inputs) != 1 or inputs[0].get("datatype") != "BYTES":
        raise ClientError(f"{url}: model {model!r} has inputs {inputs}; a tritoncls ensemble has one BYTES input. "
                          f"Is --name the ensemble built by `tritoncls build-repo`?")
    outputs = tuple(o["name"] for o in metadata.get("outputs", []))
    expected = LABEL_SET_OUTPUTS if LABELS in outputs else MULTI_CLASS_OUTPUTS
    missing = [name for name in expected if name not in outputs]
    if missing:
        raise ClientError(f"{url}: model {model!r} has no outputs {missing} (it has {list(outputs)}); "
                          f"point --name at the ensemble built by `tritoncls build-repo`.")
    return Signature(inputs[0]["name"], outputs, int(config.get("max_batch_size", 0) or 0))


def predictions_from(outputs: dict[str, np.ndarray], signature: Signature) -> list[Prediction | LabelSetPrediction]:
    if signature.label_sets:
        return label_sets_from(outputs)
    labels = outputs[LABEL].reshape(-1)
    confidences = outputs[CONFIDENCE].reshape(-1)
    top_labels = outputs.get(TOP_K_LABELS)
    top_probs = outputs.get(TOP_K_PROBS)
    results = []
    for i, (label, confidence) in enumerate(zip(labels, confidences)):
        top: tuple[tuple[str, float], ...] = ()
        if top_labels is not None and top_probs is not None:
            top = tuple((_text(lab), float(p)) for lab, p in zip(top_labels[i], top_probs[i]))
        results.append(Prediction(_text(label), float(confidence), top))
    return results


def label_sets_from(outputs: dict[str, np.ndarray]) -> list[LabelSetPrediction]:
    """Each row's first ``label_count`` labels and probabilities (the rest is padding), and ``probs`` if sent."""
    names, probs, counts = outputs[LABELS], outputs[LABEL_PROBS], outputs[LABEL_COUNT].reshape(-1)
    every = outputs.get(PROBS)
    return [LabelSetPrediction(tuple((_text(names[i, j]), float(probs[i, j])) for j in range(int(n))),
                               tuple(float(p) for p in every[i]) if every is not None else ())
            for i, n in enumerate(counts)]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class TritonClient(abc.ABC):
    """Classify texts with a tritoncls ensemble; a context manager over one server URL.

    ``timeout_s`` bounds each request; UNAVAILABLE and connection failures are retried ``retries``
    times with exponential backoff from ``backoff_s``, each wait capped at ``max_backoff_s`` (so a
    few more retries ride out a server restart); batches larger than the model's max_batch_size are split.
    """

    protocol = "?"

    def __init__(self, url: str, model_name: str = "seqcls", timeout_s: float = 60.0, retries: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 5.0, all_probs: bool = False) -> None:
        self.url = url
        self.model_name = model_name
        self.all_probs = all_probs  # multi-label ensembles: also ask for every label's probability (``probs``)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._client = self._connect()
        self._signature: Signature | None = None

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- protocol hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self): ...

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Server live and the model ready; raises TransientError when the server is unreachable."""

    @abc.abstractmethod
    def _metadata_and_config(self) -> tuple[dict[str, Any], dict[str, Any]]: ...

    @abc.abstractmethod
    def _infer(self, data: np.ndarray, signature: Signature) -> dict[str, np.ndarray]: ...

    # -- public API ---------------------------------------------------------------------------

    def wait_until_ready(self, timeout_s: float = 60.0) -> None:
        """Poll until the server is live and the model is ready; ClientError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last = "not ready"
        while True:
            try:
                if self._ready():
                    return
            except TransientError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise ClientError(f"{self.url}: model {self.model_name!r} not ready after {timeout_s:.0f} s ({last}). "
                                  f"Is `tritoncls serve` running there?")
            time.sleep(0.2)

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            metadata, config = self._with_retries(self._metadata_and_config, "read the model's metadata")
            self._signature = signature_from(metadata, config, self.model_name, self.url)
        return self._signature

    @property
    def max_batch_size(self) -> int:
        return self.signature.max_batch_size

    def classify(self, texts: Sequence[str | bytes]) -> list[Prediction | LabelSetPrediction]:
        """Predictions for ``texts`` in order, in requests of at most max_batch_size texts."""
        size = self.max_batch_size or len(texts) or 1
        out: list[Prediction | LabelSetPrediction] = []
        for batch in chunks(texts, size):
            out.extend(predictions_from(self.infer_raw(batch), self.signature))
        return out

    def infer_raw(self, texts: Sequence[str | bytes]) -> dict[str, np.ndarray]:
        """One request with exactly these texts (no splitting): the output tensors by name."""
        data = encode_texts(texts)
        return self._with_retries(lambda: self._infer(data, self.signature), f"classify {len(texts)} texts")

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except TransientError as exc:
                if attempt == self.retries:
                    raise ServerUnavailable(f"{self.url}: could not {what}: server unavailable after {attempt + 1} "
                                        f"tries ({exc}). Is the server running and reachable?") from None
                delay = min(self.backoff_s * 2 ** attempt, self.max_backoff_s)
                log.debug("%s unavailable (%s); retrying in %.1f s", self.url, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")
