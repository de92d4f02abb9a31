"""The task a classifier was trained for, and what it makes of logits.

- ``multi_class``: one label per text; softmax, the most probable label.
- ``multi_label``: any number of labels per text, none included; a sigmoid per label, and the labels
  whose probability reaches that label's threshold (chosen on dev at training time).
- ``hierarchical``: multi-label over label paths ``level1##level2##...`` where every level is a label
  of its own (``A``, ``A##B``); a path is predicted only when its parent is, so no child is ever
  returned without its parent.

:class:`TaskSpec` is what a checkpoint (``task.json``), an export (``manifest.json``) and a
repository (the postprocess step's parameters) record; :class:`Head` applies it to logits. Every
prediction path (training's dev scoring, evaluate, predict, the offline predictor, the served
postprocess) goes through one :class:`Head`, so they cannot disagree on the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import TaskError

MULTI_CLASS = "multi_class"
MULTI_LABEL = "multi_label"
HIERARCHICAL = "hierarchical"
TASKS = (MULTI_CLASS, MULTI_LABEL, HIERARCHICAL)
LABEL_SEPARATOR = ","  # between the labels of one text (data files, predictions files)
HIERARCHY_SEPARATOR = "##"  # between the levels of a hierarchical label path
DEFAULT_THRESHOLD = 0.5


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow warnings for large negative logits."""
    x = logits.astype(np.float32)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp = np.exp(x[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def parent_path(label: str, separator: str = HIERARCHY_SEPARATOR) -> str | None:
    """``a##b##c`` -> ``a##b``; a top-level label has no parent (None)."""
    return label.rsplit(separator, 1)[0] if separator in label else None


def depth(label: str, separator: str = HIERARCHY_SEPARATOR) -> int:
    """The level of a label path: 1 for a top-level label."""
    return label.count(separator) + 1


def label_parents(labels: Sequence[str], separator: str = HIERARCHY_SEPARATOR) -> np.ndarray:
    """The index of each label's parent path in ``labels`` (-1 for a top-level label)."""
    index = {label: i for i, label in enumerate(labels)}
    parents = np.full(len(labels), -1, dtype=np.int64)
    for i, label in enumerate(labels):
        parent = parent_path(label, separator)
        if parent is None:
            continue
        if parent not in index:
            raise TaskError(f"label {label!r}: its parent {parent!r} is not a label; a hierarchical label list holds "
                            f"every level of every path")
        parents[i] = index[parent]
    return parents


@dataclass(frozen=True)
class TaskSpec:
    """The task, and for multi-label and hierarchical tasks one threshold per label (in label order)."""

    task: str = MULTI_CLASS
    thresholds: tuple[float, ...] = ()
    hierarchy_separator: str = HIERARCHY_SEPARATOR

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TaskError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.task == MULTI_CLASS and self.thresholds:
            raise TaskError("a multi_class task has no thresholds (it predicts the most probable label)")
        bad = [t for t in self.thresholds if not (isinstance(t, (int, float)) and 0.0 <= t <= 1.0 and math.isfinite(t))]
        if bad:
            raise TaskError(f"thresholds must be probabilities in [0, 1], got {bad[:3]}")
        if not self.hierarchy_separator:
            raise TaskError("the hierarchy separator must not be empty")

    @property
    def multi_label(self) -> bool:
        """Sigmoid and thresholds (multi-label and hierarchical), rather than softmax and argmax."""
        return self.task != MULTI_CLASS

    @property
    def hierarchical(self) -> bool:
        return self.task == HIERARCHICAL

    def with_thresholds(self, thresholds: Sequence[float]) -> TaskSpec:
        return replace(self, thresholds=tuple(float(t) for t in thresholds))

    def check(self, labels: Sequence[str]) -> None:
        """Raise TaskError where this spec does not fit ``labels``."""
        if self.multi_label and len(self.thresholds) != len(labels):
            raise TaskError(f"{len(self.thresholds)} thresholds for {len(labels)} labels; a {self.task} task needs "
                            f"one per label")
        if self.hierarchical:
            label_parents(labels, self.hierarchy_separator)

    def head(self, labels: Sequence[str]) -> Head:
        self.check(labels)
        return Head(self, tuple(labels))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task}
        if self.multi_label:
            out["thresholds"] = [float(t) for t in self.thresholds]
        if self.hierarchical:
            out["hierarchy_separator"] = self.hierarchy_separator
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> TaskSpec:
        """The spec in ``data`` (a ``task.json`` or the manifest's fields); errors name ``where``."""
        task = data.get("task", MULTI_CLASS)
        thresholds = data.get("thresholds", [])
        separator = data.get("hierarchy_separator", HIERARCHY_SEPARATOR)
        if not isinstance(thresholds, list) or not isinstance(separator, str) or not isinstance(task, str):
            raise TaskError(f"{where}: fields 'task' (a string), 'thresholds' (a list of numbers) and "
                            f"'hierarchy_separator' (a string) have the wrong types")
        try:
            return cls(task, tuple(float(t) for t in thresholds), separator)
        except (TaskError, TypeError, ValueError) as exc:
            raise TaskError(f"{where}: {exc}") from None


class Head:
    """Logits -> probabilities -> the predicted labels, as one task decides them."""

    def __init__(self, spec: TaskSpec, labels: Sequence[str]) -> None:
        self.spec = spec
        self.labels = tuple(labels)
        self.thresholds = np.asarray(spec.thresholds, dtype=np.float32)
        self.parents = label_parents(self.labels, spec.hierarchy_separator) if spec.hierarchical else None
        self._levels = _levels(self.parents) if self.parents is not None else []

    @property
    def task(self) -> str:
        return self.spec.task

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax (multi-class) or a sigmoid per label (multi-label, hierarchical), float32."""
        if logits.shape[-1] != len(self.labels):
            raise TaskError(f"the model gives {logits.shape[-1]} logits but there are {len(self.labels)} labels")
        return sigmoid(logits) if self.spec.multi_label else softmax(logits)

    def decide(self, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
        """bool [rows, labels]: the predicted labels. Multi-class: the most probable one (ties: lower id).
        Otherwise the labels at or above their threshold (``thresholds`` replaces the spec's), and for a
        hierarchy only those whose parent is predicted too."""
        if not self.spec.multi_label:
            mask = np.zeros(probs.shape, dtype=bool)
            if probs.size:
                mask[np.arange(len(probs)), probs.argmax(axis=1)] = True
            return mask
        mask = probs >= (self.thresholds if thresholds is None else thresholds)
        return self.consistent(mask)

    def consistent(self, mask: np.ndarray) -> np.ndarray:
        """A hierarchy's mask with every path whose parent is not predicted removed (top-down)."""
        if self.parents is None:
            return mask
        mask = mask.copy()
        for children in self._levels:
            mask[:, children] &= mask[:, self.parents[children]]
        return mask

    def predict(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, predicted mask) of logits."""
        probs = self.probabilities(logits)
        return probs, self.decide(probs)


def _levels(parents: np.ndarray) -> list[np.ndarray]:
    """Label indices below the top level, grouped by depth (2, 3, ...): parents are decided first."""
    depths = np.zeros(len(parents), dtype=np.int64)
    for i in range(len(parents)):
        node, d = i, 0
        while parents[node] >= 0:
            node, d = parents[node], d + 1
            if d > len(parents):
                raise TaskError("the label hierarchy has a cycle")
        depths[i] = d
    return [np.flatnonzero(depths == d) for d in range(1, int(depths.max(initial=0)) + 1)]


def label_sets(mask: np.ndarray) -> list[list[int]]:
    """The predicted label ids of each row, in label order."""
    return [np.flatnonzero(row).tolist() for row in mask]
