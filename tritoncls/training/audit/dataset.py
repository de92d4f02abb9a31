"""The labelled data an audit reads, checked for what would make an audit meaningless."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritoncls.common import data
from tritoncls.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labelled:
    """Examples of one file, with the label list they were checked against."""

    path: Path
    labels: list[str]
    examples: list[data.Example]

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def y(self) -> np.ndarray:
        return np.array([e.label_id for e in self.examples], dtype=np.int64)

    def where(self, row: int) -> str:
        """``file:line`` of example ``row``."""
        return f"{self.path}:{self.examples[row].line}"


def read_labelled(dataset_dir: str | Path, file_name: str, label_file: str, *, min_classes: int = 1) -> Labelled:
    """Read ``dataset_dir/file_name`` against ``label_file``; refuse fewer than ``min_classes`` labels in use."""
    root = Path(dataset_dir)
    labels = data.read_labels(root / label_file)
    path = root / file_name
    examples = data.read_examples(path, labels)
    used = Counter(e.label for e in examples)
    if len(used) < min_classes:
        only = ", ".join(repr(label) for label in used)
        raise DataError(
            f"{path}: every example has the label {only}; this audit compares labels and needs at least "
            f"{min_classes} different ones. Use the whole training file, not one class of it.")
    return Labelled(path=path, labels=labels, examples=examples)


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
    in training where it can); at least 2."""
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}.")
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    usable = max(2, min(folds, smallest))
    if usable < folds:
        log.warning("the smallest class has %d examples: using %d folds instead of %d", smallest, usable, folds)
    return usable
