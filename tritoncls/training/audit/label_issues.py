"""Label issues (dirty data): training texts whose given label is probably wrong.

Out-of-sample probabilities come from k-fold cross-validation (a TF-IDF linear model, a linear model on the
checkpoint's frozen mean-pooled embeddings, or fine-tuning the user's checkpoint on each k-1 folds); cleanlab's confident learning then flags the texts whose given
label the held-out model finds unlikely compared with the per-class confidence thresholds, ranked by
self-confidence (the probability of the given label). The original training file is never changed:
``write_cleaned`` writes a new one with the flagged texts relabelled or dropped; ``write_review`` writes the
flagged lines alone, for a person to re-check and correct (the reference's workflow, and the one that recovers
what corruption cost: docs/analysis.md).

Label sets (``task`` multi_label or hierarchical): the out-of-fold probabilities are one per label (one-vs-rest
TF-IDF or embedding models, or a sigmoid per label from k-fold fine-tuning), cleanlab's multi-label filter flags
the texts (per-label confident learning) ranked by its label quality score, and the suggested set is the labels
whose out-of-fold probability is at least 0.5 (cleanlab suggests none), for a hierarchy only with their parent.
Written files keep the ``text<TAB>label,label`` layout, an empty field for a text with no label.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.common import files, metrics
from tritoncls.errors import ConfigError
from tritoncls.runtime import HIERARCHICAL, MULTI_CLASS, TASKS
from tritoncls.training.audit import dataset, features, report

log = logging.getLogger(__name__)

SOURCES = ("tfidf", "embeddings", "checkpoint")
MODES = ("relabel", "drop")
SUGGEST_THRESHOLD = 0.5  # label sets: a label is suggested where its out-of-fold probability reaches this
NONE = "(none)"  # a text with no label, as the reports show it (the files leave the field empty)


@dataclass
class LabelIssuesConfig:
    dataset_dir: str
    train_file: str = "train.txt"
    label_file: str = "label.txt"
    task: str = MULTI_CLASS  # what a line's label field holds (multi_label, hierarchical: label sets)
    source: str = "tfidf"
    checkpoint: str = "./checkpoint"
    folds: int = 5
    seed: int = 3
    output: str = "./audit"
    write_cleaned: str | None = None
    mode: str = "relabel"
    write_review: str | None = None  # the flagged lines as they are, least self-confident first
    max_issues: int | None = None  # flag at most this many (the least self-confident); None: cleanlab decides
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_seq_length: int = 128
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if self.source not in SOURCES:
            raise ConfigError(f"--source {self.source!r}: choose one of {', '.join(SOURCES)}.")
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}.")
        if self.folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {self.folds}.")
        if self.write_review and self.write_cleaned and Path(self.write_review).resolve() == Path(
                self.write_cleaned).resolve():
            raise ConfigError(f"--write_review and --write_cleaned both name {self.write_review}: give the review "
                              "file its own name (e.g. train.review.txt).")
        if self.max_issues is not None and self.max_issues < 0:
            raise ConfigError(f"--max_issues must not be negative, got {self.max_issues}.")


@dataclass
class Issue:
    row: int
    where: str
    text: str
    given: str
    suggested: str
    given_probability: float  # out-of-fold probability of the given label (self-confidence)
    suggested_probability: float

    def as_row(self) -> dict[str, Any]:
        return {"where": self.where, "given": self.given, "suggested": self.suggested,
                "p_given": self.given_probability, "p_suggested": self.suggested_probability, "text": self.text}


@dataclass
class SetIssue:
    """A text whose label set is probably wrong; ``given`` and ``suggested`` are label fields as a file
    writes them (``a,b``; empty for no label)."""

    row: int
    where: str
    text: str
    given: str
    suggested: str
    given_labels: list[str]
    suggested_labels: list[str]
    quality: float  # cleanlab's label quality score of the given set (0: surely wrong, 1: surely right)
    probabilities: dict[str, float]  # out-of-fold probability of every label

    def as_row(self) -> dict[str, Any]:
        shown = [label for label in self.probabilities if label in self.given_labels or label in self.suggested_labels]
        change = [f"+{x}" for x in self.suggested_labels if x not in self.given_labels]
        change += [f"-{x}" for x in self.given_labels if x not in self.suggested_labels]
        return {"where": self.where, "given": self.given or NONE, "suggested": self.suggested or NONE,
                "change": " ".join(change) or "(same set)", "quality": self.quality,
                "p_labels": ", ".join(f"{label} {self.probabilities[label]:.2f}" for label in shown) or "-",
                "text": self.text, "given_labels": self.given_labels, "suggested_labels": self.suggested_labels,
                "probabilities": self.probabilities}


def out_of_fold_probs(config: LabelIssuesConfig, train: dataset.Labelled, folds: int) -> np.ndarray:
    """(texts, labels) probabilities, each row from a model that did not train on it."""
    if config.source == "tfidf":
        return features.tfidf_folds(train.texts, train.y, len(train.labels), folds, config.seed).oof_probs
    if config.source == "embeddings":
        from tritoncls.modeling.loop import set_device
        from tritoncls.training.audit.finetune import pooled_embeddings

        set_device(config.device)
        vectors = pooled_embeddings(config.checkpoint, train.texts, config.max_seq_length, config.batch_size)
        return features.linear_folds(vectors, train.y, len(train.labels), folds, config.seed,
                                     features.dense_model).oof_probs
    from tritoncls.training.audit.finetune import FineTune, checkpoint_folds

    return checkpoint_folds(FineTune(config.checkpoint, config.epochs, config.batch_size, config.learning_rate,
                                     config.max_seq_length, config.device, config.task), train.texts, train.y, len(train.labels), folds,
                            config.seed).oof_probs


def rank_issues(y: np.ndarray, probs: np.ndarray, max_issues: int | None = None) -> np.ndarray:
    """Row indices flagged by confident learning, least self-confident first (at most ``max_issues``)."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
    return np.asarray(ranked[:max_issues] if max_issues is not None else ranked, dtype=np.int64)


