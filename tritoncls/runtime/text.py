"""Text in: a request's BYTES tensor decoded, and the plain text files an export carries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RequestError


def decode_texts(column: np.ndarray) -> list[str]:
    """The texts of one request's BYTES tensor (shape [batch, 1]), decoded as UTF-8.

    Raises RequestError for bytes that are not UTF-8 and for empty or blank texts.
    """
    texts = []
    for row, value in enumerate(column.reshape(-1)):
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 4]
            raise RequestError(
                f"text {row}: bytes {bad!r} at offset {exc.start} are not valid UTF-8; send UTF-8 encoded text",
                "invalid_utf8") from None
        if not text.strip():
            raise RequestError(f"text {row}: the text is empty; send at least one non-blank character", "empty")
        texts.append(text)
    return texts



def read_vocab(path: str | Path) -> dict[str, int]:
    """token -> id, one token a line; a repeated token keeps its last line (as PaddleNLP's Vocab)."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            vocab[line.rstrip("\n")] = index
    return vocab



def read_labels(path: str | Path) -> list[str]:
    """Label names, one a line in logit order; read like training reads label.txt."""
    text = Path(path).read_bytes().decode("utf-8-sig")
    return [line.rstrip("\r").strip() for line in text.split("\n") if line.strip()]

