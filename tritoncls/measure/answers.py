"""What a classifier answered, in a form the served ensemble and the in-process runs share, for any task.

A multi-class answer is one label name; a multi-label or hierarchical answer is the tuple of predicted
label names in label order (empty when no label reaches its threshold). Every benchmark that compares
served answers with in-process ones, or scores them against labelled texts (``bench``, ``tune``'s INT8
floor, ``soak``'s reference, the served GPU run), goes through these functions, so each reads the task
from the export's manifest and none assumes one label per text.

- in-process answers come from the export's :class:`~tritoncls.runtime.Head` on the logits: exactly what
  :meth:`~tritoncls.runtime.Predictor.predict_probs` decides (``mask``, read through ``label_sets``);
- served answers come from the client's results: ``Prediction.label`` or ``LabelSetPrediction.names``;
- scores use the task's default metric (:func:`tritoncls.common.metrics.default_metric`): accuracy for
  multi-class, macro-F1 for multi-label and hierarchical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tritoncls.clients.base import LabelSetPrediction, Prediction
from tritoncls.common import metrics
from tritoncls.runtime import Manifest
from tritoncls.runtime.task import LABEL_SEPARATOR, label_sets

Answer = str | tuple[str, ...]


def metric(manifest: Manifest) -> str:
    """The metric the benchmarks score this export's task with: ``accuracy`` or ``macro_f1``."""
    return metrics.default_metric(manifest.task.task)


def mask_answers(manifest: Manifest, mask: np.ndarray) -> list[Answer]:
    """Answers of a predicted mask [texts, labels] (a Predictor's ``predict_probs(...).mask``)."""
    names = manifest.labels
    sets = label_sets(mask)
    if manifest.task.multi_label:
        return [tuple(names[i] for i in ids) for ids in sets]
    return [names[ids[0]] for ids in sets]


def inprocess_answers(manifest: Manifest, logits: np.ndarray) -> list[Answer]:
    """Answers the export's head gives in-process logits (softmax + argmax, or sigmoid + thresholds)."""
    return mask_answers(manifest, manifest.head().predict(logits)[1])


def served_answers(predictions: Sequence[Prediction | LabelSetPrediction]) -> list[Answer]:
    """Answers of the served ensemble's results, as the client returns them."""
    return [p.names if isinstance(p, LabelSetPrediction) else p.label for p in predictions]


def agreement(a: Sequence[Answer], b: Sequence[Answer]) -> float:
    """The share of positions where ``a`` and ``b`` give the same answer (a whole label set for multi-label)."""
    return float(np.mean([x == y for x, y in zip(a, b)])) if a and b else 0.0


def field_labels(manifest: Manifest, field: str) -> list[str]:
    """The label names of one label field, as the export's task reads it (``a,b`` is two labels only there)."""
    if not manifest.task.multi_label:
        return [field]
    return [part.strip() for part in field.split(LABEL_SEPARATOR)] if field else []


def unknown_labels(manifest: Manifest, fields: Sequence[str | None]) -> list[str]:
    """Names in ``fields`` that are not labels of the export, sorted."""
    known = set(manifest.labels)
    return sorted({name for field in fields if field is not None for name in field_labels(manifest, field)} - known)


def truth(manifest: Manifest, fields: Sequence[str | None] | None) -> np.ndarray | None:
    """The gold labels of ``text<TAB>label`` fields: class ids (multi-class) or a bool mask [texts, labels]
    (``label,label,...``; an empty field is a text with no label). None when a line has no label field or
    names a label this export does not have: such texts cannot score this model."""
    if fields is None or any(field is None for field in fields) or unknown_labels(manifest, fields):
        return None
    index = {label: i for i, label in enumerate(manifest.labels)}
    if not manifest.task.multi_label:
        return np.array([index[field] for field in fields], dtype=np.int64)
    mask = np.zeros((len(fields), len(index)), dtype=bool)
    for row, field in enumerate(fields):
        mask[row, [index[name] for name in field_labels(manifest, field)]] = True
    return mask


def _predicted(manifest: Manifest, answers: Sequence[Answer]) -> np.ndarray:
    index = {label: i for i, label in enumerate(manifest.labels)}
    if not manifest.task.multi_label:
        return np.array([index.get(a, -1) for a in answers], dtype=np.int64)
    mask = np.zeros((len(answers), len(index)), dtype=bool)
    for row, names in enumerate(answers):
        for name in names:
            if name in index:
                mask[row, index[name]] = True
    return mask


def score(manifest: Manifest, gold: np.ndarray, answers: Sequence[Answer]) -> float:
    """The task's metric (a fraction) of ``answers`` against ``gold`` (from :func:`truth`)."""
    return metrics.score(metric(manifest), gold[:len(answers)], _predicted(manifest, answers))


def max_probability_diff(manifest: Manifest, predictions: Sequence[LabelSetPrediction], probs: np.ndarray) -> float:
    """The largest |served - in-process| probability over the labels each served answer names (multi-label)."""
    index = {label: i for i, label in enumerate(manifest.labels)}
    diffs = [abs(p - float(probs[row, index[name]])) for row, prediction in enumerate(predictions)
             for name, p in prediction.labels if name in index]
    return max(diffs, default=0.0)


def mean_labels(answers: Sequence[Answer]) -> float:
    """Labels per text in label-set answers (how much the multi-label postprocess had to return)."""
    return float(np.mean([len(a) for a in answers])) if answers else 0.0
