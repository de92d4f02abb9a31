"""scripts/audit_experiment.py's cleaning bookkeeping: what each kind of cleaning trains on. The measured
figures in docs/analysis.md rest on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audit_experiment.py"


def _script():
    spec = importlib.util.spec_from_file_location("audit_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder:
    """A space that scores every training set 0 and keeps what it was given."""

    def __init__(self) -> None:
        self.sets: list[tuple[list[str], list[int]]] = []

    def accuracy(self, texts, y, dev_texts, dev_y, seed) -> float:
        self.sets.append((list(texts), [int(v) for v in y]))
        return 0.0


def test_cleaning_drops_relabels_or_restores_the_true_labels_of_the_flagged_rows_only():
    script = _script()
    texts = [f"t{i}" for i in range(6)]
    clean = np.array([0, 1, 2, 0, 1, 2])
    noisy = np.array([0, 2, 2, 1, 1, 2])  # rows 1 and 3 corrupted
    probs = np.eye(3)[[0, 0, 2, 2, 1, 2]]  # suggestions for the flagged rows 1 and 2: 0 and 2
    flagged, corrupted = np.array([1, 2]), np.array([1, 3])
    space = Recorder()
    out = script.cleaned(texts, noisy, probs, flagged, corrupted, [], np.array([]), 0, space, clean)
    dropped, relabelled, reannotated = space.sets
    assert dropped == (["t0", "t3", "t4", "t5"], [0, 1, 1, 2])
    assert relabelled == (texts, [0, 0, 2, 1, 1, 2])
    assert reannotated == (texts, [0, 1, 2, 1, 1, 2])  # row 3 was missed: it keeps its wrong label
    assert (out["flagged"], out["precision"], out["recall"]) == (2, 50.0, 50.0)
