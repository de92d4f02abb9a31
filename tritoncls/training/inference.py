"""Tokenize, batch and run a Paddle dynamic-graph classifier: the code train, evaluate and predict share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Encoded:
    """Token ids of texts, unpadded; row ``i`` belongs to text ``i``."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))


def encode(tokenizer, texts: Sequence[str], max_seq_length: int) -> Encoded:
    """Tokenize with truncation to ``max_seq_length`` tokens ([CLS] and [SEP] included)."""
    out = tokenizer(list(texts), max_length=max_seq_length, truncation=True, padding=False)
    return Encoded(input_ids=out["input_ids"], token_type_ids=out["token_type_ids"])


def pad_batch(encoded: Encoded, rows: Sequence[int], pad_token_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``input_ids`` and ``token_type_ids`` for ``rows``, padded to the longest of them."""
    width = max(len(encoded.input_ids[r]) for r in rows)
    ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(encoded.input_ids[r])
        ids[i, :n] = encoded.input_ids[r]
        types[i, :n] = encoded.token_type_ids[r]
    return ids, types


def length_sorted_batches(encoded: Encoded, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (order does not matter for inference)."""
    order = np.argsort(encoded.lengths(), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predict_logits(model, encoded: Encoded, batch_size: int, progress: bool = False, desc: str = "predict") -> np.ndarray:
    """Logits for every row of ``encoded`` from a Paddle dynamic-graph model, in input order."""
    import paddle
    from tqdm import tqdm

    if len(encoded) == 0:
        return np.zeros((0, int(model.config.num_labels)), dtype=np.float32)
    pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
    out: np.ndarray | None = None
    batches = length_sorted_batches(encoded, batch_size)
    was_training = model.training
    model.eval()
    with paddle.no_grad():
        for rows in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
            ids, types = pad_batch(encoded, rows, pad_id)
            logits = model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)).numpy()
            if out is None:
                out = np.zeros((len(encoded), logits.shape[-1]), dtype=np.float32)
            out[rows] = logits
    if was_training:
        model.train()
    assert out is not None
    return out
