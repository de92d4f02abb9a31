"""Evaluate a checkpoint on train and dev.

Multi-class: accuracy, top-k, per-class precision/recall/F1, bad cases, a confusion matrix. Multi-label and
hierarchical (the checkpoint's ``task.json`` says which): micro and macro precision/recall/F1, subset
accuracy, per-label counts and scores, for hierarchies the same per level, and bad cases with the given
and predicted label sets; at the checkpoint's thresholds, or ``--threshold`` / ``--thresholds_file``, or at
thresholds tuned here on the dev file for ``--metric`` and written to ``--tune_thresholds`` (for ``export
--thresholds_file``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls import modeling
from tritoncls.common import data, metrics
from tritoncls.errors import ConfigError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.runtime import LABEL_SEPARATOR, MULTI_CLASS, Head, label_sets

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    dataset_dir: str
    checkpoint: str = "./checkpoint"
    device: str = "cpu"
    max_seq_length: int = 128
    batch_size: int = 32
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    bad_case_path: str = "./bad_case.txt"
    confusion_matrix_path: str | None = "./confusion_matrix.png"
    report: str | None = None
    threshold: float | None = None  # multi-label: one threshold for every label instead of the checkpoint's
    thresholds_file: str | None = None  # multi-label: label<TAB>threshold lines instead of the checkpoint's
    tune_thresholds: str | None = None  # multi-label: tune thresholds on the dev file, write them to this file
    metric: str | None = None  # what --tune_thresholds maximises; default the checkpoint's (task.json)


def topk_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def per_class(pred: np.ndarray, y: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """Count, share, precision, recall and F1 (in percent) for every label."""
    rows = []
    for i, label in enumerate(labels):
        tp = int(((pred == i) & (y == i)).sum())
        predicted, actual = int((pred == i).sum()), int((y == i).sum())
        precision = 100.0 * tp / predicted if predicted else 0.0
        recall = 100.0 * tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"label": label, "count": actual, "share": 100.0 * actual / max(len(y), 1),
                     "precision": precision, "recall": recall, "f1": f1})
    return rows


def confusion(pred: np.ndarray, y: np.ndarray, num_labels: int) -> np.ndarray:
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Run the checkpoint over train and dev; write bad cases, the confusion matrix and JSON."""
    import paddle

    paddle.set_device(config.device)
    directory = ckpt.resolve_checkpoint(config.checkpoint)
    task = ckpt.saved_task(directory)
    label_path = Path(config.dataset_dir) / config.label_file
    labels = data.read_labels(label_path, task.task)
    metric = _tuning_metric(config, task.task, directory)
    model = modeling.load_checkpoint_model(directory)
    modeling.check_label_count(model, labels, directory, label_path)
    task = metrics.override_thresholds(task, labels, config.threshold, config.thresholds_file)
    scored = _probabilities(config, model, modeling.load_tokenizer(directory), task.head(labels))
    tuned = None
    if metric is not None:
        examples, probs = scored["dev"]
        tuned = _tune(config, metric, labels, probs, data.multi_hot(examples, len(labels)))
        task = task.with_thresholds(tuned.values)
    head = task.head(labels)
    report: dict[str, Any] = {"checkpoint": str(directory), "labels": labels, **task.to_dict(), "splits": {},
                              "dev_file": config.dev_file}
    if tuned is not None:
        report["tuned_thresholds"] = {"metric": metric, "how": tuned.how, "file": config.tune_thresholds}
    for split, (examples, probs) in scored.items():
        mask = head.decide(probs)
        if task.multi_label:
            report["splits"][split] = _label_set_report(head, mask, data.multi_hot(examples, len(labels)))
        else:
            report["splits"][split] = _split_report(probs, data.class_ids(examples), labels)
        if split == "dev":
            _write_bad_cases(Path(config.bad_case_path), examples, probs, mask, labels, task.multi_label)
            if config.confusion_matrix_path and not task.multi_label:
                plot_confusion(confusion(probs.argmax(1), data.class_ids(examples), len(labels)), labels,
                               Path(config.confusion_matrix_path))
    (_log_label_set_report if task.multi_label else _log_report)(report)
    if config.report:
        Path(config.report).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _probabilities(config: EvaluateConfig, model, tokenizer, head: Head) -> dict[str, tuple[list, np.ndarray]]:
    """The examples and the model's probabilities of train (where the file exists) and dev."""
    scored = {}
    for split, name in (("train", config.train_file), ("dev", config.dev_file)):
        path = Path(config.dataset_dir) / name
        if split == "train" and not path.is_file():
            log.warning("%s not found: per-class figures cover dev only", path)
            continue
        examples = data.read_examples(path, list(head.labels), head.spec.task)
        enc = encode(tokenizer, [e.text for e in examples], config.max_seq_length)
        logits = predict_logits(model, enc, config.batch_size, progress=True, desc=f"evaluate {split}")
        scored[split] = examples, head.probabilities(logits)
    return scored


