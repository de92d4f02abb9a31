"""Word-level interpretation of one prediction: integrated gradients on the word embeddings (Paddle dynamic
graph), optionally occlusion (delete one token, see the probability fall); as a coloured HTML page and in the
terminal (ANSI colours).

Integrated gradients (Sundararajan et al., 2017): with ``x`` the text's word embeddings and ``x'`` a baseline
in which every token but [CLS]/[SEP] is [PAD], a token's attribution is ``(x - x') . mean_a grad F(x' + a(x - x'))``
summed over its embedding, with ``F`` the target class's logit and ``a`` at ``steps`` midpoints in (0, 1).
The attributions add up to ``F(x) - F(x')`` (completeness) up to the discretisation error.

Which label is explained: ``label`` when given; otherwise, for a multi-class checkpoint the predicted label, and
for a multi-label or hierarchical one (its ``task.json``) each predicted label (at the thresholds saved with the
checkpoint, a path only with its parent), or the most probable label when none is predicted, so every text gets at
least one explanation. For label sets the probability shown (and occlusion's fall) is that label's own sigmoid,
not a softmax; the integrated gradients explain its logit, which the sigmoid turns into it monotonically.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("ig", "occlusion")


@dataclass
class InterpretConfig:
    checkpoint: str = "./checkpoint"
    text: list[str] = field(default_factory=list)
    input: str | None = None  # a file of texts (one a line; a label after a tab is ignored)
    dataset_dir: str | None = None  # when given, its label file must be the checkpoint's
    label_file: str = "label.txt"
    label: str | None = None  # the label to explain (default: the predicted one(s); see the module docstring)
    methods: list[str] = field(default_factory=lambda: ["ig"])
    steps: int = 50
    output: str = "./audit"
    max_seq_length: int = 128
    device: str = "cpu"
    terminal: bool = True

    def __post_init__(self) -> None:
        if not self.text and not self.input:
            raise ConfigError("nothing to explain: pass --text TEXT (one or more) or --input FILE.")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"--methods {' '.join(self.methods)}: choose one or more of {', '.join(METHODS)}.")
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}.")


@dataclass
class Explanation:
    text: str
    tokens: list[str]
    target: int
    probability: float  # of the target class (its sigmoid, for label sets)
    attributions: np.ndarray  # per token, [CLS]/[SEP] included (0 there)
    logit: float
    baseline_logit: float
    occlusion: np.ndarray | None = None  # per token: target probability drop when it is deleted
    predicted: tuple[int, ...] = ()  # the labels the checkpoint predicts for the text


def _special_mask(model, ids: Sequence[int], tokenizer) -> np.ndarray:
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    return np.array([i in special for i in ids])


def integrated_gradients(model, ids: Sequence[int], special: np.ndarray, target: int, steps: int,
                         chunk: int = 25) -> tuple[np.ndarray, float, float]:
    """Per-token attributions for ``target``'s logit, the logit at the text and at the baseline."""
    import paddle

    pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
    base_ids = np.where(special, np.asarray(ids), pad_id)
    embed = model.ernie.embeddings.word_embeddings
    with paddle.no_grad():
        x = embed(paddle.to_tensor(np.asarray(ids)[None]))
        base = embed(paddle.to_tensor(base_ids[None]))
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    grads = np.zeros(x.shape[1:], dtype=np.float64)
    for start in range(0, steps, chunk):
        a = paddle.to_tensor(alphas[start:start + chunk]).reshape([-1, 1, 1])
        points = (base + a * (x - base)).detach()
        points.stop_gradient = False
        logits = _logits(model, points)
        (grad,) = paddle.grad(logits[:, target].sum(), points)
        grads += grad.numpy().sum(0)
    attributions = ((x - base).numpy()[0] * grads / steps).sum(-1)
    with paddle.no_grad():
        ends = _logits(model, paddle.concat([x, base]))[:, target].numpy()
    return attributions, float(ends[0]), float(ends[1])


def _logits(model, embeddings):
    import paddle

    batch, length = embeddings.shape[0], embeddings.shape[1]
    return model(inputs_embeds=embeddings, token_type_ids=paddle.zeros([batch, length], dtype="int64"),
                 attention_mask=paddle.ones([batch, length], dtype="float32"))


