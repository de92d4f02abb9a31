"""Classify ``data.txt`` with a checkpoint (Paddle dynamic graph) and write text, label, confidence."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tritoncls import modeling
from tritoncls.common import data
from tritoncls.common.predictions import write_predictions
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import encode, predict_logits
from tritoncls.runtime import softmax

log = logging.getLogger(__name__)

@dataclass
class PredictConfig:
    dataset_dir: str
    checkpoint: str = "./checkpoint"
    output: str = "output.txt"
    device: str = "cpu"
    max_seq_length: int = 128
    batch_size: int = 32
    data_file: str = "data.txt"
    label_file: str = "label.txt"


def predict(config: PredictConfig) -> Path:
    import paddle

    paddle.set_device(config.device)
    directory = ckpt.resolve_checkpoint(config.checkpoint)
    labels = data.read_labels(Path(config.dataset_dir) / config.label_file)
    texts = data.read_texts(Path(config.dataset_dir) / config.data_file)
    model = modeling.load_checkpoint_model(directory)
    modeling.check_label_count(model, labels, directory, Path(config.dataset_dir) / config.label_file)
    tokenizer = modeling.load_tokenizer(directory)
    probs = softmax(predict_logits(model, encode(tokenizer, texts, config.max_seq_length), config.batch_size,
                                   progress=True, desc="predict"))
    best = probs.argmax(1)
    out = Path(config.output)
    write_predictions(out, texts, [labels[i] for i in best], [float(probs[i, j]) for i, j in enumerate(best)])
    log.info("Wrote %d predictions to %s", len(texts), out)
    return out
