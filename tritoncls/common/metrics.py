"""Scores of predicted label sets, and the per-label thresholds that training chooses on dev.

Precision, recall and F1 come from scikit-learn (``precision_recall_fscore_support``, with
``zero_division=0``: a label never given nor predicted scores 0, as scikit-learn and the reference's
``MetricReport`` count it). The threshold search is ours: scikit-learn tunes one binary threshold at
a time (``TunedThresholdClassifierCV`` refits a model per label); here every label's F1 is computed
for a grid of thresholds in one vectorised pass over the dev probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common.data import read_lines
from tritoncls.common.files import write_text
from tritoncls.errors import ConfigError, DataError
from tritoncls.runtime.task import MULTI_CLASS, Head, TaskSpec, depth

#: The selection metrics ``train --metric`` accepts, per task.
METRICS = {MULTI_CLASS: ("accuracy",), "multi_label": ("macro_f1", "micro_f1"),
           "hierarchical": ("macro_f1", "micro_f1")}
#: Candidate thresholds: 0.02, 0.03, ..., 0.98.
THRESHOLD_GRID = np.round(np.arange(0.02, 0.985, 0.01), 2).astype(np.float32)
#: A label with fewer positive dev texts than this takes the one threshold best for all labels (a per-label
#: choice on two or three texts follows their noise).
MIN_POSITIVES = 5


def default_metric(task: str) -> str:
    return METRICS[task][0]


def check_metric(task: str, metric: str | None) -> str:
    metric = metric or default_metric(task)
    if metric not in METRICS[task]:
        raise ConfigError(f"--metric {metric!r}: a {task} task is scored by {', '.join(METRICS[task])}.")
    return metric


def set_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Micro and macro precision/recall/F1 (percent), subset accuracy, and per-label counts and scores, of
    boolean [texts, labels] masks."""
    from sklearn.metrics import precision_recall_fscore_support

    truth, predicted = truth.astype(bool), predicted.astype(bool)
    out: dict[str, Any] = {"size": int(len(truth)),
                           "subset_accuracy": 100.0 * float((truth == predicted).all(axis=1).mean()) if len(truth) else 0.0}
    # scikit-learn reads a single column as a binary target and would average its two classes (text has the
    # label, text has not): score the label alone.
    y, y_hat, labels = (truth[:, 0], predicted[:, 0], [True]) if truth.shape[1] == 1 else (truth, predicted, None)
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y, y_hat, labels=labels, average=average, zero_division=0)
        out |= {f"{average}_precision": 100.0 * p, f"{average}_recall": 100.0 * r, f"{average}_f1": 100.0 * f}
    p, r, f, support = precision_recall_fscore_support(y, y_hat, labels=labels, average=None, zero_division=0)
    out["per_label"] = [{"count": int(n), "predicted": int(k), "precision": 100.0 * a, "recall": 100.0 * b,
                         "f1": 100.0 * c} for n, k, a, b, c in zip(support, predicted.sum(axis=0), p, r, f)]
    return out


def level_scores(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], separator: str) -> list[dict]:
    """:func:`set_scores` over the labels of each level of a hierarchy (level 1 = the top-level labels)."""
    depths = np.array([depth(label, separator) for label in labels])
    out = []
    for level in range(1, int(depths.max(initial=0)) + 1):
        columns = np.flatnonzero(depths == level)
        scores = set_scores(truth[:, columns], predicted[:, columns])
        scores["labels"] = [labels[i] for i in columns]
        out.append({"level": level, **scores})
    return out


