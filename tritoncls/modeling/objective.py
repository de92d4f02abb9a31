"""What a training loop optimises and how it scores dev, per task (train and prune share it).

- multi-class: cross-entropy on class ids; dev accuracy.
- multi-label and hierarchical: binary cross-entropy on multi-hot targets (a sigmoid per label); dev
  macro-F1 (or micro-F1) at per-label thresholds chosen on dev, which are saved with the checkpoint,
  unless the user fixed the thresholds. A hierarchy's dev predictions obey its rule (a path only with
  its parent), exactly as served. A new multi-label head starts from the training labels' prior
  (:meth:`Objective.init_head`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tritoncls.common import data, metrics
from tritoncls.runtime import DEFAULT_THRESHOLD, MULTI_CLASS, TaskSpec


@dataclass(frozen=True)
class DevScore:
    """A dev score (a fraction), and the task spec (thresholds included) that produced it."""

    score: float
    task: TaskSpec
    how: str = ""  # how the thresholds were chosen


class Objective:
    """Targets, loss and dev score of one task over ``labels``."""

    def __init__(self, task: str, labels: Sequence[str], metric: str | None = None,
                 thresholds: Sequence[float] | None = None) -> None:
        self.task = task
        self.labels = list(labels)
        self.metric = metrics.check_metric(task, metric)
        self.fixed = tuple(thresholds) if thresholds is not None else None
        self.multi_label = task != MULTI_CLASS
        default = (DEFAULT_THRESHOLD,) * len(self.labels) if self.multi_label else ()
        self.head = TaskSpec(task, self.fixed or default).head(self.labels)

    def targets(self, examples: list[data.Example]) -> np.ndarray:
        """int64 class ids (multi-class) or float32 multi-hot rows."""
        return data.multi_hot(examples, len(self.labels)) if self.multi_label else data.class_ids(examples)

    def init_head(self, model, targets: np.ndarray) -> bool:
        """Start a new multi-label head (its bias still all zero) at each label's prior log-odds.

        A zero bias makes every label 50% likely, while most labels are rare (GoEmotions: 4% of texts a label
        on average); the first thousand steps then only push every logit down together, through the encoder,
        before any label is told apart. Starting from the prior skips that phase (the focal-loss paper's
        initialisation, Lin et al. 2017). A head that was trained (a non-zero bias) is left alone.
        """
        bias = getattr(getattr(model, "classifier", None), "bias", None)
        if not self.multi_label or bias is None or np.any(bias.numpy() != 0):
            return False
        share = np.clip(targets.mean(axis=0), 1e-4, 1 - 1e-4)
        bias.set_value(np.log(share / (1 - share)).astype(bias.numpy().dtype))
        return True

    def loss(self):
        """The Paddle loss of logits against :meth:`targets`."""
        import paddle

        return paddle.nn.BCEWithLogitsLoss() if self.multi_label else paddle.nn.CrossEntropyLoss()

    def distillation_loss(self, logits, teacher_logits, temperature: float):
        """Soft-target loss against a teacher: cross-entropy of tempered softmaxes (multi-class), or binary
        cross-entropy against the teacher's tempered sigmoids (multi-label); scaled by t^2 either way."""
        import paddle.nn.functional as F

        t = temperature
        if self.multi_label:
            soft = F.binary_cross_entropy_with_logits(logits / t, F.sigmoid(teacher_logits / t))
        else:
            soft = -(F.softmax(teacher_logits / t, axis=-1) * F.log_softmax(logits / t, axis=-1)).sum(-1).mean()
        return soft * t * t

    def score(self, logits: np.ndarray, targets: np.ndarray) -> DevScore:
        """The dev score of ``logits``; for multi-label tasks at thresholds tuned on these very logits (or the
        fixed ones)."""
        probs = self.head.probabilities(logits)
        if not self.multi_label:
            return DevScore(metrics.score("accuracy", targets, probs.argmax(axis=1)), TaskSpec())
        if self.fixed is not None:
            thresholds, how = self.fixed, "given by the user"
        else:
            tuned = metrics.tune_thresholds(probs, targets, self.metric)
            thresholds, how = tuned.values, tuned.how
        _, value = metrics.masks_and_score(self.head, probs, targets.astype(bool), self.metric, thresholds)
        return DevScore(value, TaskSpec(self.task, tuple(thresholds)), how)