def _tuning_metric(config: EvaluateConfig, task: str, directory: Path) -> str | None:
    """The metric ``--tune_thresholds`` maximises (None: no tuning), after checking the options fit."""
    if config.tune_thresholds is None:
        if config.metric is not None:
            raise ConfigError("--metric says what --tune_thresholds maximises; give --tune_thresholds FILE with it.")
        return None
    if task == MULTI_CLASS:
        raise ConfigError("--tune_thresholds applies to multi_label and hierarchical checkpoints; a multi_class "
                          "model predicts its most probable label.")
    if config.threshold is not None or config.thresholds_file is not None:
        raise ConfigError("--tune_thresholds chooses the thresholds itself: drop --threshold / --thresholds_file.")
    return metrics.check_metric(task, config.metric or ckpt.saved_metric(directory))


def _tune(config: EvaluateConfig, metric: str, labels: list[str], probs: np.ndarray,
          truth: np.ndarray) -> metrics.Thresholds:
    """Thresholds for ``metric`` on the dev probabilities, written to ``--tune_thresholds``."""
    tuned = metrics.tune_thresholds(probs, truth, metric)
    path = metrics.write_thresholds(config.tune_thresholds, labels, tuned.values)
    log.info("Thresholds tuned for %s on %s: %s. Wrote %s; serve them with `tritoncls export --thresholds_file %s`. "
             "The dev scores below are at these thresholds, chosen on the same texts: expect test to score lower.",
             metric, config.dev_file, tuned.how, path, path)
    return tuned