def score(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    """One number, as a fraction: accuracy of class ids, or micro/macro F1 of boolean masks."""
    if metric == "accuracy":
        return float((truth == predicted).mean()) if len(truth) else 0.0
    return set_scores(truth, predicted)[metric] / 100.0


@dataclass(frozen=True)
class Thresholds:
    """Per-label thresholds and how they were chosen."""

    values: tuple[float, ...]
    how: str


@dataclass(frozen=True)
class _Counts:
    """Per grid threshold and label: true positives and predicted positives; per label: positives."""

    tp: np.ndarray
    predicted: np.ndarray
    positives: np.ndarray

    @classmethod
    def of(cls, probs: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> _Counts:
        truth = truth.astype(bool)
        tp = np.empty((len(grid), truth.shape[1]), dtype=np.int64)
        predicted = np.empty_like(tp)
        for g, threshold in enumerate(grid):
            chosen = probs >= threshold
            tp[g] = (chosen & truth).sum(axis=0)
            predicted[g] = chosen.sum(axis=0)
        return cls(tp, predicted, truth.sum(axis=0))

    def f1(self) -> np.ndarray:
        """Each label's F1 [grid, labels]."""
        return _f1(self.tp, self.predicted, self.positives)

    def micro_f1(self) -> np.ndarray:
        """Micro-F1 [grid] with every label at the same grid threshold: the F1 of the pooled counts."""
        return _f1(self.tp.sum(axis=1), self.predicted.sum(axis=1), self.positives.sum())

    def micro_ascent(self, start: int, free: np.ndarray, grid: np.ndarray, sweeps: int = 20) -> np.ndarray:
        """Grid indices, one per label, that raise micro-F1 one label at a time (coordinate ascent) from every
        label at ``start``; labels outside ``free`` stay there. A label moves only on a strict gain, so this
        ends; on ties it keeps its threshold."""
        labels, positives = np.arange(self.tp.shape[1]), self.positives.sum()
        chosen = np.full(len(labels), start)
        for _ in range(sweeps):
            moved = False
            for j in np.flatnonzero(free):
                others_tp = self.tp[chosen, labels].sum() - self.tp[chosen[j], j]
                others_predicted = self.predicted[chosen, labels].sum() - self.predicted[chosen[j], j]
                gain = _f1(others_tp + self.tp[:, j], others_predicted + self.predicted[:, j], positives)
                best = _best(gain, grid, float(grid[chosen[j]]))
                moved |= bool(best != chosen[j])
                chosen[j] = best
            if not moved:
                break
        return chosen


def _f1(tp: np.ndarray, predicted: np.ndarray, positives: np.ndarray | int) -> np.ndarray:
    """F1 from counts, 2 TP / (predicted + positives); 0 where nothing is predicted or given."""
    denominator = predicted + positives
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def tune_thresholds(probs: np.ndarray, truth: np.ndarray, metric: str = "macro_f1",
                    min_positives: int = MIN_POSITIVES, grid: np.ndarray = THRESHOLD_GRID) -> Thresholds:
    """Thresholds for ``metric`` on ``probs`` (dev). Labels with fewer than ``min_positives`` positives take the
    one threshold that maximises ``metric`` over all labels; each other label's threshold maximises its own F1
    (``macro_f1``: macro-F1 is their mean, so this maximises it) or, for ``micro_f1``, the micro-F1 of the whole
    set, label by label from that shared threshold (micro-F1 pools the counts, so one label's best threshold
    depends on the others'). Ties go to the threshold nearest the shared one."""
    counts = _Counts.of(probs, truth, grid)
    f1 = counts.f1()
    shared_index = _best(f1.mean(axis=1) if metric == "macro_f1" else counts.micro_f1(), grid, 0.5)
    shared = round(float(grid[shared_index]), 4)
    enough = counts.positives >= min_positives
    if metric == "micro_f1":
        indices = counts.micro_ascent(shared_index, enough, grid)
        objective = "jointly for the micro-F1 of all labels"
    else:
        indices = [_best(f1[:, j], grid, shared) if enough[j] else shared_index for j in range(truth.shape[1])]
        objective = "the F1 of each"
    values = [round(float(grid[i]), 4) for i in indices]
    how = (f"per label on {len(truth)} dev texts ({objective}); {int((~enough).sum())} label(s) with fewer than "
           f"{min_positives} positives take {shared:.2f}, the best single threshold for {metric}")
    return Thresholds(tuple(values), how)


def _best(values: np.ndarray, grid: np.ndarray, prefer: float) -> int:
    """Index of the largest value; among equal ones the grid point nearest ``prefer``."""
    top = np.flatnonzero(values >= values.max() - 1e-12)
    return int(top[np.argmin(np.abs(grid[top] - prefer))])


def masks_and_score(head: Head, probs: np.ndarray, truth: np.ndarray, metric: str,
                    thresholds: Sequence[float]) -> tuple[np.ndarray, float]:
    """The head's predicted mask with ``thresholds`` and the ``metric`` of it against the boolean ``truth``."""
    predicted = head.decide(probs, np.asarray(thresholds, dtype=np.float32))
    return predicted, score(metric, truth, predicted)


def read_thresholds(path: str | Path, labels: Sequence[str]) -> tuple[float, ...]:
    """A thresholds file: ``label<TAB>threshold`` lines, every label once (any order); returns them in label order."""
    path = Path(path)
    lines, _ = read_lines(path, "thresholds file")
    found: dict[str, float] = {}
    for line in lines:
        label, tab, value = line.text.rpartition("\t")
        where = f"{path}:{line.number}"
        if not tab:
            raise DataError(f"{where}: expected label<TAB>threshold. Write one label a line with its threshold.")
        try:
            threshold = float(value)
        except ValueError:
            raise DataError(f"{where}: threshold {value!r} is not a number; write a probability such as 0.5.") from None
        if not 0.0 <= threshold <= 1.0:
            raise DataError(f"{where}: threshold {threshold} is not a probability in [0, 1].")
        label = label.strip()
        if label not in labels:
            raise DataError(f"{where}: label {label!r} is not one of the model's labels.")
        if label in found:
            raise DataError(f"{where}: label {label!r} is given a threshold twice.")
        found[label] = threshold
    missing = [label for label in labels if label not in found]
    if missing:
        raise DataError(f"{path}: no threshold for {len(missing)} label(s), e.g. {missing[:3]}. Give every label one.")
    return tuple(found[label] for label in labels)


def write_thresholds(path: str | Path, labels: Sequence[str], thresholds: Sequence[float]) -> Path:
    """The thresholds in the file format :func:`read_thresholds` reads (to edit and pass back)."""
    path = Path(path)
    write_text(path, "".join(f"{label}\t{t:.4g}\n" for label, t in zip(labels, thresholds)))
    return path


def check_threshold_options(task: str, threshold: float | None, thresholds_file: str | None) -> None:
    """``--threshold`` and ``--thresholds_file`` are for multi-label tasks, one at a time, probabilities."""
    if threshold is None and thresholds_file is None:
        return
    if task == MULTI_CLASS:
        raise ConfigError("--threshold / --thresholds_file apply to multi_label and hierarchical models; a multi_class "
                          "model predicts its most probable label.")
    if threshold is not None and thresholds_file is not None:
        raise ConfigError("give --threshold (one for every label) or --thresholds_file (one per label), not both.")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold {threshold}: a threshold is a probability in [0, 1].")


def override_thresholds(task: TaskSpec, labels: Sequence[str], threshold: float | None,
                        thresholds_file: str | None) -> TaskSpec:
    """``task`` (a checkpoint's or an export's) with the user's thresholds, where given."""
    check_threshold_options(task.task, threshold, thresholds_file)
    if thresholds_file is not None:
        return task.with_thresholds(read_thresholds(thresholds_file, labels))
    if threshold is not None:
        return task.with_thresholds([float(threshold)] * len(labels))
    return task
