"""Tokenize, batch and run a Paddle dynamic-graph classifier: what train, evaluate, predict, export
and prune share. Padding, length-sorted batches and the run loop are the runtime's
(:func:`tritoncls.runtime.run_batched`): the dynamic graph is one more runner behind that loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from tritoncls.runtime import length_batches, pad_rows, run_batched


@dataclass(frozen=True)
class Encoded:
    """Token ids of texts, unpadded; row ``i`` belongs to text ``i``."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))

    def subset(self, rows: Sequence[int]) -> Encoded:
        return Encoded([self.input_ids[r] for r in rows], [self.token_type_ids[r] for r in rows])

    def concat(self, other: Encoded) -> Encoded:
        """These rows, then those of ``other``."""
        return Encoded(self.input_ids + other.input_ids, self.token_type_ids + other.token_type_ids)


def encode(tokenizer, texts: Sequence[str], max_seq_length: int) -> Encoded:
    """Tokenize with truncation to ``max_seq_length`` tokens ([CLS] and [SEP] included)."""
    out = tokenizer(list(texts), max_length=max_seq_length, truncation=True, padding=False)
    return Encoded(input_ids=out["input_ids"], token_type_ids=out["token_type_ids"])


def pad_batch(encoded: Encoded, rows: Sequence[int], pad_token_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``input_ids`` and ``token_type_ids`` for ``rows``, padded to the longest of them
    (single-sentence classification: every real token has type 0)."""
    selected = [encoded.input_ids[r] for r in rows]
    return pad_rows(selected, max(len(r) for r in selected), pad_token_id)


def length_sorted_batches(encoded: Encoded, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length (order does not matter for inference)."""
    return length_batches(encoded.lengths(), batch_size)


class DygraphRunner:
    """A Paddle dynamic-graph model behind the runtime's ``run(ids, types) -> logits`` interface."""

    def __init__(self, model) -> None:
        self.model = model

    def run(self, input_ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        import paddle

        with paddle.no_grad():
            return self.model(paddle.to_tensor(input_ids), token_type_ids=paddle.to_tensor(token_type_ids)).numpy()


def predict_logits(model, encoded: Encoded, batch_size: int, progress: bool = False, desc: str = "predict") -> np.ndarray:
    """Logits for every row of ``encoded`` from a Paddle dynamic-graph model, in input order."""
    from tqdm import tqdm

    if len(encoded) == 0:
        return np.zeros((0, int(model.config.num_labels)), dtype=np.float32)
    pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
    was_training = model.training
    model.eval()
    try:
        bar = partial(tqdm, desc=desc, unit="batch", disable=not progress, leave=False)
        return run_batched(encoded.input_ids, DygraphRunner(model), pad_id, batch_size, progress=bar).logits
    finally:
        if was_training:
            model.train()
