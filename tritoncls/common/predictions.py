"""The predictions file every predictor and client writes: ``text<TAB>label<TAB>confidence`` (multi-class), or
``text<TAB>labels<TAB>probabilities`` (multi-label and hierarchical)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tritoncls.common.files import write_with

OUTPUT_HEADER = "text\tlabel\tconfidence"


def format_row(text: str, label: str, confidence: float) -> str:
    """One output line; shared by every predictor and client so their files compare equal."""
    return f"{text}\t{label}\t{confidence:.6f}"


def write_predictions(path: Path, texts: Sequence[str], labels: Sequence[str], confidences: Sequence[float]) -> Path:
    """The header and one row per text at ``path``, whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(out) -> None:
        out.write(OUTPUT_HEADER + "\n")
        for row in zip(texts, labels, confidences):
            out.write(format_row(*row) + "\n")

    return write_with(path, write)


#: The predictions file of a multi-label or hierarchical model: each text's labels and their probabilities,
#: comma-separated in the same order (both empty for a text with no label).
LABEL_SETS_HEADER = "text\tlabels\tprobabilities"


def format_set_row(text: str, pairs: Sequence[tuple[str, float]]) -> str:
    """One multi-label output line; shared by every predictor and client so their files compare equal."""
    return f"{text}\t{','.join(label for label, _ in pairs)}\t{','.join(f'{p:.6f}' for _, p in pairs)}"


def write_label_sets(path: Path, texts: Sequence[str], sets: Sequence[Sequence[tuple[str, float]]]) -> Path:
    """The header and one row per text (its label set) at ``path``, whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(out) -> None:
        out.write(LABEL_SETS_HEADER + "\n")
        for text, pairs in zip(texts, sets):
            out.write(format_set_row(text, pairs) + "\n")

    return write_with(path, write)


def write_decisions(path: Path, texts: Sequence[str], labels: Sequence[str], probs: np.ndarray, mask: np.ndarray,
                    multi_label: bool) -> Path:
    """A head's decisions as the predictions file of its task: label and confidence, or label sets."""
    if multi_label:
        return write_label_sets(path, texts, [[(labels[j], float(probs[i, j])) for j in np.flatnonzero(row)]
                                              for i, row in enumerate(mask)])
    best = mask.argmax(axis=1)
    return write_predictions(path, texts, [labels[j] for j in best], [float(probs[i, j]) for i, j in enumerate(best)])