def rank_set_issues(label_sets: list[list[int]], probs: np.ndarray,
                    max_issues: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label set cleanlab's multi-label confident learning flags, lowest label quality first (at most
    ``max_issues``), and every row's label quality score."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    ranked = find_label_issues(labels=label_sets, pred_probs=probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(label_sets, probs)
    ranked = np.asarray(ranked[:max_issues] if max_issues is not None else ranked, dtype=np.int64)
    return ranked, np.asarray(quality, dtype=np.float64)


def _warn_if_trained_on(directory: Path, train_path: Path) -> None:
    """A checkpoint fine-tuned on this very file has seen every held-out fold's labels: its probabilities are
    not out of sample, and confident learning then misses the errors it memorised."""
    from tritoncls.modeling import checkpoint as ckpt

    config_path = directory / "training_config.json"
    if not config_path.is_file():
        return
    trained = ckpt.read_json(config_path)
    source = Path(str(trained.get("dataset_dir", ""))) / str(trained.get("train_file", "train.txt"))
    if source.is_file() and source.resolve() == train_path.resolve():
        log.warning("%s was trained on %s itself: each fold starts from weights that saw its labels, so mislabeled "
                    "texts it memorised look right. Prefer a pretrained or imported model, or one trained on other "
                    "data.", directory, train_path)


def find_issues(train: dataset.Labelled, probs: np.ndarray, max_issues: int | None = None) -> list[Issue] | list[SetIssue]:
    if train.multi_label:
        return find_set_issues(train, probs, max_issues)
    issues = []
    for row in rank_issues(train.y, probs, max_issues):
        suggested = int(probs[row].argmax())
        example = train.examples[row]
        issues.append(Issue(row=int(row), where=train.where(int(row)), text=example.text, given=example.label,
                            suggested=train.labels[suggested], given_probability=float(probs[row, example.label_id]),
                            suggested_probability=float(probs[row, suggested])))
    return issues


