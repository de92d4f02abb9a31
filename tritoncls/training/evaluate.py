"""Evaluate a checkpoint: accuracy, top-k, per-class precision/recall/F1 on train and dev, bad cases."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls import modeling
from tritoncls.common import data
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.runtime import softmax

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
    labels = data.read_labels(Path(config.dataset_dir) / config.label_file)
    model = modeling.load_checkpoint_model(directory)
    modeling.check_label_count(model, labels, directory, Path(config.dataset_dir) / config.label_file)
    tokenizer = modeling.load_tokenizer(directory)
    report: dict[str, Any] = {"checkpoint": str(directory), "labels": labels, "splits": {}}
    for split, name in (("train", config.train_file), ("dev", config.dev_file)):
        path = Path(config.dataset_dir) / name
        if split == "train" and not path.is_file():
            log.warning("%s not found: per-class figures cover dev only", path)
            continue
        examples = data.read_examples(path, labels)
        enc = encode(tokenizer, [e.text for e in examples], config.max_seq_length)
        probs = softmax(predict_logits(model, enc, config.batch_size, progress=True, desc=f"evaluate {split}"))
        y = np.array([e.label_id for e in examples])
        report["splits"][split] = _split_report(probs, y, labels)
        if split == "dev":
            _write_bad_cases(Path(config.bad_case_path), examples, probs, labels)
            if config.confusion_matrix_path:
                plot_confusion(confusion(probs.argmax(1), y, len(labels)), labels, Path(config.confusion_matrix_path))
    _log_report(report)
    if config.report:
        Path(config.report).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


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


def _write_bad_cases(path: Path, examples, probs: np.ndarray, labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pred = probs.argmax(1)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("Confidence\tPrediction\tLabel\tText\n")
        for example, p, row in zip(examples, pred, probs):
            if p != example.label_id:
                out.write(f"{row[p]:.2f}\t{labels[p]}\t{example.label}\t{example.text}\n")
                count += 1
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
    dev = splits["dev"]
    log.info("Accuracy in dev dataset: %.2f%%", 100 * dev["accuracy"])
    log.info("Top-2 accuracy in dev dataset: %.2f%%", 100 * dev["top2_accuracy"])
    log.info("Top-3 accuracy in dev dataset: %.2f%%", 100 * dev["top3_accuracy"])
    for i, label in enumerate(report["labels"]):
        log.info("Class name: %s", label)
        for split, numbers in splits.items():
            row = numbers["per_class"][i]
            log.info("  %s: %d (%.1f%%) | precision %.2f | recall %.2f | F1 %.2f",
                     split, row["count"], row["share"], row["precision"], row["recall"], row["f1"])