def _probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    from tritoncls.runtime import sigmoid, softmax

    return sigmoid(logits) if multi_label else softmax(logits)


def target_probabilities(model, rows: list[list[int]], target: int, batch_size: int = 32,
                         multi_label: bool = False) -> np.ndarray:
    """Probability of ``target`` (softmax, or its own sigmoid for ``multi_label``) for each token-id row."""
    from tritoncls.modeling.dynamic import Encoded, predict_logits

    encoded = Encoded(rows, [[0] * len(r) for r in rows])
    return _probabilities(predict_logits(model, encoded, batch_size), multi_label)[:, target]


def occlusion(model, ids: list[int], special: np.ndarray, target: int, multi_label: bool = False) -> np.ndarray:
    """Per token: how much the target's probability falls when that token is deleted (0 for [CLS]/[SEP])."""
    positions = [i for i in range(len(ids)) if not special[i]]
    rows = [ids] + [ids[:i] + ids[i + 1:] for i in positions]
    probs = target_probabilities(model, rows, target, multi_label=multi_label)
    drops = np.zeros(len(ids))
    drops[positions] = probs[0] - probs[1:]
    return drops


def explain(model, tokenizer, text: str, target: int | None, steps: int, max_seq_length: int,
            methods: Sequence[str] = ("ig",)) -> Explanation:
    """Explain ``target``'s score (default: the predicted label) for ``text`` by the chosen ``methods``
    (a multi-class model)."""
    return explain_text(model, tokenizer, text, None, target, steps, max_seq_length, methods)[0]


def chosen_targets(probs: np.ndarray, head, label: int | None) -> tuple[list[int], tuple[int, ...]]:
    """The label ids to explain for one text's probabilities, and the labels ``head`` predicts: ``label`` when
    given; else the predicted labels (multi-class: the most probable), or the most probable when none is."""
    predicted = tuple(int(i) for i in np.flatnonzero(head.decide(probs[None])[0]))
    if label is not None:
        return [label], predicted
    return (list(predicted) or [int(probs.argmax())]), predicted


def explain_text(model, tokenizer, text: str, head, label: int | None, steps: int, max_seq_length: int,
                 methods: Sequence[str] = ("ig",)) -> list[Explanation]:
    """One explanation per label chosen by :func:`chosen_targets` (``head``: the checkpoint's task; None is
    multi-class), by the chosen ``methods``."""
    from tritoncls.runtime import TaskSpec

    ids = tokenizer(text, max_length=max_seq_length, truncation=True)["input_ids"]
    special = _special_mask(model, ids, tokenizer)
    multi_label = head is not None and head.spec.multi_label
    probs = all_probabilities(model, ids, multi_label)
    head = head or TaskSpec().head([str(i) for i in range(len(probs))])
    targets, predicted = chosen_targets(probs, head, label)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    out = []
    for target in targets:
        if "ig" in methods:
            attributions, logit, baseline = integrated_gradients(model, ids, special, target, steps)
        else:
            attributions, logit, baseline = np.zeros(len(ids)), float("nan"), float("nan")
        drops = occlusion(model, ids, special, target, multi_label) if "occlusion" in methods else None
        out.append(Explanation(text=text, tokens=tokens, target=target, probability=float(probs[target]),
                               attributions=attributions, logit=logit, baseline_logit=baseline, occlusion=drops,
                               predicted=predicted))
    return out


# ---------------------------------------------------------------------------------------------
# Faithfulness: deleting the top-attributed tokens should hurt more than deleting random ones
# ---------------------------------------------------------------------------------------------