def suggested_sets(train: dataset.Labelled, probs: np.ndarray) -> np.ndarray:
    """bool [texts, labels]: the labels whose out-of-fold probability reaches SUGGEST_THRESHOLD (a hierarchy's
    paths only with their parent, so a written file stays consistent)."""
    return train.head(SUGGEST_THRESHOLD).decide(probs.astype(np.float32))


def find_set_issues(train: dataset.Labelled, probs: np.ndarray, max_issues: int | None = None) -> list[SetIssue]:
    ranked, quality = rank_set_issues(train.label_sets, probs, max_issues)
    suggested = suggested_sets(train, probs)
    issues = []
    for row in (int(r) for r in ranked):
        example = train.examples[row]
        ids = np.flatnonzero(suggested[row]).tolist()
        issues.append(SetIssue(row=row, where=train.where(row), text=example.text, given=example.label,
                               suggested=train.field(ids), given_labels=[train.labels[i] for i in example.label_ids],
                               suggested_labels=[train.labels[i] for i in ids], quality=float(quality[row]),
                               probabilities={label: float(p) for label, p in zip(train.labels, probs[row])}))
    return issues


def cleaned_lines(train: dataset.Labelled, issues: list[Issue] | list[SetIssue], mode: str) -> list[str]:
    """The training file's lines with each flagged text relabelled (to its suggestion) or dropped."""
    flagged = {issue.row: issue for issue in issues}
    lines = []
    for row, example in enumerate(train.examples):
        issue = flagged.get(row)
        if issue is not None and mode == "drop":
            continue
        label = issue.suggested if issue is not None else example.label
        lines.append(f"{example.text}\t{label}")
    return lines


def review_lines(train: dataset.Labelled, issues: list[Issue] | list[SetIssue]) -> list[str]:
    """The flagged training lines with their given label, least self-confident first: a file in the training
    format for a person to re-check, correct the label where it is wrong, and append to the unflagged lines."""
    return [f"{issue.text}\t{issue.given}" for issue in issues]


def label_issues(config: LabelIssuesConfig) -> dict[str, Any]:
    """Flag probable label errors in the training file; write the reports (and a cleaned or review file if asked)."""
    train = dataset.read_labelled(config.dataset_dir, config.train_file, config.label_file, min_classes=2,
                                  task=config.task)
    for option, path, example in (("--write_cleaned", config.write_cleaned, "cleaned"),
                                  ("--write_review", config.write_review, "review")):
        if path:
            report.refuse_original(Path(path), [train.path], option, example)
    if config.source == "checkpoint":
        from tritoncls.modeling import checkpoint as ckpt

        directory = ckpt.resolve_checkpoint(config.checkpoint)
        dataset.check_checkpoint_labels(directory, train.labels, Path(config.dataset_dir) / config.label_file)
        _warn_if_trained_on(directory, train.path)
    if config.source == "embeddings":  # only the encoder is used: any classifier head (or none) will do
        from tritoncls.modeling import checkpoint as ckpt

        _warn_if_trained_on(ckpt.resolve_checkpoint(config.checkpoint), train.path)
    started = time.perf_counter()
    folds = dataset.fold_count(train.y, config.folds)
    probs = out_of_fold_probs(config, train, folds)
    issues = find_issues(train, probs, config.max_issues)
    seconds = time.perf_counter() - started
    result = _table(config, train, probs, issues, seconds, folds)
    paths = report.write_reports(config.output, "label_issues", result)
    if config.write_cleaned:
        lines = cleaned_lines(train, issues, config.mode)
        files.write_text(config.write_cleaned, "\n".join(lines) + "\n")
        log.info("Wrote %d training lines (%d %s) to %s", len(lines), len(issues),
                 "relabelled" if config.mode == "relabel" else "dropped", config.write_cleaned)
    if config.write_review:
        files.write_text(config.write_review, "".join(line + "\n" for line in review_lines(train, issues)))
        log.info("Wrote the %d flagged lines to %s for review: correct the labels there, then append the file to "
                 "the unflagged lines (--write_cleaned FILE --mode drop)", len(issues), config.write_review)
    log.info("%d of %d training texts flagged as probably mislabeled (%s, %d folds, %.1f s)",
             len(issues), len(train.examples), config.source, folds, seconds)
    return result.data | {"rows": result.rows, "paths": {k: str(v) for k, v in paths.items()}}


