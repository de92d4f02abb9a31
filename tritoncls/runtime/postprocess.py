"""Logits -> probabilities, best label and confidence, top-k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


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


def classify(logits: np.ndarray, labels: Sequence[str], k: int) -> Classified:
    """Softmax, best label and confidence, and the top-k labels with their probabilities."""
    if logits.shape[-1] != len(labels):
        raise ValueError(f"the model gives {logits.shape[-1]} logits but the label file has {len(labels)} labels")
    probs = softmax(logits)
    order, best = top_k(probs, max(k, 1))
    return Classified(
        label=label_bytes(labels, order[:, :1]),
        confidence=best[:, :1].astype(np.float32),
        top_k_labels=label_bytes(labels, order[:, :k]),
        top_k_probs=best[:, :k].astype(np.float32),
    )

