"""Readers for the PaddleNLP data layout, with an error per defect that names file:line and the fix.

Layout of a dataset directory::

    train.txt   text<TAB>label      (training examples)
    dev.txt     text<TAB>label      (evaluated every epoch)
    test.txt    text<TAB>label      (optional)
    label.txt   one label a line    (defines label ids, in order)
    data.txt    one text a line     (unlabeled texts to predict)

The label field depends on the task (``--task``):

- ``multi_class``: one label;
- ``multi_label``: ``label,label,...`` (any number, in any order); an empty field (the text, a tab,
  nothing) is a text with no label;
- ``hierarchical``: the same, each label a path ``level1##level2##...`` and every level listed
  (``A,A##B``); ``label.txt`` lists every path, parents included.

A UTF-8 BOM and CRLF line endings are accepted; blank lines are skipped and counted. Nothing else
is dropped: any other defect stops the read with a :class:`DataError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritoncls.errors import DataError
from tritoncls.runtime.task import HIERARCHICAL, HIERARCHY_SEPARATOR, LABEL_SEPARATOR, MULTI_CLASS, TASKS, parent_path

log = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Example:
    """One labeled text, with where it came from: its label field as written, and the label ids in it
    (one for multi-class; any number, none included, for multi-label and hierarchical data)."""

    text: str
    label: str
    label_ids: tuple[int, ...]
    line: int

    @property
    def label_id(self) -> int:
        """The one label of a multi-class example."""
        if len(self.label_ids) != 1:
            raise ValueError(f"line {self.line} has {len(self.label_ids)} labels; label_id is for multi-class data")
        return self.label_ids[0]


def class_ids(examples: list[Example]) -> np.ndarray:
    """int64 [n]: the label id of each multi-class example."""
    return np.array([e.label_id for e in examples], dtype=np.int64)


def multi_hot(examples: list[Example], num_labels: int) -> np.ndarray:
    """float32 [n, num_labels]: 1 where an example has the label (multi-label and hierarchical targets)."""
    out = np.zeros((len(examples), num_labels), dtype=np.float32)
    for row, example in enumerate(examples):
        out[row, list(example.label_ids)] = 1.0
    return out


def check_task(task: str) -> str:
    if task not in TASKS:
        raise DataError(f"--task {task!r}: choose one of {', '.join(TASKS)}.")
    return task


@dataclass(frozen=True)
class _Line:
    number: int
    text: str


def read_lines(path: Path, what: str) -> tuple[list[_Line], int]:
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


def read_labels(path: str | Path, task: str = MULTI_CLASS) -> list[str]:
    """Read ``label.txt``: one label a line; the line order defines the label ids. For multi-label and
    hierarchical tasks a label may not contain the ``,`` that separates a text's labels, and every
    hierarchical path's parent must be a label too."""
    path = Path(path)
    check_task(task)
    lines, blank = read_lines(path, "label file")
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
        if task != MULTI_CLASS:
            _check_label_name(path, line.number, label, task)
    if task == HIERARCHICAL:
        _check_parents_listed(path, first_seen)
    log.info("Read %d labels from %s (%d blank lines skipped)", len(labels), path, blank)
    return labels


def _check_label_name(path: Path, number: int, label: str, task: str) -> None:
    if LABEL_SEPARATOR in label:
        raise DataError(f"{path}:{number}: label {label!r} contains {LABEL_SEPARATOR!r}, which separates the labels "
                        f"of a text in {task} data, so no line could name it. Rename the label (in label.txt and "
                        f"in the data files).")
    if task == HIERARCHICAL and "" in label.split(HIERARCHY_SEPARATOR):
        raise DataError(f"{path}:{number}: label {label!r} has an empty level; a path is level1"
                        f"{HIERARCHY_SEPARATOR}level2... with a name at every level. Fix the label.")


def _check_parents_listed(path: Path, first_seen: dict[str, int]) -> None:
    for label, number in first_seen.items():
        parent = parent_path(label)
        if parent is not None and parent not in first_seen:
            raise DataError(f"{path}:{number}: label {label!r}: its parent {parent!r} is not in the label file. "
                            f"A hierarchical label file lists every level of every path; add {parent!r}.")


