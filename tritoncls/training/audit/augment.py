"""Augmentation that works offline, for Chinese and English: swap, delete and insert of units (characters
inside CJK text, where words are not separated; words elsewhere). Inserted units are drawn from the
training corpus by frequency, so they are in-vocabulary.

No synonym substitution: ``paddlenlp.dataaug`` (WordSubstitute, and the word-level swap/delete/insert
that share its base) downloads its stop-word and synonym files from bj.bcebos.com on first use, and no
installed package ships a synonym resource. Deterministic for a given seed.

An augmented text takes its source line's label field as it is, so multi-label (``a,b``, or empty) and
hierarchical lines (every path with its parent) keep their layout.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common import files
from tritoncls.errors import ConfigError
from tritoncls.runtime import MULTI_CLASS, TASKS
from tritoncls.training.audit import dataset, features, report

log = logging.getLogger(__name__)

METHODS = ("swap", "delete", "insert")
TARGETS = ("sparse", "all")
_CJK_UNITS = re.compile(r"[A-Za-z0-9_]+|\s+|.", re.DOTALL)


@dataclass
class AugmentConfig:
    dataset_dir: str
    output: str  # the new training file: the original lines, then the augmented ones
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    task: str = MULTI_CLASS  # what a line's label field holds; augmented lines copy it
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    copies: int = 2  # augmented texts per target text, methods taken in turn
    ratio: float = 0.1  # share of a text's units changed (at least one)
    targets: str = "sparse"
    top: int = 100  # with targets=sparse: the least supported dev texts whose neighbours are augmented
    neighbours: int = 5
    seed: int = 3
    report: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: choose one of {', '.join(TASKS)}.")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"--methods {' '.join(self.methods)}: choose one or more of {', '.join(METHODS)}.")
        if self.targets not in TARGETS:
            raise ConfigError(f"--targets {self.targets!r}: choose one of {', '.join(TARGETS)}.")
        if self.copies < 1 or self.top < 1 or self.neighbours < 1:
            raise ConfigError("--copies, --top and --neighbours must be at least 1.")
        if not 0 < self.ratio <= 1:
            raise ConfigError(f"--ratio must be in (0, 1], got {self.ratio}.")


def split_units(text: str) -> tuple[list[str], str]:
    """A text's units and the string that joins them back: characters (ASCII words kept whole, spaces kept
    as units) inside CJK text; words otherwise."""
    if features.is_cjk(text):
        return _CJK_UNITS.findall(text), ""
    return text.split(), " "


def _editable(units: list[str]) -> list[int]:
    return [i for i, unit in enumerate(units) if not unit.isspace()]


class Augmenter:
    """Swap, delete and insert units; inserted units drawn from ``corpus`` by frequency."""

    def __init__(self, corpus: Sequence[str], ratio: float, seed: int) -> None:
        counts: Counter[str] = Counter()
        for text in corpus:
            counts.update(u for u in split_units(text)[0] if not u.isspace())
        self.vocab = list(counts)
        self.weights = np.array([counts[u] for u in self.vocab], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.ratio = ratio
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)

    def augment(self, text: str, method: str) -> str:
        units, joiner = split_units(text)
        edits = max(1, round(self.ratio * len(_editable(units))))
        for _ in range(edits):
            units = getattr(self, f"_{method}")(units)
        return joiner.join(units)

    def _swap(self, units: list[str]) -> list[str]:
        editable = _editable(units)
        if len(editable) < 2:
            return units
        k = self.rng.randrange(len(editable) - 1)
        i, j = editable[k], editable[k + 1]
        units = list(units)
        units[i], units[j] = units[j], units[i]
        return units

    def _delete(self, units: list[str]) -> list[str]:
        editable = _editable(units)
        if len(editable) < 2:
            return units
        drop = self.rng.choice(editable)
        return units[:drop] + units[drop + 1:]

    def _insert(self, units: list[str]) -> list[str]:
        unit = self.vocab[int(self.np_rng.choice(len(self.vocab), p=self.weights))]
        at = self.rng.randrange(len(units) + 1)
        return units[:at] + [unit] + units[at:]


def augment_texts(augmenter: Augmenter, texts: Sequence[str], methods: Sequence[str], copies: int) -> list[tuple[int, str, str]]:
    """Up to ``copies`` new texts per text (methods in turn), each differing from every text seen so far.
    Returns (source row, method, new text)."""
    seen = set(texts)
    out = []
    for row, text in enumerate(texts):
        for copy in range(copies):
            method = methods[(row + copy) % len(methods)]
            new = augmenter.augment(text, method)
            if new.strip() and new not in seen:
                seen.add(new)
                out.append((row, method, new))
    return out


def sparse_targets(train_texts: Sequence[str], queries: Sequence[str], top: int, neighbours: int) -> np.ndarray:
    """Training rows that support the ``top`` least supported queries (by similarity, as ``sparse`` ranks them by
    default; no labels needed): their ``neighbours`` nearest."""
    from tritoncls.training.audit import sparse

    space = sparse.tfidf_space(list(train_texts) + list(queries))
    similarity, nearest = sparse.knn(space.transform(train_texts), space.transform(queries), neighbours)
    least = np.argsort(similarity, kind="stable")[:min(top, len(queries))]
    return np.unique(nearest[least].ravel())


def augment(config: AugmentConfig) -> dict[str, Any]:
    """Write the training file plus augmented copies of the target texts to ``config.output``."""
    train = dataset.read_labelled(config.dataset_dir, config.train_file, config.label_file,
                                  min_classes=2 if config.targets == "sparse" else 1, task=config.task)
    report.refuse_original(Path(config.output), [train.path], "--output", "augmented")
    if config.targets == "all":
        rows = np.arange(len(train.examples))
    else:
        dev = dataset.read_labelled(config.dataset_dir, config.dev_file, config.label_file, task=config.task)
        rows = sparse_targets(train.texts, dev.texts, config.top, config.neighbours)
    augmenter = Augmenter(train.texts, config.ratio, config.seed)
    new = augment_texts(augmenter, [train.texts[r] for r in rows], config.methods, config.copies)
    lines = [f"{e.text}\t{e.label}" for e in train.examples]
    lines += [f"{text}\t{train.examples[rows[src]].label}" for src, _, text in new]
    files.write_text(config.output, "\n".join(lines) + "\n")
    counts = Counter(method for _, method, _ in new)
    log.info("Wrote %s: %d original + %d augmented texts (of %d targets, %s; %s)", config.output,
             len(train.examples), len(new), len(rows), config.targets, dict(counts))
    result = {"output": config.output, "original": len(train.examples), "targets": int(len(rows)),
              "augmented": len(new), "methods": dict(counts),
              "examples": [{"source": train.where(int(rows[src])), "method": m, "text": t} for src, m, t in new]}
    if config.report:
        files.write_text(config.report, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
