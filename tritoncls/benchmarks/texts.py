"""The benchmark's texts: read from a data file in place, in file order, with labels when present."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritoncls.errors import DataError


@dataclass(frozen=True)
class BenchTexts:
    """Texts in file order; ``labels[i]`` is text i's label, or None for an unlabeled file."""

    path: Path
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, count: int | None) -> BenchTexts:
        """The first ``count`` texts (all when None or larger than the file)."""
        if count is None or count >= len(self.texts):
            return self
        labels = self.labels[:count] if self.labels is not None else None
        return BenchTexts(self.path, self.texts[:count], labels)


def read_bench_texts(path: str | Path) -> BenchTexts:
    """``text`` or ``text<TAB>label`` lines (data.txt, dev.txt); blank lines are skipped.

    Labels are kept only when every line has one, so an unlabeled file still benchmarks.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found; pass --input with a file of texts, one a line "
                        f"(e.g. KUAKE-QIC dev.txt).")
    texts: list[str] = []
    labels: list[str | None] = []
    raw = path.read_bytes().decode("utf-8-sig", errors="strict")
    for number, line in enumerate(raw.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        text, tab, label = line.partition("\t")
        if not text.strip():
            raise DataError(f"{path}:{number}: the text is empty; remove the line or add its text.")
        texts.append(text)
        labels.append(label.strip() if tab else None)
    if not texts:
        raise DataError(f"{path}: no texts found; the file is empty.")
    keep = all(label for label in labels)
    return BenchTexts(path, tuple(texts), tuple(labels) if keep else None)  # type: ignore[arg-type]
