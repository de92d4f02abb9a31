"""The reference distribution of an export: what the exported model does on its dev data.

``tritoncls export`` runs the exported ONNX graph, through the runtime's own tokenizer and head (the served
path's code), over the dev texts, and writes ``reference.json``: the predicted label counts, the top
probability histogram, token lengths and truncations, the low-confidence threshold. The served metrics use
the same bins (runtime/metrics.py), so ``tritoncls monitor`` and the rendered Prometheus rules compare like
with like.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from tritoncls.common.data import read_examples
from tritoncls.errors import DataError
from tritoncls.runtime import Manifest, Predictor
from tritoncls.runtime.metrics import Reference, reference_of

log = logging.getLogger(__name__)

DEV_FILE = "dev.txt"


def default_reference_data(checkpoint: Path, training_config: dict) -> Path | None:
    """The dev file the checkpoint was trained with, where it still exists."""
    dev = training_config.get("dev_file")
    dataset = training_config.get("dataset_dir")
    candidates = [Path(dev)] if isinstance(dev, str) and dev else []
    if isinstance(dataset, str) and dataset:
        candidates.append(Path(dataset) / DEV_FILE)
    for candidate in candidates:
        path = candidate if candidate.is_absolute() else (Path.cwd() / candidate)
        if path.is_file():
            return path
    return None


def reference_data_file(value: str | Path) -> Path:
    """``--reference_data``: a labeled data file, or a dataset folder holding dev.txt."""
    path = Path(value)
    if path.is_dir():
        path = path / DEV_FILE
    if not path.is_file():
        raise DataError(f"--reference_data {value}: {path} is not a file; pass the dev.txt (text<TAB>label lines) "
                        f"the reference distribution is computed on, or its dataset folder.")
    return path


def compute_reference(export_dir: Path, manifest: Manifest, data_file: Path, low_confidence: float | None = None,
                      progress: bool = True) -> Reference:
    """Predict ``data_file``'s texts with the export and summarise them as a :class:`Reference`."""
    from tqdm import tqdm

    examples = read_examples(data_file, list(manifest.labels), manifest.task.task)
    if not examples:
        raise DataError(f"{data_file}: no texts; the reference distribution needs the dev texts.")
    texts = [example.text for example in examples]
    predictor = Predictor.from_export(export_dir, manifest)
    bar = functools.partial(tqdm, desc="reference distribution", unit="batch", leave=False,
                            disable=not progress or len(texts) < 256)
    result = predictor.predict_probs(texts, bar)
    rows, cut = predictor.tokenizer.encode_marked(texts)
    given = [[manifest.labels[i] for i in example.label_ids] for example in examples]
    reference = reference_of(
        source=str(data_file.resolve()), task=manifest.task.task, labels=manifest.labels, probs=result.probs,
        mask=result.mask if result.mask is not None else np.zeros_like(result.probs, dtype=bool),
        lengths=np.array([len(row) for row in rows]), truncated=np.array(cut), max_seq_length=manifest.max_seq_length,
        given=given, low_confidence=low_confidence)
    log.info("Reference distribution of %s: %d texts, %d cut at %d tokens, low-confidence threshold %.4f",
             data_file, reference.texts, reference.truncated, manifest.max_seq_length,
             reference.low_confidence_threshold)
    return reference
