"""The postprocess outputs: for multi-class the best label, its confidence and the top-k; for multi-label and
hierarchical tasks each text's label set with the probabilities, and every label's probability.

The decisions themselves (softmax or sigmoid, argmax or thresholds, the hierarchy rule) are
:class:`~.task.Head`'s; this module only lays them out as the tensors the ensemble returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .contract import CONFIDENCE, LABEL, LABEL_COUNT, LABEL_PROBS, LABELS, PROBS, TOP_K_LABELS, TOP_K_PROBS
from .errors import ModelLoadError
from .task import softmax

#: The narrowest ``labels``/``label_probs`` a request gets, when no text of it has a label.
MIN_SET_WIDTH = 0


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and probabilities of the k most probable labels per row, best first (ties: lower id)."""
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=-1)


def label_bytes(labels: Sequence[str], indices: np.ndarray) -> np.ndarray:
    """A BYTES (object) array of UTF-8 label names shaped like ``indices``."""
    encoded = np.array([label.encode("utf-8") for label in labels], dtype=np.object_)
    return encoded[indices]


@dataclass(frozen=True)
class Classified:
    """Postprocess outputs for a batch of rows."""

    label: np.ndarray  # BYTES [n, 1]
    confidence: np.ndarray  # FP32 [n, 1]
    top_k_labels: np.ndarray  # BYTES [n, k]
    top_k_probs: np.ndarray  # FP32 [n, k]

    def tensors(self) -> dict[str, np.ndarray]:
        return {LABEL: self.label, CONFIDENCE: self.confidence, TOP_K_LABELS: self.top_k_labels,
                TOP_K_PROBS: self.top_k_probs}

    def rows(self, start: int, stop: int) -> Classified:
        return Classified(self.label[start:stop], self.confidence[start:stop], self.top_k_labels[start:stop],
                          self.top_k_probs[start:stop])


def classify(logits: np.ndarray, labels: Sequence[str], k: int) -> Classified:
    """Softmax, best label and confidence, and the top-k labels with their probabilities."""
    if logits.shape[-1] != len(labels):
        raise ModelLoadError(f"the model gives {logits.shape[-1]} logits but the label file has {len(labels)} labels")
    return classify_probs(softmax(logits), labels, k)


def classify_probs(probs: np.ndarray, labels: Sequence[str], k: int) -> Classified:
    """Best label and confidence, and the top-k labels, of softmax probabilities."""
    order, best = top_k(probs, max(k, 1))
    return Classified(
        label=label_bytes(labels, order[:, :1]),
        confidence=best[:, :1].astype(np.float32),
        top_k_labels=label_bytes(labels, order[:, :k]),
        top_k_probs=best[:, :k].astype(np.float32),
    )



@dataclass(frozen=True)
class LabelSets:
    """Multi-label outputs for a batch of rows (one request): each row's predicted labels in label order
    with their probabilities, padded to the request's largest set (``b""`` and 0.0); how many each row
    has; and every label's probability."""

    labels: np.ndarray  # BYTES [n, w], w = the largest set in the request
    label_probs: np.ndarray  # FP32 [n, w]
    label_count: np.ndarray  # INT32 [n, 1]
    probs: np.ndarray  # FP32 [n, num_labels]

    def tensors(self) -> dict[str, np.ndarray]:
        return {LABELS: self.labels, LABEL_PROBS: self.label_probs, LABEL_COUNT: self.label_count, PROBS: self.probs}

    def sets(self) -> list[list[tuple[str, float]]]:
        """Each row's (label, probability) pairs, padding dropped."""
        return [[(self.labels[i, j].decode("utf-8"), float(self.label_probs[i, j])) for j in range(int(count))]
                for i, count in enumerate(self.label_count[:, 0])]


def label_sets_of(probs: np.ndarray, mask: np.ndarray, labels: Sequence[str]) -> LabelSets:
    """The :class:`LabelSets` of probabilities and the predicted mask of one request's rows."""
    counts = mask.sum(axis=1).astype(np.int32)
    width = max(int(counts.max(initial=0)), MIN_SET_WIDTH)
    names = np.full((len(probs), width), b"", dtype=np.object_)
    chosen = np.zeros((len(probs), width), dtype=np.float32)
    encoded = [label.encode("utf-8") for label in labels]
    for row, ids in enumerate(mask):
        for column, index in enumerate(np.flatnonzero(ids)):
            names[row, column] = encoded[index]
            chosen[row, column] = probs[row, index]
    return LabelSets(names, chosen, counts.reshape(-1, 1), probs.astype(np.float32))
