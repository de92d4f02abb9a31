"""Depth pruning: keep some of the teacher's encoder layers, as they are, in a student with fewer layers.

A student of depth ``d`` is a copy of the teacher (embeddings, pooler and classifier included) whose
encoder holds ``d`` of the teacher's ``L`` layers, in their order, and whose ``config.json`` says
``num_hidden_layers: d``: an ordinary ``ErnieForSequenceClassification`` that loads, exports and serves
like any other. Which layers it keeps is a :data:`LAYER_SELECTIONS` rule:

* ``spread`` (the default): ``d`` layers evenly spaced from the first to the last, rounded half up
  (``d = 1`` keeps the last). Both ends of the stack keep the input and output they were trained with:
  the first layer still reads the embeddings, the pooler still reads the last layer. For 12 -> 6 this
  gives layers 0, 2, 4, 7, 9, 11, the layers Hugging Face's DistilBERT extraction script copies.
* ``bottom``: the first ``d`` layers.

During distillation, student layer ``i`` is compared with the teacher layer it was copied from
(:func:`hidden_state_map`). This module knows nothing of widths; :mod:`tritoncls.prune.prune` combines both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from tritoncls.errors import ConfigError

FLAG = "--depth_list"


def spread_layers(num_layers: int, depth: int) -> tuple[int, ...]:
    """``depth`` of ``num_layers`` layers (zero-based), evenly spaced from the first to the last."""
    if depth == 1:
        return (num_layers - 1,)
    step = Fraction(num_layers - 1, depth - 1)  # >= 1, so rounding keeps the layers distinct and in order
    return tuple(int(i * step + Fraction(1, 2)) for i in range(depth))


def bottom_layers(num_layers: int, depth: int) -> tuple[int, ...]:
    """The first ``depth`` layers."""
    return tuple(range(depth))


#: ``--layer_selection`` names and the rule each stands for: (teacher layers, depth) -> kept layers.
LAYER_SELECTIONS: dict[str, Callable[[int, int], tuple[int, ...]]] = {"spread": spread_layers,
                                                                      "bottom": bottom_layers}


@dataclass(frozen=True)
class DepthPlan:
    """The teacher layers one depth keeps."""

    depth: int
    teacher_layers: int  # how many the teacher has
    layers: tuple[int, ...]  # zero-based teacher layer of each student layer, in order
    selection: str = "spread"

    @property
    def pruned(self) -> bool:
        return self.depth < self.teacher_layers


def check_depths(depths: Sequence[int]) -> None:
    """Each depth a whole number >= 1, none repeated (the teacher's layer count is checked in :func:`plan_depths`)."""
    shown = " ".join(str(d) for d in depths)
    for depth in depths:
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ConfigError(f"{FLAG} {depth!r}: not a whole number. A depth is the number of encoder layers to keep, "
                              f"e.g. {FLAG} 4 3.")
        if depth < 1:
            raise ConfigError(f"{FLAG} {depth}: a depth is the number of encoder layers to keep, at least 1.")
    repeated = sorted({d for d in depths if list(depths).count(d) > 1})
    if repeated:
        raise ConfigError(f"{FLAG} {shown}: depths repeat ({', '.join(map(str, repeated))}); list each depth once.")


def check_selection(selection: str) -> None:
    if selection not in LAYER_SELECTIONS:
        raise ConfigError(f"--layer_selection {selection!r}: choose one of {', '.join(LAYER_SELECTIONS)}.")


def plan_depths(depths: Sequence[int], num_layers: int, selection: str = "spread") -> list[DepthPlan]:
    """The layers kept at each depth; ConfigError naming the depth when the teacher has fewer layers."""
    check_depths(depths)
    check_selection(selection)
    too_deep = [d for d in depths if d > num_layers]
    if too_deep:
        raise ConfigError(f"{FLAG} {' '.join(map(str, too_deep))}: the teacher has {num_layers} encoder layers; give "
                          f"depths from 1 to {num_layers} ({num_layers} keeps every layer).")
    return [DepthPlan(d, num_layers, LAYER_SELECTIONS[selection](num_layers, d), selection) for d in depths]


def keep_layers(model, layers: Sequence[int]) -> None:
    """Keep only the encoder layers ``layers`` of ``model`` (in that order), in place, and record the new count in
    ``model.config.num_hidden_layers`` so that a saved checkpoint rebuilds the same model."""
    import paddle

    encoder = model.ernie.encoder
    kept = [encoder.layers[i] for i in layers]
    encoder.layers = paddle.nn.LayerList(kept)
    encoder.num_layers = len(kept)
    model.config.num_hidden_layers = len(kept)


def hidden_state_map(layers: Sequence[int]) -> list[int]:
    """For each of a student's hidden states (the embeddings' output, then each layer's), the index of the teacher
    hidden state it is distilled towards: the embeddings to the embeddings, layer ``i`` to the teacher layer it was
    copied from (hidden state ``layers[i] + 1``)."""
    return [0] + [int(k) + 1 for k in layers]