def read_examples(path: str | Path, labels: list[str], task: str = MULTI_CLASS) -> list[Example]:
    """Read a ``text<TAB>label`` file (train/dev/test), checking every label against ``labels``."""
    path = Path(path)
    check_task(task)
    lines, blank = read_lines(path, "labeled data file")
    label_ids = {label: i for i, label in enumerate(labels)}
    parse = _parse_example if task == MULTI_CLASS else _parse_multi_label
    examples = [parse(path, line, label_ids, task) for line in lines]
    log.info("Read %d examples from %s (%d blank lines skipped)", len(examples), path, blank)
    return examples


def _split_line(path: Path, line: _Line) -> tuple[str, str]:
    """The text and the label field of a ``text<TAB>label`` line."""
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
    if not text.strip():
        raise DataError(f"{where}: the text before the tab is empty. Remove the line or add its text.")
    return text, label.strip()


def _known(label_ids: dict[str, int]) -> str:
    return ", ".join(repr(x) for x in list(label_ids)[:12]) + (", ..." if len(label_ids) > 12 else "")


def _parse_example(path: Path, line: _Line, label_ids: dict[str, int], task: str = MULTI_CLASS) -> Example:
    text, label = _split_line(path, line)
    if label not in label_ids:
        raise DataError(f"{path}:{line.number}: label {label!r} is not in the label file (known: {_known(label_ids)})."
                        f"{_multi_label_hint(label, label_ids) or ' Add it to label.txt or fix the line.'}")
    return Example(text=text, label=label, label_ids=(label_ids[label],), line=line.number)


def _multi_label_hint(label: str, label_ids: dict[str, int]) -> str:
    """Where a multi-class read meets the multi-label layout (an empty field, or known labels joined by
    commas), what to do instead."""
    parts = [part.strip() for part in label.split(LABEL_SEPARATOR)]
    if label and not all(part in label_ids for part in parts):
        return ""
    paths = any(HIERARCHY_SEPARATOR in part for part in parts) or any(HIERARCHY_SEPARATOR in x for x in label_ids)
    what = "an empty label field (a text with no label)" if not label else f"{len(parts)} known labels joined by commas"
    task = "hierarchical" if paths else "multi_label"
    return (f" It is {what}: this is the multi-label layout, read as multi-class because --task was not given. "
            f"Pass --task {task} to read text<TAB>label,label,... lines.")


def _parse_multi_label(path: Path, line: _Line, label_ids: dict[str, int], task: str) -> Example:
    """A multi-label or hierarchical line: any number of known labels, each once, every path with its parent."""
    where = f"{path}:{line.number}"
    text, field = _split_line(path, line)
    names = [name.strip() for name in field.split(LABEL_SEPARATOR)] if field else []
    for name in names:
        if not name:
            raise DataError(f"{where}: an empty label in {field!r} (two commas in a row, or one at an end). "
                            f"Separate labels with one comma; leave the field empty for a text with no label.")
        if name not in label_ids:
            raise DataError(f"{where}: label {name!r} is not in the label file (known: {_known(label_ids)}). "
                            f"Add it to label.txt or fix the line.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: label {repeated[0]!r} is listed more than once in {field!r}. List each label once.")
    if task == HIERARCHICAL:
        for name in names:
            parent = parent_path(name)
            if parent is not None and parent not in names:
                raise DataError(f"{where}: {name!r} is listed without its parent {parent!r}. A hierarchical line "
                                f"lists every level of each path ({parent},{name}); add it.")
    return Example(text=text, label=field, label_ids=tuple(sorted(label_ids[n] for n in names)), line=line.number)


def read_texts(path: str | Path) -> list[str]:
    """Read ``data.txt``: one text a line, no labels."""
    path = Path(path)
    lines, blank = read_lines(path, "data file")
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
    lines, blank = read_lines(path, "texts file")
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
