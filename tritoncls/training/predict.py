"""Classify a texts file (``--input``, or the data set's ``data.txt``) with a checkpoint (Paddle dynamic graph)
and write text, label, confidence (multi-class) or text, labels, probabilities (multi-label, hierarchical)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tritoncls import modeling
from tritoncls.common import data
from tritoncls.common.metrics import override_thresholds
from tritoncls.common.predictions import write_decisions
from tritoncls.errors import ConfigError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.runtime.contract import LABEL_FILE

log = logging.getLogger(__name__)

@dataclass
class PredictConfig:
    """``input`` (one text a line) or ``dataset_dir``/``data_file``; the labels are the data set's ``label_file``
    where a data set is given, else the checkpoint's own ``label.txt``."""

    dataset_dir: str | None = None
    input: str | None = None
    checkpoint: str = "./checkpoint"
    output: str = "output.txt"
    device: str = "cpu"
    max_seq_length: int = 128
    batch_size: int = 32
    data_file: str = "data.txt"
    label_file: str = "label.txt"
    threshold: float | None = None  # multi-label: one threshold for every label instead of the checkpoint's
    thresholds_file: str | None = None  # multi-label: label<TAB>threshold lines instead of the checkpoint's


def predict(config: PredictConfig) -> Path:
    import paddle

    paddle.set_device(config.device)
    directory = ckpt.resolve_checkpoint(config.checkpoint)
    label_path = _label_path(config, directory)
    task = ckpt.saved_task(directory)
    labels = data.read_labels(label_path, task.task)
    texts = data.read_texts(_texts_path(config))
    model = modeling.load_checkpoint_model(directory)
    modeling.check_label_count(model, labels, directory, label_path)
    head = override_thresholds(task, labels, config.threshold, config.thresholds_file).head(labels)
    tokenizer = modeling.load_tokenizer(directory)
    probs, mask = head.predict(predict_logits(model, encode(tokenizer, texts, config.max_seq_length),
                                              config.batch_size, progress=True, desc="predict"))
    out = Path(config.output)
    write_decisions(out, texts, labels, probs, mask, task.multi_label)
    log.info("Wrote %d predictions to %s", len(texts), out)
    return out


def _texts_path(config: PredictConfig) -> Path:
    if config.input:
        return Path(config.input)
    if config.dataset_dir:
        return Path(config.dataset_dir) / config.data_file
    raise ConfigError("nothing to classify: pass --input TEXTS_FILE, or --dataset_dir holding data.txt.")


def _label_path(config: PredictConfig, directory: Path) -> Path:
    if config.dataset_dir:
        return Path(config.dataset_dir) / config.label_file
    path = directory / LABEL_FILE
    if not path.is_file():
        raise ConfigError(f"{directory}: this checkpoint has no {LABEL_FILE} (it was not written by tritoncls train); "
                          f"pass --dataset_dir holding the label file it was trained with.")
    return path
