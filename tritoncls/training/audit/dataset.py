"""The labelled data an audit reads, checked for what would make an audit meaningless."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritoncls.common import data
from tritoncls.errors import ConfigError, DataError
from tritoncls.runtime import HIERARCHICAL, LABEL_SEPARATOR, MULTI_CLASS, TaskSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labelled:
    """Examples of one file, with the label list they were checked against and the task they were read as."""

    path: Path
    labels: list[str]
    examples: list[data.Example]
    task: str = MULTI_CLASS

    @property
    def multi_label(self) -> bool:
        """Label sets (multi-label and hierarchical data) rather than one label a text."""
        return self.task != MULTI_CLASS

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def y(self) -> np.ndarray:
        """int64 [n] class ids (multi-class), or int64 [n, labels] multi-hot rows (label sets)."""
        if self.multi_label:
            return data.multi_hot(self.examples, len(self.labels)).astype(np.int64)
        return data.class_ids(self.examples)

    @property
    def label_sets(self) -> list[list[int]]:
        """The label ids of each text (one each for multi-class data)."""
        return [list(e.label_ids) for e in self.examples]

    def field(self, label_ids) -> str:
        """The label field of a line with these labels (``a,b`` in label order; empty for none)."""
        return LABEL_SEPARATOR.join(self.labels[i] for i in sorted(label_ids))

    def head(self, threshold: float = 0.5):
        """The task's head with one threshold for every label (a hierarchy's paths only with their parent)."""
        thresholds = (threshold,) * len(self.labels) if self.multi_label else ()
        return TaskSpec(self.task, thresholds).head(self.labels)

    def where(self, row: int) -> str:
        """``file:line`` of example ``row``."""
        return f"{self.path}:{self.examples[row].line}"


def read_labelled(dataset_dir: str | Path, file_name: str, label_file: str, *, min_classes: int = 1,
                  task: str = MULTI_CLASS) -> Labelled:
    """Read ``dataset_dir/file_name`` against ``label_file`` as ``task`` data; refuse fewer than ``min_classes``
    labels (label sets, for multi-label data) in use."""
    root = Path(dataset_dir)
    labels = data.read_labels(root / label_file, task)
    path = root / file_name
    examples = data.read_examples(path, labels, task)
    used = Counter(e.label_ids for e in examples)
    if len(used) < min_classes:
        if task == MULTI_CLASS:
            what = "the label " + ", ".join(repr(labels[ids[0]]) for ids in used)
        else:
            what = "the label set " + ", ".join(repr(LABEL_SEPARATOR.join(labels[i] for i in ids)) for ids in used)
        raise DataError(
            f"{path}: every example has {what}; this audit compares labels and needs at least "
            f"{min_classes} different {'ones' if task == MULTI_CLASS else 'label sets'}. Use the whole training file, "
            f"not one class of it.")
    if task == HIERARCHICAL:
        log.info("%s: hierarchical paths are audited as labels of their own (every level listed)", path)
    return Labelled(path=path, labels=labels, examples=examples, task=task)


def check_checkpoint_labels(checkpoint: Path, labels: list[str], label_file: Path) -> None:
    """Refuse a checkpoint whose ``label.txt`` differs from the data set's labels."""
    from tritoncls.modeling import checkpoint as ckpt

    saved = ckpt.saved_labels(checkpoint)
    if saved is not None and saved != labels:
        extra = sorted(set(saved) ^ set(labels))
        detail = f"labels only in one of them: {extra}" if extra else "same labels in another order"
        raise ConfigError(
            f"{checkpoint / 'label.txt'} disagrees with {label_file} ({detail}). Use the checkpoint trained on this "
            f"data set's labels, or the label file it was trained with.")


def fold_count(y: np.ndarray, folds: int) -> int:
    """``folds``, or fewer when the smallest class has fewer examples (each fold must see every class
    in training where it can); at least 2. For label sets (multi-hot ``y``) the rarest label in use counts,
    and no more folds than texts."""
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}.")
    if y.ndim == 2:
        positives = y.sum(axis=0)
        smallest = int(positives[positives > 0].min()) if positives.any() else len(y)
        usable = max(2, min(folds, len(y)))
        if smallest < usable:
            log.warning("the rarest label has %d texts: some folds train without it (its out-of-fold probability "
                        "is then the fold's constant)", smallest)
        return usable
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    usable = max(2, min(folds, smallest))
    if usable < folds:
        log.warning("the smallest class has %d examples: using %d folds instead of %d", smallest, usable, folds)
    return usable