def _table(config: LabelIssuesConfig, train: dataset.Labelled, probs: np.ndarray, issues: list[Issue] | list[SetIssue],
           seconds: float, folds: int) -> report.Table:
    if train.multi_label:
        return _set_table(config, train, probs, issues, seconds, folds)
    rows = [{"rank": rank} | issue.as_row() for rank, issue in enumerate(issues, start=1)]
    accuracy = float((probs.argmax(1) == train.y).mean())
    summary = [f"{train.path}: {len(train.examples)} texts, {len(train.labels)} labels",
               f"probabilities: {config.source}, {folds}-fold cross-validation (out-of-fold accuracy "
               f"{100 * accuracy:.1f}%), {seconds:.1f} s",
               f"flagged by confident learning (cleanlab): {len(issues)}, ranked by the probability of the given label",
               "p_given: out-of-fold probability of the given label; p_suggested: of the suggested label"]
    data = {"train_file": str(train.path), "source": config.source, "folds": folds, "seed": config.seed,
            "texts": len(train.examples), "flagged": len(issues), "out_of_fold_accuracy": accuracy,
            "seconds": seconds}
    return report.Table("Label issues", summary, ["rank", "where", "given", "suggested", "p_given", "p_suggested",
                                                  "text"], rows, data)


def _set_table(config: LabelIssuesConfig, train: dataset.Labelled, probs: np.ndarray, issues: list[SetIssue],
               seconds: float, folds: int) -> report.Table:
    rows = [{"rank": rank} | issue.as_row() for rank, issue in enumerate(issues, start=1)]
    scores = metrics.set_scores(train.y.astype(bool), suggested_sets(train, probs))
    same = sum(1 for issue in issues if issue.suggested_labels == issue.given_labels)
    summary = [f"{train.path}: {len(train.examples)} texts, {len(train.labels)} labels ({config.task}: label sets)",
               f"probabilities: {config.source}, one per label, {folds}-fold cross-validation (out-of-fold micro-F1 "
               f"{scores['micro_f1']:.1f}%, macro-F1 {scores['macro_f1']:.1f}% at {SUGGEST_THRESHOLD}), {seconds:.1f} s",
               f"flagged by multi-label confident learning (cleanlab): {len(issues)}, ranked by label quality "
               f"(lowest first); {same} of them keep their given set as the suggestion (every label is on the "
               f"given side of {SUGGEST_THRESHOLD}: doubtful rather than contradicted)",
               f"suggested: the labels whose out-of-fold probability is at least {SUGGEST_THRESHOLD}"
               + (", each path only with its parent" if train.task == HIERARCHICAL else "")
               + f"; {NONE}: no label; p_labels: out-of-fold probability of each label given or suggested"]
    data = {"train_file": str(train.path), "task": config.task, "source": config.source, "folds": folds,
            "seed": config.seed, "texts": len(train.examples), "flagged": len(issues),
            "out_of_fold_micro_f1": scores["micro_f1"], "out_of_fold_macro_f1": scores["macro_f1"],
            "suggest_threshold": SUGGEST_THRESHOLD, "seconds": seconds}
    return report.Table("Label issues", summary, ["rank", "where", "given", "suggested", "change", "quality",
                                                  "p_labels", "text"], rows, data)
