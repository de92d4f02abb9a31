"""The benchmark's texts: read from a data file in place, in file order, with labels when present."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tritoncls.common.data import read_text_column


@dataclass(frozen=True)
class BenchTexts:
    """Texts in file order; ``labels[i]`` is text i's label field (``label`` or ``label,label,...``; empty for a
    multi-label text with no label), or None for an unlabeled file."""

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

    Label fields are kept only when every line has one (a tab), so an unlabeled file still benchmarks. An
    empty field is kept: in a multi-label file it is a text with no label (the export's task decides, see
    :func:`tritoncls.measure.answers.truth`).
    """
    texts, labels = read_text_column(path)
    keep = all(label is not None for label in labels)
    return BenchTexts(Path(path), tuple(texts), tuple(labels) if keep else None)  # type: ignore[arg-type]
