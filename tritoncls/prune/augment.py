"""More texts for the teacher to label during distillation (TinyBERT's data augmentation, Jiao et al. 2020).

A student learns the teacher's function only where it sees it. On the training texts a fine-tuned teacher is
nearly always right and confident, so its soft labels there say little more than the gold labels do. Each
augmented copy of a training text changes a share of its tokens, and the teacher's outputs on the copy are the
student's targets there: its logits for the soft-label loss, its prediction for the hard-label loss (a changed
text may no longer carry its gold label; the teacher decides).

A changed token is masked (the tokenizer's mask token), replaced by a token drawn from the training texts by
frequency, or deleted, one of the three at random (EDA's random replacement and deletion, Wei and Zou 2019,
plus BERT's masking). This works on token ids, after the tokenizer, so it is the same for every language and
vocabulary. TinyBERT replaces whole words by a masked language model's or GloVe's nearest words; neither comes
with every teacher here (an imported classifier has no language-model head), so the corpus' own tokens stand in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from tritoncls.modeling.dynamic import Encoded

#: What a changed token becomes, drawn uniformly.
MASK, REPLACE, DELETE = "mask", "replace", "delete"
OPERATIONS = (MASK, REPLACE, DELETE)


def augment(encoded: Encoded, copies: int, rate: float, seed: int, mask_id: int,
            special_ids: Collection[int]) -> Encoded:
    """``copies`` changed copies of every row of ``encoded`` (all rows' first copies, then the second ones, ...).

    In each copy, ``rate`` of a row's tokens (at least one; special tokens never) are masked, replaced or
    deleted. A row is never emptied: a row of one token has it masked or replaced, not deleted."""
    special = frozenset(special_ids)
    rng = np.random.default_rng(seed)
    pool = np.fromiter((t for row in encoded.input_ids for t in row if t not in special), dtype=np.int64)
    rows: list[list[int]] = []
    for _ in range(copies):
        rows.extend(_changed(ids, rng, rate, mask_id, special, pool) for ids in encoded.input_ids)
    return Encoded(rows, [[0] * len(ids) for ids in rows])


def _changed(ids: Sequence[int], rng: np.random.Generator, rate: float, mask_id: int, special: frozenset[int],
             pool: np.ndarray) -> list[int]:
    inner = [i for i, token in enumerate(ids) if token not in special]
    if not inner or not len(pool):
        return list(ids)
    picked = set(rng.choice(inner, size=max(1, round(rate * len(inner))), replace=False).tolist())
    operations = OPERATIONS if len(inner) > 1 else OPERATIONS[:2]
    out: list[int] = []
    for i, token in enumerate(ids):
        if i not in picked:
            out.append(token)
            continue
        operation = operations[rng.integers(len(operations))]
        if operation == MASK:
            out.append(mask_id)
        elif operation == REPLACE:
            out.append(int(pool[rng.integers(len(pool))]))
    if len(out) == len(ids) - len(inner):  # every inner token deleted: keep the first, masked
        out.insert(inner[0], mask_id)
    return out
