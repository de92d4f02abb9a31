"""Padding, length buckets, merged dynamic batches and length-sorted batches: every way the
project turns token-id lists into padded int64 arrays, and back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contract import PADDINGS
from .errors import OptionError, RequestError


def bucket_width(longest: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``longest`` tokens (the last bucket is max_seq_length)."""
    for width in buckets:
        if longest <= width:
            return width
    raise RequestError(f"{longest} tokens exceed the largest bucket {buckets[-1]}", "too_long")


def padded_width(rows: Sequence[Sequence[int]], padding: str, buckets: Sequence[int], max_seq_length: int) -> int:
    """Width of one request's batch: its bucket, its longest row, or max_seq_length."""
    longest = max(len(r) for r in rows)
    if padding == "buckets":
        return bucket_width(longest, buckets)
    if padding == "longest":
        return longest
    if padding == "max_length":
        return max_seq_length
    raise OptionError(f"padding {padding!r} is not one of {PADDINGS}")


def pad_rows(rows: Sequence[Sequence[int]], width: int, pad_id: int, pad_type_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int64 input_ids and token_type_ids [len(rows), width] (single-sentence: real types are 0)."""
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    types = np.full((len(rows), width), pad_type_id, dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        types[i, :len(row)] = 0
    return ids, types



def merge_requests(batches: Sequence[np.ndarray], pad_value: int) -> np.ndarray:
    """Stack requests' [n_i, w_i] arrays into one [sum n_i, max w_i] array, padding on the right."""
    width = max(b.shape[1] for b in batches)
    out = np.full((sum(b.shape[0] for b in batches), width), pad_value, dtype=batches[0].dtype)
    start = 0
    for b in batches:
        out[start:start + b.shape[0], :b.shape[1]] = b
        start += b.shape[0]
    return out


def trim_padding(input_ids: np.ndarray, token_type_ids: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop trailing columns that are padding in every row; ERNIE masks [PAD] so logits do not change."""
    real = np.flatnonzero((input_ids != pad_id).any(axis=0))
    width = int(real[-1]) + 1 if real.size else 1
    return np.ascontiguousarray(input_ids[:, :width]), np.ascontiguousarray(token_type_ids[:, :width])


def split_rows(array: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Inverse of stacking: consecutive slices of ``counts`` rows."""
    return np.split(array, np.cumsum(counts)[:-1])


def length_groups(lengths: np.ndarray, max_padding: float = 1.2, max_rows: int = 64) -> list[np.ndarray]:
    """Row indices sorted by length, cut into groups whose padded size stays within ``max_padding``
    times their real tokens (and at most ``max_rows`` rows each).

    A dynamic batch merges requests of every length; padded to its longest row it computes 2-3x
    the real tokens. Runs over groups of similar length bring that close to 1x, as sorting does offline.
    """
    order = np.argsort(lengths, kind="stable")
    groups: list[np.ndarray] = []
    start, real = 0, 0
    for end, row in enumerate(order):
        width = int(lengths[row])
        rows = end - start + 1
        if rows > 1 and (rows * width > max_padding * (real + width) or rows > max_rows):
            groups.append(order[start:end])
            start, real = end, 0
        real += width
    groups.append(order[start:])
    return groups