def deletion_drops(model, tokenizer, texts: Sequence[str], k: int, steps: int, max_seq_length: int,
                   seed: int) -> dict[str, float]:
    """Mean fall of the predicted class's probability when the ``k`` tokens with the highest IG attribution are
    deleted, and when ``k`` random tokens are; over texts with more than ``k`` real tokens."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    top, rand, used = [], [], 0
    for text in tqdm(texts, desc="faithfulness", unit="text", leave=False):
        ids = tokenizer(text, max_length=max_seq_length, truncation=True)["input_ids"]
        special = _special_mask(model, ids, tokenizer)
        real = np.flatnonzero(~special)
        if len(real) <= k:
            continue
        target = int(all_probabilities(model, ids).argmax())
        attributions, _, _ = integrated_gradients(model, ids, special, target, steps)
        best = real[np.argsort(-attributions[real], kind="stable")[:k]]
        random_rows = rng.choice(real, size=k, replace=False)
        rows = [ids, _delete(ids, best), _delete(ids, random_rows)]
        p = target_probabilities(model, rows, target)
        top.append(p[0] - p[1])
        rand.append(p[0] - p[2])
        used += 1
    return {"texts": used, "top_k_drop": float(np.mean(top)), "random_k_drop": float(np.mean(rand)),
            "ratio": float(np.mean(top) / np.mean(rand)) if np.mean(rand) > 0 else float("inf")}


def all_probabilities(model, ids: list[int], multi_label: bool = False) -> np.ndarray:
    """Every label's probability for one token-id row (softmax, or a sigmoid per label for ``multi_label``)."""
    from tritoncls.modeling.dynamic import Encoded, predict_logits

    return _probabilities(predict_logits(model, Encoded([ids], [[0] * len(ids)]), 1), multi_label)[0]


def _delete(ids: list[int], positions: np.ndarray) -> list[int]:
    drop = set(int(p) for p in positions)
    return [t for i, t in enumerate(ids) if i not in drop]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


_HIDDEN = ("[CLS]", "[SEP]", "[PAD]")


def _pieces(tokens: Sequence[str]) -> list[tuple[str, bool]]:
    """Display text of each token and whether a space goes before it (none inside words or CJK runs);
    [CLS]/[SEP] show as nothing."""
    out = []
    for i, token in enumerate(tokens):
        if token in _HIDDEN:
            out.append(("", False))
        elif token.startswith("##"):
            out.append((token[2:], False))
        else:
            cjk = len(token) == 1 and not token.isascii()
            prev_cjk = i > 0 and len(tokens[i - 1]) == 1 and not tokens[i - 1].isascii()
            out.append((token, i > 1 and not (cjk and prev_cjk)))
    return out


def _scaled(values: np.ndarray) -> np.ndarray:
    top = float(np.abs(values).max()) if len(values) else 0.0
    return values / top if top > 0 else values


def ansi(explanation: Explanation, label: str, values: np.ndarray | None = None) -> str:
    """The text with each token's background green (for the label) or red (against), by strength."""
    greens, reds = (22, 28, 34, 40, 46), (52, 88, 124, 160, 196)
    scaled = _scaled(explanation.attributions if values is None else values)
    parts = []
    for (piece, space), v in zip(_pieces(explanation.tokens), scaled):
        level = min(4, int(abs(v) * 5))
        colour = (greens if v > 0 else reds)[level]
        coloured = piece and abs(v) >= 0.1
        parts.append((" " if space else "") + (f"\x1b[48;5;{colour}m\x1b[97m{piece}\x1b[0m" if coloured else piece))
    return f"{label} ({explanation.probability:.2f}): " + "".join(parts)


def html_spans(explanation: Explanation, values: np.ndarray) -> str:
    parts = []
    for (piece, space), v, raw in zip(_pieces(explanation.tokens), _scaled(values), values):
        if not piece:
            continue
        colour = f"rgba(0,150,0,{abs(v):.2f})" if v > 0 else f"rgba(220,0,0,{abs(v):.2f})"
        parts.append((" " if space else "") +
                     f"<span style='background:{colour}' title='{raw:+.4f}'>{html.escape(piece)}</span>")
    return "".join(parts)


def html_section(explanation: Explanation, label: str) -> str:
    rows = [f"<h2>{html.escape(label)} ({explanation.probability:.3f})</h2>"]
    if not np.isnan(explanation.logit):
        rows.append(f"<p>integrated gradients: {html_spans(explanation, explanation.attributions)}</p>"
                    f"<p><small>sum of attributions {explanation.attributions.sum():+.3f}; logit {explanation.logit:+.3f}, "
                    f"at the baseline {explanation.baseline_logit:+.3f}</small></p>")
    if explanation.occlusion is not None:
        rows.append(f"<p>occlusion: {html_spans(explanation, explanation.occlusion)}</p>")
    return "<div style='font-size:1.3em;margin-bottom:1.5em'>" + "".join(rows) + "</div>"


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def _texts(config: InterpretConfig) -> list[str]:
    from tritoncls.common import data

    texts = list(config.text)
    if config.input:
        texts += data.read_text_column(config.input)[0]
    return texts


