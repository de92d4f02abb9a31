"""Readers for the PaddleNLP data layout, with an error per defect that names file:line and the fix.

Layout of a dataset directory::

    train.txt   text<TAB>label      (training examples)
    dev.txt     text<TAB>label      (evaluated every epoch)
    test.txt    text<TAB>label      (optional)
    label.txt   one label a line    (defines label ids, in order)
    data.txt    one text a line     (unlabeled texts to predict)

A UTF-8 BOM and CRLF line endings are accepted; blank lines are skipped and counted. Nothing else
is dropped: any other defect stops the read with a :class:`DataError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tritoncls.errors import DataError

log = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Example:
    """One labeled text, with where it came from."""

    text: str
    label: str
    label_id: int
    line: int


@dataclass(frozen=True)
class _Line:
    number: int
    text: str


def _read_lines(path: Path, what: str) -> tuple[list[_Line], int]:
    """Decode ``path`` line by line; return its non-blank lines and the count of blank ones."""
    if not path.is_file():
        hint = "it is a directory" if path.is_dir() else "it does not exist"
        raise DataError(
            f"{path}: {what} not found ({hint}). Create it, or point the matching "
            f"--*_file / --dataset_dir option at the right file."
        )
    raw = path.read_bytes()
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    lines: list[_Line] = []
    blank = 0
    chunks = raw.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()  # the newline that ends the last line opens no new line
    for number, chunk in enumerate(chunks, start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = chunk[exc.start:exc.start + 4]
            raise DataError(
                f"{path}:{number}: bytes {bad!r} at column {exc.start + 1} are not valid UTF-8. "
                f"Re-encode the file as UTF-8 (e.g. iconv -f GBK -t UTF-8 {path.name})."
            ) from None
        text = text.rstrip("\r")
        if not text.strip():
            blank += 1
            continue
        lines.append(_Line(number, text))
    if not lines:
        raise DataError(
            f"{path}: {what} is empty (no non-blank line). Add at least one line, "
            f"or point the option at a different file."
        )
    return lines, blank


def read_labels(path: str | Path) -> list[str]:
    """Read ``label.txt``: one label a line; the line order defines the label ids."""
    path = Path(path)
    lines, blank = _read_lines(path, "label file")
    labels: list[str] = []
    first_seen: dict[str, int] = {}
    for line in lines:
        label = line.text.strip()
        if "\t" in label:
            raise DataError(
                f"{path}:{line.number}: label {label!r} contains a tab. A label file holds one "
                f"label a line and nothing else; remove the tab and what follows it."
            )
        if label in first_seen:
            raise DataError(
                f"{path}:{line.number}: duplicate label {label!r} (first defined on line "
                f"{first_seen[label]}). Each label must appear once; delete the repeated line."
            )
        first_seen[label] = line.number
        labels.append(label)
    log.info("Read %d labels from %s (%d blank lines skipped)", len(labels), path, blank)
    return labels


def read_examples(path: str | Path, labels: list[str]) -> list[Example]:
    """Read a ``text<TAB>label`` file (train/dev/test), checking every label against ``labels``."""
    path = Path(path)
    lines, blank = _read_lines(path, "labeled data file")
    label_ids = {label: i for i, label in enumerate(labels)}
    examples = [_parse_example(path, line, label_ids) for line in lines]
    log.info("Read %d examples from %s (%d blank lines skipped)", len(examples), path, blank)
    return examples


def _parse_example(path: Path, line: _Line, label_ids: dict[str, int]) -> Example:
    where = f"{path}:{line.number}"
    tabs = line.text.count("\t")
    if tabs == 0:
        raise DataError(
            f"{where}: no tab found; each line must be text<TAB>label. "
            f"Separate the text from its label with one tab character."
        )
    if tabs > 1:
        raise DataError(
            f"{where}: {tabs} tabs found; each line must be text<TAB>label with exactly one tab. "
            f"Remove the tabs inside the text (replace them with spaces)."
        )
    text, label = line.text.split("\t")
    label = label.strip()
    if not text.strip():
        raise DataError(f"{where}: the text before the tab is empty. Remove the line or add its text.")
    if label not in label_ids:
        known = ", ".join(repr(x) for x in list(label_ids)[:12])
        raise DataError(
            f"{where}: label {label!r} is not in the label file (known: {known}"
            f"{', ...' if len(label_ids) > 12 else ''}). Add it to label.txt or fix the line."
        )
    return Example(text=text, label=label, label_id=label_ids[label], line=line.number)


def read_texts(path: str | Path) -> list[str]:
    """Read ``data.txt``: one text a line, no labels."""
    path = Path(path)
    lines, blank = _read_lines(path, "data file")
    for line in lines:
        if "\t" in line.text:
            raise DataError(
                f"{path}:{line.number}: a tab found in an unlabeled data file, which holds one "
                f"text a line. Remove the tab, or use `tritoncls evaluate` for a labeled file."
            )
    log.info("Read %d texts from %s (%d blank lines skipped)", len(lines), path, blank)
    return [line.text for line in lines]


def read_text_column(path: str | Path) -> tuple[list[str], list[str | None]]:
    """Texts of a file of ``text`` or ``text<TAB>label`` lines (data.txt or dev.txt alike), and each
    line's label (None where a line has none): what the benchmarks and the soak test read."""
    path = Path(path)
    lines, blank = _read_lines(path, "texts file")
    texts: list[str] = []
    labels: list[str | None] = []
    for line in lines:
        text, tab, label = line.text.partition("\t")
        if not text.strip():
            raise DataError(f"{path}:{line.number}: the text is empty; remove the line or add its text.")
        texts.append(text)
        labels.append(label.strip() if tab else None)
    log.info("Read %d texts from %s (%d blank lines skipped)", len(texts), path, blank)
    return texts, labels


def iter_batches(items: list, batch_size: int) -> Iterator[list]:
    """Yield consecutive slices of ``items`` of at most ``batch_size``."""
    for start in range(0, len(items), batch_size):
        yield items[start:start + batch_size]
