"""Useful work: the FLOPs of a text's real (non-padding) tokens through an ERNIE/BERT encoder.

Per encoder layer, for one text of ``L`` real tokens, hidden size ``H``, attention width ``A`` (heads
x head size: ``H`` in an ordinary model, less in a width-pruned one) and feed-forward size ``I`` (one
multiply-add = 2 FLOPs; only matrix products are counted):

===========================  ==============
Q, K and V projections       3 x 2·L·H·A
attention scores  Q·Kᵀ       2·L·L·A
attention-weighted values    2·L·L·A
output projection            2·L·A·H
feed-forward (H->I->H)       2 x 2·L·H·I
===========================  ==============

so a layer costs ``8·L·H·A + 4·L²·A + 4·L·H·I`` (``8·L·H² + 4·L²·H + 4·L·H·I`` when ``A = H``). Per text add the pooler (``2·H²``, on [CLS]) and
the classifier (``2·H·C``). Embedding lookups, LayerNorm, GELU, softmax and biases are left out:
they are memory-bound and small. Padding positions are never counted: this is the work a perfect
runtime would do, so dividing it by wall time gives *useful* FLOP/s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EncoderShape:
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_labels: int = 2
    attention_width: int | None = None  # heads x head size; None: hidden_size

    @classmethod
    def from_architecture(cls, arch: Mapping[str, Any]) -> EncoderShape:
        """From a manifest's ``architecture`` section (or a PaddleNLP config dict).

        A width-pruned model records ``attention_head_dim``: its attention is ``num_attention_heads x
        attention_head_dim`` wide rather than ``hidden_size``.
        """
        width = None
        if arch.get("attention_head_dim") and arch.get("num_attention_heads"):
            width = int(arch["num_attention_heads"]) * int(arch["attention_head_dim"])
            width = None if width == int(arch["hidden_size"]) else width
        return cls(int(arch["num_hidden_layers"]), int(arch["hidden_size"]), int(arch["intermediate_size"]),
                   int(arch.get("num_labels", 2)), width)


def layer_flops(length: int, hidden: int, intermediate: int, attention: int | None = None) -> int:
    """Matrix-product FLOPs of one encoder layer over ``length`` tokens (see the module table)."""
    attention = hidden if attention is None else attention
    qkv = 3 * 2 * length * hidden * attention
    scores = 2 * length * length * attention
    context = 2 * length * length * attention
    output = 2 * length * attention * hidden
    ffn = 2 * 2 * length * hidden * intermediate
    return qkv + scores + context + output + ffn


def text_flops(length: int, shape: EncoderShape) -> int:
    """Useful FLOPs of one text of ``length`` real tokens ([CLS] and [SEP] included)."""
    if length <= 0:
        return 0
    head = 2 * shape.hidden_size * shape.hidden_size + 2 * shape.hidden_size * shape.num_labels
    layer = layer_flops(length, shape.hidden_size, shape.intermediate_size, shape.attention_width)
    return shape.num_hidden_layers * layer + head


def total_flops(lengths: Iterable[int], shape: EncoderShape) -> int:
    return sum(text_flops(int(n), shape) for n in lengths)


def useful_flops_per_s(texts_per_s: float, lengths: Iterable[int], shape: EncoderShape) -> float:
    """Useful FLOP/s of serving ``texts_per_s`` texts drawn evenly from texts of these lengths."""
    lengths = list(lengths)
    if not lengths:
        return 0.0
    return texts_per_s * total_flops(lengths, shape) / len(lengths)
