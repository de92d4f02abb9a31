"""Data analysis before training: label balance, text lengths in tokens, truncation at
``max_seq_length``, duplicates and train/dev leakage, with a suggested ``max_seq_length``.

Label sets (``task`` multi_label or hierarchical) are counted per label (the texts that carry it), with the
number of labels per text, the texts with none, and how many distinct sets there are; a duplicate text
conflicts when its copies carry different sets (the order in the line does not matter).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common import data
from tritoncls.runtime import HIERARCHICAL, LABEL_SEPARATOR, MULTI_CLASS, depth

log = logging.getLogger(__name__)


@dataclass
class AnalyzeConfig:
    dataset_dir: str
    max_seq_length: int = 128
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    task: str = MULTI_CLASS  # what a line's label field holds
    vocab_file: str | None = None  # token lengths with this vocab; default: a vocab built from train
    report: str | None = None


def _token_lengths(texts: list[str], vocab_file: Path) -> np.ndarray:
    from tritoncls.modeling import SPECIAL_TOKENS
    from tritoncls.runtime import WordPieceTokenizer

    tokenizer = WordPieceTokenizer(vocab_file, True, dict(SPECIAL_TOKENS), max_seq_length=1_000_000)
    return np.array([len(ids) for ids in tokenizer.encode(texts)])


def _split_stats(examples: list[data.Example], labels: list[str], lengths: np.ndarray, max_len: int,
                 task: str = MULTI_CLASS) -> dict[str, Any]:
    counts = Counter(labels[i] for e in examples for i in e.label_ids)  # texts per label
    texts = [e.text for e in examples]
    duplicates = len(texts) - len(set(texts))
    conflicting = _conflicting_labels(examples)
    stats = {
        "size": len(examples),
        "label_counts": {label: counts.get(label, 0) for label in labels},
        "imbalance_ratio": max(counts.values(), default=0) / max(1, min(counts.get(label, 0) for label in labels) or 1),
        "tokens": {q: float(np.percentile(lengths, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
        "truncated_share": float((lengths > max_len).mean()),
        "duplicate_texts": duplicates,
        "conflicting_duplicates": conflicting,
    }
    if task != MULTI_CLASS:
        stats |= _set_stats(examples, labels, task)
    return stats


def _set_stats(examples: list[data.Example], labels: list[str], task: str, top: int = 10) -> dict[str, Any]:
    """Labels per text, texts without a label, distinct sets and the most frequent ones (and texts per level of
    a hierarchy: those with at least one label that deep)."""
    per_text = np.array([len(e.label_ids) for e in examples])
    sets = Counter(e.label_ids for e in examples)
    out: dict[str, Any] = {
        "labels_per_text": {"mean": float(per_text.mean()), "max": int(per_text.max()),
                            "histogram": {str(k): int(v) for k, v in sorted(Counter(per_text.tolist()).items())}},
        "texts_without_label": int((per_text == 0).sum()),
        "distinct_label_sets": len(sets),
        "top_label_sets": {LABEL_SEPARATOR.join(labels[i] for i in ids): n for ids, n in sets.most_common(top)},
    }
    if task == HIERARCHICAL:
        deepest = [max((depth(labels[i]) for i in e.label_ids), default=0) for e in examples]
        out["texts_per_level"] = {str(level): sum(1 for d in deepest if d >= level)
                                  for level in range(1, max(deepest, default=0) + 1)}
    return out


def _conflicting_labels(examples: list[data.Example]) -> int:
    seen: dict[str, set[tuple[int, ...]]] = {}
    for e in examples:
        seen.setdefault(e.text, set()).add(e.label_ids)
    return sum(1 for labels in seen.values() if len(labels) > 1)


def suggest_max_seq_length(lengths: np.ndarray) -> int:
    """The smallest power of two (>= 16) that covers 99% of the texts without truncation."""
    p99 = float(np.percentile(lengths, 99))
    size = 16
    while size < p99:
        size *= 2
    return size


def analyze(config: AnalyzeConfig) -> dict[str, Any]:
    import tempfile

    from tritoncls.modeling import build_vocab, write_vocab

    root = Path(config.dataset_dir)
    labels = data.read_labels(root / config.label_file, config.task)
    train = data.read_examples(root / config.train_file, labels, config.task)
    dev = data.read_examples(root / config.dev_file, labels, config.task) if (root / config.dev_file).is_file() else []
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(config.vocab_file) if config.vocab_file else write_vocab(build_vocab(e.text for e in train), Path(tmp))
        train_len = _token_lengths([e.text for e in train], vocab)
        dev_len = _token_lengths([e.text for e in dev], vocab) if dev else np.zeros(0)
    report: dict[str, Any] = {"labels": labels, "max_seq_length": config.max_seq_length,
                              "train": _split_stats(train, labels, train_len, config.max_seq_length, config.task)}
    if config.task != MULTI_CLASS:
        report["task"] = config.task
    if dev:
        report["dev"] = _split_stats(dev, labels, dev_len, config.max_seq_length, config.task)
        report["dev_texts_in_train"] = len({e.text for e in dev} & {e.text for e in train})
    report["suggested_max_seq_length"] = suggest_max_seq_length(train_len)
    _log(report)
    if config.report:
        Path(config.report).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _log(report: dict[str, Any]) -> None:
    for split in ("train", "dev"):
        if split not in report:
            continue
        s = report[split]
        log.info("%s: %d examples; tokens p50 %.0f p90 %.0f p99 %.0f max %.0f; %.1f%% truncated at %d; "
                 "%d duplicate texts (%d with conflicting labels)", split, s["size"], s["tokens"]["p50"],
                 s["tokens"]["p90"], s["tokens"]["p99"], s["tokens"]["max"], 100 * s["truncated_share"],
                 report["max_seq_length"], s["duplicate_texts"], s["conflicting_duplicates"])
        if "labels_per_text" in s:
            log.info("  label sets: %.2f labels per text (max %d; histogram %s); %d texts (%.1f%%) without a label; "
                     "%d distinct sets", s["labels_per_text"]["mean"], s["labels_per_text"]["max"],
                     s["labels_per_text"]["histogram"], s["texts_without_label"],
                     100 * s["texts_without_label"] / max(1, s["size"]), s["distinct_label_sets"])
            log.info("  texts per label (a text counts once for each of its labels):")
        for label, count in s["label_counts"].items():
            log.info("  %-20s %6d (%.1f%%)", label, count, 100 * count / max(1, s["size"]))
    if "dev_texts_in_train" in report:
        log.info("dev texts also in train: %d", report["dev_texts_in_train"])
    log.info("suggested --max_seq_length: %d (covers 99%% of training texts)", report["suggested_max_seq_length"])