def _split_report(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    pred = probs.argmax(1)
    return {
        "size": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "top2_accuracy": topk_accuracy(probs, y, 2),
        "top3_accuracy": topk_accuracy(probs, y, 3),
        "per_class": per_class(pred, y, labels),
        "confusion_matrix": confusion(pred, y, len(labels)).tolist(),
    }


def _label_set_report(head: Head, predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Set scores over all labels, each label's, and for a hierarchy each level's (percent)."""
    scores = metrics.set_scores(truth, predicted)
    for row, label, threshold in zip(scores["per_label"], head.labels, head.spec.thresholds):
        row.update(label=label, threshold=threshold)
    if head.spec.hierarchical:
        scores["levels"] = metrics.level_scores(truth, predicted, head.labels, head.spec.hierarchy_separator)
        for level in scores["levels"]:
            level.pop("per_label")
    return scores


def _write_bad_cases(path: Path, examples, probs: np.ndarray, mask: np.ndarray, labels: list[str],
                     multi: bool) -> None:
    """The dev texts whose prediction differs from the given label(s). Multi-class rows:
    ``Confidence<TAB>Prediction<TAB>Label<TAB>Text``; multi-label rows: the predicted set, its probabilities
    and the given set, each comma-separated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("Prediction\tConfidences\tLabel\tText\n" if multi else "Confidence\tPrediction\tLabel\tText\n")
        for example, row, chosen in zip(examples, probs, label_sets(mask)):
            if tuple(chosen) == example.label_ids:
                continue
            count += 1
            if not multi:
                out.write(f"{row[chosen[0]]:.2f}\t{labels[chosen[0]]}\t{example.label}\t{example.text}\n")
                continue
            names = LABEL_SEPARATOR.join(labels[i] for i in chosen)
            given = LABEL_SEPARATOR.join(labels[i] for i in example.label_ids)
            out.write(f"{names}\t{LABEL_SEPARATOR.join(f'{row[i]:.2f}' for i in chosen)}\t{given}\t{example.text}\n")
    log.info("Wrote %d bad cases to %s", count, path)


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    cjk = [f.name for f in font_manager.fontManager.ttflist if any(k in f.name for k in ("CJK", "WenQuanYi", "Hei", "Ming"))]
    if cjk:
        plt.rcParams["font.sans-serif"] = cjk[:1] + plt.rcParams["font.sans-serif"]
    names = labels if cjk or all(label.isascii() for label in labels) else [f"#{i}" for i in range(len(labels))]
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                color="white" if value > matrix.max() / 2 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    log.info("Wrote confusion matrix to %s%s", path, "" if names is labels else " (labels as #index: no CJK font)")


def _log_report(report: dict[str, Any]) -> None:
    splits = report["splits"]
    for split, numbers in splits.items():
        log.info("%s: %d examples", split, numbers["size"])
    dev, scored = splits["dev"], _scored_file(report)
    log.info("Accuracy in dev dataset%s: %.2f%%", scored, 100 * dev["accuracy"])
    log.info("Top-2 accuracy in dev dataset%s: %.2f%%", scored, 100 * dev["top2_accuracy"])
    log.info("Top-3 accuracy in dev dataset%s: %.2f%%", scored, 100 * dev["top3_accuracy"])
    for i, label in enumerate(report["labels"]):
        log.info("Class name: %s", label)
        for split, numbers in splits.items():
            row = numbers["per_class"][i]
            log.info("  %s: %d (%.1f%%) | precision %.2f | recall %.2f | F1 %.2f",
                     split, row["count"], row["share"], row["precision"], row["recall"], row["f1"])


def _scored_file(report: dict[str, Any]) -> str:
    """`` (test.txt)`` where ``--dev_file`` named another file than dev.txt: the reference's wording says "dev"."""
    return "" if report["dev_file"] == "dev.txt" else f" ({report['dev_file']})"


def _log_label_set_report(report: dict[str, Any]) -> None:
    """What the reference's multi-label and hierarchical evaluations print, and subset accuracy."""
    for split, numbers in report["splits"].items():
        log.info("%s: %d examples", split, numbers["size"])
    dev = report["splits"]["dev"]
    _log_set_scores(f"dev{_scored_file(report)}", dev)
    for level in dev.get("levels", []):
        log.info("Level %d Label Performance (%d labels):", level["level"], len(level["labels"]))
        _log_set_scores(f"  level {level['level']}", level)
    for i, label in enumerate(report["labels"]):
        log.info("Label: %s (threshold %.2f)", label, report["thresholds"][i])
        for split, numbers in report["splits"].items():
            row = numbers["per_label"][i]
            log.info("  %s: %d given, %d predicted | precision %.2f | recall %.2f | F1 %.2f",
                     split, row["count"], row["predicted"], row["precision"], row["recall"], row["f1"])


def _log_set_scores(name: str, s: dict[str, Any]) -> None:
    log.info("%s: micro precision %.2f recall %.2f F1 %.2f | macro precision %.2f recall %.2f F1 %.2f | "
             "subset accuracy %.2f", name, s["micro_precision"], s["micro_recall"], s["micro_f1"],
             s["macro_precision"], s["macro_recall"], s["macro_f1"], s["subset_accuracy"])
