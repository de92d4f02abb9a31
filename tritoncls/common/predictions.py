"""The predictions file every predictor and client writes: ``text<TAB>label<TAB>confidence``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
