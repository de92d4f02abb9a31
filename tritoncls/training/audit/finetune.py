"""The model-based sources: k-fold fine-tuning of the user's checkpoint (out-of-fold probabilities), and
the checkpoint's frozen encoder as a space: [CLS] vectors for neighbours, mean-pooled vectors for a
linear model.

Label sets (multi-hot ``y``, a ``task`` other than multi_class) are fine-tuned with the training loop's
:class:`~tritoncls.modeling.objective.Objective` (binary cross-entropy) and predicted as a sigmoid per label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritoncls import modeling
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling.dynamic import Encoded, encode, pad_batch, predict_logits
from tritoncls.modeling.loop import adamw, epoch_batches, set_device, set_seed
from tritoncls.modeling.objective import Objective
from tritoncls.runtime import MULTI_CLASS, MULTI_LABEL, run_batched, sigmoid, softmax
from tritoncls.training.audit.features import FoldResult, splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FineTune:
    """How each fold fine-tunes the checkpoint."""

    checkpoint: str
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_seq_length: int = 128
    device: str = "cpu"
    task: str = MULTI_CLASS  # of the data: multi_label and hierarchical fine-tune and predict label sets

    def objective(self, num_labels: int) -> Objective:
        """The loss and probabilities of the folds: the data's task, whatever head the checkpoint was trained
        with (a hierarchy's paths are labels of their own here: only the probabilities are wanted)."""
        task = MULTI_CLASS if self.task == MULTI_CLASS else MULTI_LABEL
        return Objective(task, [str(i) for i in range(num_labels)])


def checkpoint_folds(options: FineTune, texts: Sequence[str], y: np.ndarray, num_labels: int, folds: int,
                     seed: int, others: Sequence[str] = ()) -> FoldResult:
    """Fine-tune a fresh copy of the checkpoint on each k-1 folds; predict the held-out fold (and ``others``).
    ``y``: class ids (softmax probabilities), or multi-hot label sets (a sigmoid per label)."""
    set_device(options.device)
    objective = _objective(options, y, num_labels)
    directory = ckpt.resolve_checkpoint(options.checkpoint)
    tokenizer = modeling.load_tokenizer(directory)
    enc = encode(tokenizer, texts, options.max_seq_length)
    enc_other = encode(tokenizer, others, options.max_seq_length) if len(others) else None
    oof = np.zeros((len(texts), num_labels))
    other_probs: list[np.ndarray] = []
    probabilities = _probabilities(objective)
    for fold, (train_rows, held_rows) in enumerate(splits(y, folds, seed), start=1):
        model = _fresh_fine_tuned(directory, enc.subset(train_rows), y[train_rows], options, seed + fold, objective)
        oof[held_rows] = probabilities(predict_logits(model, enc.subset(held_rows), options.batch_size))
        if enc_other is not None:
            other_probs.append(probabilities(predict_logits(model, enc_other, options.batch_size)))
        log.info("fold %d/%d: fine-tuned on %d texts, predicted %d", fold, folds, len(train_rows), len(held_rows))
    return FoldResult(oof_probs=oof, other_probs=other_probs)


def fine_tuned_probs(options: FineTune, texts: Sequence[str], y: np.ndarray, predict: Sequence[str],
                     seed: int) -> np.ndarray:
    """Fine-tune a fresh copy of the checkpoint on ``texts`` (every epoch, no early stop); the probabilities
    it gives ``predict``."""
    set_device(options.device)
    y = np.asarray(y)
    objective = _objective(options, y, int(y.shape[1]) if y.ndim == 2 else 0)
    directory = ckpt.resolve_checkpoint(options.checkpoint)
    tokenizer = modeling.load_tokenizer(directory)
    model = _fresh_fine_tuned(directory, encode(tokenizer, texts, options.max_seq_length), y, options, seed, objective)
    logits = predict_logits(model, encode(tokenizer, predict, options.max_seq_length), options.batch_size)
    return _probabilities(objective)(logits)


def _objective(options: FineTune, y: np.ndarray, num_labels: int) -> Objective:
    if (y.ndim == 2) != (options.task != MULTI_CLASS):
        raise ValueError(f"a {options.task} fine-tune needs {'multi-hot rows' if y.ndim == 1 else 'class ids'}")
    return options.objective(num_labels)


def _probabilities(objective: Objective):
    """Softmax over the classes, or a sigmoid per label: whatever the checkpoint's own head was trained as."""
    return sigmoid if objective.multi_label else softmax


def _fresh_fine_tuned(directory, enc: Encoded, y: np.ndarray, options: FineTune, seed: int, objective: Objective):
    set_seed(seed)
    model = modeling.load_checkpoint_model(directory)
    _fine_tune(model, enc, y, options, seed, objective)
    return model


def _fine_tune(model, enc: Encoded, y: np.ndarray, options: FineTune, seed: int, objective: Objective) -> None:
    import paddle
    from tqdm import tqdm

    per_epoch = len(epoch_batches(enc.lengths(), options.batch_size, seed, 0, 1))
    optimizer, lr = adamw(model, options.learning_rate, 0.0, per_epoch * options.epochs, 0.1)
    loss_fn = objective.loss()
    targets = y.astype(np.float32) if objective.multi_label else y
    model.train()
    for epoch in range(options.epochs):
        batches = epoch_batches(enc.lengths(), options.batch_size, seed * 1000 + epoch, 0, 1)
        for rows in tqdm(batches, desc=f"fine-tune epoch {epoch + 1}", unit="batch", leave=False):
            ids, types = pad_batch(enc, rows)
            loss = loss_fn(model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)),
                           paddle.to_tensor(targets[rows]))
            loss.backward()
            optimizer.step()
            lr.step()
            optimizer.clear_grad()
    model.eval()


POOLINGS = ("cls", "mean")


class _PooledRunner:
    """The encoder's last hidden states pooled per text ([CLS], or the mean over real tokens) behind the
    runtime's ``run(ids, types)`` interface."""

    def __init__(self, model, pooling: str, pad_token_id: int) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        self.model, self.pooling, self.pad_token_id = model, pooling, pad_token_id

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        import paddle

        with paddle.no_grad():
            sequence = self.model.ernie(paddle.to_tensor(input_ids), token_type_ids=paddle.to_tensor(token_type_ids))[0]
        if self.pooling == "cls":
            return sequence[:, 0].numpy()
        real = (input_ids != self.pad_token_id)[..., None]
        return (sequence.numpy() * real).sum(1) / np.maximum(real.sum(1), 1)


def cls_embeddings(checkpoint: str | Path, texts: Sequence[str], max_seq_length: int, batch_size: int) -> np.ndarray:
    """L2-normalised [CLS] vectors of ``texts`` from the checkpoint's encoder, in input order."""
    return pooled_embeddings(checkpoint, texts, max_seq_length, batch_size, "cls")


def pooled_embeddings(checkpoint: str | Path, texts: Sequence[str], max_seq_length: int, batch_size: int,
                      pooling: str = "mean") -> np.ndarray:
    """L2-normalised vectors of ``texts`` from the checkpoint's frozen encoder ([CLS] or mean of the real
    tokens), in input order."""
    directory = ckpt.resolve_checkpoint(checkpoint)
    model = modeling.load_checkpoint_model(directory)
    enc = encode(modeling.load_tokenizer(directory), texts, max_seq_length)
    pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
    vectors = run_batched(enc.input_ids, _PooledRunner(model, pooling, pad_id), pad_id, batch_size).logits
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