def _labels(config: InterpretConfig, directory: Path, model) -> list[str]:
    from tritoncls.modeling import checkpoint as ckpt
    from tritoncls.training.audit import dataset

    saved = ckpt.saved_labels(directory)
    if config.dataset_dir:
        from tritoncls.common import data

        label_file = Path(config.dataset_dir) / config.label_file
        labels = data.read_labels(label_file)
        dataset.check_checkpoint_labels(directory, labels, label_file)
        saved = saved or labels
    labels = saved or [str(i) for i in range(int(model.config.num_labels))]
    if len(labels) != int(model.config.num_labels):
        raise ConfigError(f"{directory / 'label.txt'} lists {len(labels)} labels but the model predicts "
                          f"{model.config.num_labels}. Use the checkpoint's own label file.")
    return labels


def interpret(config: InterpretConfig) -> list[dict[str, Any]]:
    """Explain each text's prediction; write interpret.html and interpret.json; print to the terminal."""
    from tritoncls import modeling
    from tritoncls.modeling import checkpoint as ckpt
    from tritoncls.modeling.loop import set_device
    from tritoncls.training.audit import report

    set_device(config.device)
    directory = ckpt.resolve_checkpoint(config.checkpoint)
    model = modeling.load_checkpoint_model(directory)
    labels = _labels(config, directory, model)
    head = ckpt.saved_task(directory, labels).head(labels)
    if config.label is not None and config.label not in labels:
        raise ConfigError(f"--label {config.label!r} is not one of the checkpoint's labels: {', '.join(labels)}. "
                          f"Name one of them (as written in {directory / 'label.txt'}), or leave --label out to "
                          f"explain the predicted label{'s' if head.spec.multi_label else ''}.")
    label = labels.index(config.label) if config.label is not None else None
    tokenizer = modeling.load_tokenizer(directory)
    from tqdm import tqdm

    texts = _texts(config)
    explanations = [e for text in tqdm(texts, desc="interpret", unit="text", leave=False, disable=len(texts) < 10)
                    for e in explain_text(model, tokenizer, text, head, label, config.steps, config.max_seq_length,
                                          config.methods)]
    rows = [_row(e, labels, head.spec.multi_label) for e in explanations]
    if config.terminal:
        for e in explanations:
            print(ansi(e, labels[e.target]))  # noqa: T201 - the terminal view is this command's output
    columns = ["text", "label", "probability"] + (["predicted"] if head.spec.multi_label else [])
    table = report.Table("Interpretation", [f"checkpoint: {directory} ({head.task})", _which(config, head),
                                            f"methods: {', '.join(config.methods)}; "
                                            f"{config.steps} integrated-gradient steps; baseline: [PAD] tokens"],
                         columns, rows, {"checkpoint": str(directory), "task": head.task})
    body = "".join(html_section(e, labels[e.target]) for e in explanations)
    report.write_reports(config.output, "interpret", table, html_body=body)
    return rows


def _which(config: InterpretConfig, head) -> str:
    if config.label is not None:
        return f"explained: {config.label!r} in every text"
    if not head.spec.multi_label:
        return "explained: the predicted label"
    return ("explained: each predicted label (thresholds from the checkpoint's task.json), or the most probable "
            "one where none is predicted; probability: the label's own sigmoid")


def _row(e: Explanation, labels: list[str], multi_label: bool = False) -> dict[str, Any]:
    row = {"text": e.text, "label": labels[e.target], "probability": e.probability, "tokens": e.tokens,
           "integrated_gradients": [float(v) for v in e.attributions], "logit": e.logit,
           "baseline_logit": e.baseline_logit}
    if multi_label:
        row["predicted"] = ",".join(labels[i] for i in e.predicted) or "(none)"
    if e.occlusion is not None:
        row["occlusion"] = [float(v) for v in e.occlusion]
    return row
