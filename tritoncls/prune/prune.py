"""Width pruning, DynaBERT style: rank attention heads and FFN neurons, keep the best, distil; and depth
pruning: keep some of the teacher's layers (:mod:`tritoncls.prune.depth`), alone or with a width.

PaddleSlim's OFA conversion is broken on Paddle 3.3, so this is done here, on plain paddle layers:

1. **Importance** (Michel et al. 2019; DynaBERT): a mask of ones multiplies every head's output and
   every FFN neuron's activation; the importance of each is ``|dLoss/dmask|`` (the first-order
   estimate of what removing it costs), accumulated over batches of labelled texts.
2. **Reorder**: each layer's heads (their Q/K/V columns and output-projection rows) and FFN neurons
   (``linear1`` columns, ``linear2`` rows) are permuted most important first. Outputs are unchanged.
3. **Truncate**: width ``w`` keeps ``w x heads`` heads of unchanged head size and ``round(w x
   intermediate_size)`` neurons per layer. The hidden size stays, so embeddings, layer norms and the
   classifier are reused as they are. The result is an ordinary ``ErnieForSequenceClassification``
   whose ``config.json`` records ``attention_head_dim`` (see :mod:`tritoncls.modeling.ernie`).
4. **Depth** (``--depth_list``): a student of depth ``d`` keeps ``d`` of the teacher's layers
   (:data:`~tritoncls.prune.depth.LAYER_SELECTIONS`), after the width truncation of each. Every (depth,
   width) pair of the two lists is one student; the pair that keeps the whole teacher is the baseline.
5. **Distil** from the unpruned model: soft logits at a temperature plus the hard labels (and,
   optionally, every layer's hidden states; a depth-pruned student's layer ``i`` against the teacher
   layer it was copied from). The best checkpoint on dev is kept.

The task comes from the teacher checkpoint (``task.json``; none: multi-class), never from a flag:
multi-class models distil against the teacher's tempered softmax and are scored by dev accuracy;
multi-label and hierarchical ones distil against its tempered sigmoids (binary cross-entropy) and are
scored by the checkpoint's metric (macro-F1 unless ``task.json`` says micro-F1) at per-label thresholds
tuned on dev for each student, which its ``task.json`` and export keep
(:class:`~tritoncls.modeling.objective.Objective` does both, as in ``train``).

Layout of ``output``::

    teacher/                    only when --checkpoint is a Hugging Face classifier: its import
    unpruned/export/            the unpruned model, exported the same way (the baseline of the report)
    width_mult_0.75/checkpoint/ best distilled checkpoint on dev (config.json, weights, tokenizer, labels)
    width_mult_0.75/export/     static graph + ONNX + manifest.json, exactly as `tritoncls export` writes
    width_mult_0.67/ ...        (one directory per width; the name is the width rounded to 2 decimals)
    d4_w1/, d4_w1_2/ ...        depth-pruned students: 4 layers at width 1, at width 1/2 (the exact fraction)
    prune_report.md, prune_report.json
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls import modeling
from tritoncls.common import data, metrics
from tritoncls.common.offline import OfflineConfig, open_predictor
from tritoncls.common.versions import versions
from tritoncls.errors import ConfigError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling import hf
from tritoncls.modeling.dynamic import Encoded, encode, length_sorted_batches, pad_batch, predict_logits
from tritoncls.modeling.export import ExportConfig, export
from tritoncls.modeling.loop import DEVICES, adamw, epoch_batches, set_device, set_seed
from tritoncls.modeling.objective import DevScore, Objective
from tritoncls.prune import augment
from tritoncls.prune import depth as depths
from tritoncls.prune.depth import DepthPlan
from tritoncls.runtime import MULTI_CLASS, Manifest
from tritoncls.runtime.contract import ONNX_FILE

log = logging.getLogger(__name__)

REPORT_NAME = "prune_report"
BASELINE_NAME = "unpruned"
TEACHER_NAME = "teacher"  # a Hugging Face classifier imported as the teacher
IMPORTANCE_SPLITS = ("train", "dev")


#: The reference's (and older reports') names of :class:`PruneConfig` fields; prune reports written
#: with them still load in :func:`remeasure`.
RENAMED_FIELDS = {"params_dir": "checkpoint", "output_dir": "output", "per_device_train_batch_size": "batch_size",
                  "per_device_eval_batch_size": "eval_batch_size", "num_train_epochs": "epochs"}


@dataclass
class PruneConfig:
    """The reference ``prune.py`` options (same defaults; fields named like tritoncls' canonical flags, the
    reference's names are CLI aliases, see :data:`RENAMED_FIELDS`), plus the distillation and report knobs."""

    dataset_dir: str
    checkpoint: str = "./checkpoint"
    output: str = "./prune"
    device: str = "cpu"
    width_mult_list: list[str] = field(default_factory=lambda: ["3/4", "2/3", "1/2"])
    #: Encoder layers to keep; every (depth, width) pair is one student. Empty: the teacher's depth only.
    depth_list: list[int] = field(default_factory=list)
    #: Which layers a depth keeps: a name in :data:`tritoncls.prune.depth.LAYER_SELECTIONS`.
    layer_selection: str = "spread"
    batch_size: int = 32
    eval_batch_size: int = 32
    learning_rate: float = 3e-5
    epochs: int = 10
    logging_steps: int = 5
    save_steps: int = 50
    seed: int = 3
    max_seq_length: int = 128
    #: Softmax temperature of the distillation targets.
    temperature: float = 2.0
    #: Loss = w x T^2 x soft cross-entropy(teacher) + (1 - w) x cross-entropy(labels); for multi-label tasks
    #: binary cross-entropy against the teacher's tempered sigmoids and against the label sets.
    soft_label_weight: float = 0.5
    #: Added weight x sum over layers of MSE(student, teacher hidden states); 0 turns it off (faster:
    #: the teacher's logits are then computed once instead of every step).
    hidden_loss_weight: float = 0.0
    #: Changed copies of every training text the teacher labels for the student (:mod:`tritoncls.prune.augment`);
    #: 0: the training texts alone.
    augment_copies: int = 0
    #: Share of a copy's tokens that are masked, replaced or deleted.
    augment_rate: float = 0.15
    warmup_proportion: float = 0.1
    weight_decay: float = 0.0
    #: Texts that rank heads and neurons: train (default; keeps dev unseen) or dev (the reference).
    importance_split: str = "train"
    importance_max_examples: int = 2048
    #: Interleaved timing runs over the dev texts per model; the report gives the median and the fastest.
    latency_repeats: int = 5
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    #: Keep a student an earlier run into ``output`` finished (its export exists) with the same settings
    #: (:data:`STUDENT_KEYS`) instead of distilling it again.
    resume: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        positive = ("batch_size", "eval_batch_size", "epochs",
                    "logging_steps", "save_steps", "max_seq_length", "importance_max_examples", "latency_repeats")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {getattr(self, name)}.")
        if not self.learning_rate > 0 or not self.temperature > 0:
            raise ConfigError("--learning_rate and --temperature must be > 0.")
        if not 0 <= self.soft_label_weight <= 1:
            raise ConfigError(f"--soft_label_weight must lie in [0, 1], got {self.soft_label_weight}.")
        if self.hidden_loss_weight < 0 or self.weight_decay < 0 or not 0 <= self.warmup_proportion < 1:
            raise ConfigError("--hidden_loss_weight and --weight_decay must not be negative; "
                              "--warmup_proportion must lie in [0, 1).")
        if self.augment_copies < 0 or not 0 < self.augment_rate < 1:
            raise ConfigError(f"--augment_copies must not be negative (got {self.augment_copies}) and --augment_rate "
                              f"must lie in (0, 1) (got {self.augment_rate:g}).")
        if self.importance_split not in IMPORTANCE_SPLITS:
            raise ConfigError(f"--importance_split {self.importance_split!r}: choose one of {', '.join(IMPORTANCE_SPLITS)}.")
        if not self.width_mult_list:
            raise ConfigError("--width_mult_list is empty: give at least one width, e.g. 3/4.")
        names = [width_dir_name(parse_width(text)) for text in self.width_mult_list]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"--width_mult_list {' '.join(self.width_mult_list)}: widths repeat ({', '.join(duplicates)}); "
                              f"list each width once.")
        self.depth_list = list(self.depth_list or [])
        depths.check_depths(self.depth_list)
        depths.check_selection(self.layer_selection)

    def path(self, name: str) -> Path:
        return Path(self.dataset_dir) / name


# ---------------------------------------------------------------------------------------------
# Widths
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WidthPlan:
    """What one width keeps of every layer."""

    text: str  # as the user wrote it, e.g. "3/4"
    width: Fraction
    num_heads: int
    intermediate_size: int

    @property
    def name(self) -> str:
        return width_dir_name(self.width)


def parse_width(text: str) -> Fraction:
    """``"3/4"`` or ``"0.75"`` -> ``Fraction(3, 4)``; a width lies in (0, 1]."""
    try:
        width = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--width_mult_list {text!r}: not a number. Write widths as fractions (3/4) or decimals (0.75).") from None
    if not 0 < width <= 1:
        raise ConfigError(f"--width_mult_list {text}: a width must lie in (0, 1], the share of heads and neurons kept.")
    return width


def width_dir_name(width: Fraction) -> str:
    """``width_mult_0.75``, ``width_mult_0.67``, ``width_mult_0.5``: the reference's naming (2 decimals)."""
    return f"width_mult_{round(float(width), 2):g}"


def plan_widths(texts: Sequence[str], num_heads: int, intermediate_size: int) -> list[WidthPlan]:
    """Heads and neurons kept at each width; ConfigError naming the width when ``w x heads`` is fractional."""
    plans = []
    for text in texts:
        width = parse_width(text)
        heads = width * num_heads
        if heads.denominator != 1:
            valid = " ".join(str(Fraction(k, num_heads)) for k in range(1, num_heads + 1))
            raise ConfigError(
                f"--width_mult_list {text}: {text} x {num_heads} attention heads = {float(heads):.3g}, not a whole "
                f"number of heads. Use widths w with w x {num_heads} an integer: {valid}."
            )
        neurons = int(width * intermediate_size + Fraction(1, 2))  # round half up
        plans.append(WidthPlan(str(text), width, int(heads), max(1, neurons)))
    return plans


@dataclass(frozen=True)
class StudentPlan:
    """One student: a width, and the teacher layers it keeps (``depth`` None: all of them)."""

    width: WidthPlan
    depth: DepthPlan | None = None

    @property
    def depth_pruned(self) -> bool:
        return self.depth is not None and self.depth.pruned

    @property
    def name(self) -> str:
        """``width_mult_0.5`` with every layer (the reference's naming, as before depth pruning), ``d4_w1_2`` with
        4 layers at width 1/2 (``d4_w1`` at full width)."""
        if not self.depth_pruned:
            return self.width.name
        w = self.width.width
        return f"d{self.depth.depth}_w{w.numerator}" + (f"_{w.denominator}" if w.denominator != 1 else "")

    @property
    def text(self) -> str:  # the width as the user wrote it, what the report's width column shows
        return self.width.text

    @property
    def hidden_state_map(self) -> list[int] | None:
        """The teacher hidden state each student hidden state is distilled towards; None: the same index."""
        return depths.hidden_state_map(self.depth.layers) if self.depth_pruned else None


def plan_students(config: PruneConfig, arch: dict[str, Any]) -> list[StudentPlan]:
    """Every (depth, width) pair of ``--depth_list`` x ``--width_mult_list``, depths outer, in the order given.

    Without ``--depth_list`` every width keeps all layers (as before depth pruning). With it, the pair that keeps the
    whole teacher (its depth, width 1) is skipped: it is the report's unpruned baseline. ConfigError naming the flag
    when a width or depth does not fit the teacher, or when no pair prunes anything.
    """
    widths = plan_widths(config.width_mult_list, int(arch["num_attention_heads"]), int(arch["intermediate_size"]))
    if not config.depth_list:
        return [StudentPlan(w) for w in widths]
    layers = int(arch["num_hidden_layers"])
    plans = [StudentPlan(w, d) for d in depths.plan_depths(config.depth_list, layers, config.layer_selection)
             for w in widths if d.pruned or w.width < 1]
    if not plans:
        raise ConfigError(f"--depth_list {' '.join(map(str, config.depth_list))} with --width_mult_list "
                          f"{' '.join(config.width_mult_list)}: every pair keeps the whole teacher ({layers} layers, "
                          f"width 1), which the report holds as its baseline. Give a depth below {layers} or a width "
                          f"below 1.")
    return plans


# ---------------------------------------------------------------------------------------------
# Importance, reordering, truncation (in place on paddle layers)
# ---------------------------------------------------------------------------------------------


def _layers(model) -> list:
    return list(model.ernie.encoder.layers)


def _mask_input(layer, mask, row: int, repeat: int):
    """Multiply ``layer``'s input by ``mask[row]`` (each entry repeated ``repeat`` times)."""
    import paddle

    def hook(_layer, inputs):
        scale = mask[row] if repeat == 1 else paddle.repeat_interleave(mask[row], repeat)
        return (inputs[0] * scale,) + tuple(inputs[1:])

    return layer.register_forward_pre_hook(hook)


def importance(model, enc: Encoded, labels: np.ndarray, batch_size: int,
               loss: Callable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Head ``[layers, heads]`` and FFN-neuron ``[layers, intermediate]`` importance scores.

    Each score is ``sum over batches |dLoss/dmask|`` for a mask of ones on that head's attention
    output (the input of ``out_proj``) or that neuron's activation (the input of ``linear2``).
    ``labels`` and ``loss`` are the task's (:class:`Objective`): class ids and cross-entropy (the
    default), or multi-hot rows and binary cross-entropy. Runs in eval mode (no dropout); the weights
    receive no gradient.
    """
    import paddle
    import paddle.nn.functional as F

    loss = loss or F.cross_entropy
    layers = _layers(model)
    heads = paddle.ones([len(layers), layers[0].self_attn.num_heads])
    neurons = paddle.ones([len(layers), layers[0].linear1.weight.shape[1]])
    heads.stop_gradient = neurons.stop_gradient = False
    hooks = [_mask_input(layer.self_attn.out_proj, heads, i, layer.self_attn.head_dim) for i, layer in enumerate(layers)]
    hooks += [_mask_input(layer.linear2, neurons, i, 1) for i, layer in enumerate(layers)]
    trainable = [p for p in model.parameters() if not p.stop_gradient]
    for p in trainable:
        p.stop_gradient = True
    was_training = model.training
    model.eval()
    head_scores = np.zeros(heads.shape, dtype=np.float64)
    neuron_scores = np.zeros(neurons.shape, dtype=np.float64)
    pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
    try:
        for rows in length_sorted_batches(enc, batch_size):
            ids, types = pad_batch(enc, rows, pad_id)
            logits = model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types))
            loss(logits, paddle.to_tensor(labels[rows])).backward()
            head_scores += np.abs(heads.grad.numpy())
            neuron_scores += np.abs(neurons.grad.numpy())
            heads.clear_gradient()
            neurons.clear_gradient()
    finally:
        for hook in hooks:
            hook.remove()
        for p in trainable:
            p.stop_gradient = False
        if was_training:
            model.train()
    return head_scores, neuron_scores


def _linear(weight: np.ndarray, bias: np.ndarray):
    import paddle

    layer = paddle.nn.Linear(*weight.shape)
    layer.weight.set_value(np.ascontiguousarray(weight))
    layer.bias.set_value(np.ascontiguousarray(bias))
    return layer


def select_heads(attn, heads: np.ndarray) -> None:
    """Keep the heads ``heads`` of ``attn``, in that order (a permutation reorders, a prefix truncates)."""
    dim = attn.head_dim
    cols = (np.asarray(heads)[:, None] * dim + np.arange(dim)).ravel()
    for name in ("q_proj", "k_proj", "v_proj"):
        proj = getattr(attn, name)
        setattr(attn, name, _linear(proj.weight.numpy()[:, cols], proj.bias.numpy()[cols]))
    attn.out_proj = _linear(attn.out_proj.weight.numpy()[cols, :], attn.out_proj.bias.numpy())
    attn.num_heads = len(heads)


def select_neurons(layer, neurons: np.ndarray) -> None:
    """Keep the FFN neurons ``neurons`` of an encoder layer, in that order."""
    neurons = np.asarray(neurons)
    w1, b1 = layer.linear1.weight.numpy(), layer.linear1.bias.numpy()
    layer.linear1 = _linear(w1[:, neurons], b1[neurons])
    layer.linear2 = _linear(layer.linear2.weight.numpy()[neurons, :], layer.linear2.bias.numpy())


def reorder(model, head_scores: np.ndarray, neuron_scores: np.ndarray) -> None:
    """Permute every layer's heads and neurons most important first; the model's outputs do not change."""
    for layer, heads, neurons in zip(_layers(model), head_scores, neuron_scores):
        select_heads(layer.self_attn, np.argsort(-heads, kind="stable"))
        select_neurons(layer, np.argsort(-neurons, kind="stable"))


def truncated_copy(model, num_heads: int, intermediate_size: int):
    """A copy of ``model`` keeping the first ``num_heads`` heads and ``intermediate_size`` neurons per layer."""
    student = copy.deepcopy(model)
    head_dim = modeling.attention_head_dim(student.config)
    for layer in _layers(student):
        select_heads(layer.self_attn, np.arange(num_heads))
        select_neurons(layer, np.arange(intermediate_size))
    student.config.num_attention_heads = num_heads
    student.config.intermediate_size = intermediate_size
    setattr(student.config, modeling.HEAD_DIM_FIELD, head_dim)
    return student


def student_copy(model, plan: StudentPlan):
    """A copy of ``model`` (heads and neurons ranked) pruned as ``plan`` says: its width, then its layers. At width 1
    the attention is left as it is, so a depth-only student's config.json is the teacher's but for its layer count."""
    if plan.width.width == 1:
        student = copy.deepcopy(model)
    else:
        student = truncated_copy(model, plan.width.num_heads, plan.width.intermediate_size)
    if plan.depth_pruned:
        depths.keep_layers(student, plan.depth.layers)
    return student


def parameter_count(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


# ---------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------


@dataclass
class _Data:
    objective: Objective  # the task's targets, losses and dev score
    train: Encoded
    train_y: np.ndarray
    dev: Encoded
    dev_y: np.ndarray
    dev_texts: list[str]
    teacher_logits: np.ndarray | None  # precomputed on train when no hidden-state loss is used


def _distil_loss(student, teacher, ids, types, y, teacher_logits, config: PruneConfig, objective: Objective,
                 hidden_state_map: Sequence[int] | None = None):
    """Soft-label + hard-label (+ hidden-state) loss of one batch, as ``objective``'s task defines them.

    ``hidden_state_map``: the teacher hidden state each student hidden state is compared with (a depth-pruned
    student's, :attr:`StudentPlan.hidden_state_map`); None: the same index, for students with every layer.
    """
    import paddle
    import paddle.nn.functional as F

    hidden = config.hidden_loss_weight > 0
    out = student(ids, token_type_ids=types, output_hidden_states=hidden, return_dict=hidden)
    logits = out.logits if hidden else out
    if hidden:
        with paddle.no_grad():
            target = teacher(ids, token_type_ids=types, output_hidden_states=True, return_dict=True)
        teacher_logits = target.logits
    w = config.soft_label_weight
    soft = objective.distillation_loss(logits, teacher_logits, config.temperature)  # T^2 included
    loss = w * soft + (1 - w) * objective.loss()(logits, y)
    if hidden:
        targets = list(target.hidden_states)
        if hidden_state_map is not None:
            targets = [targets[i] for i in hidden_state_map]
        if len(targets) != len(out.hidden_states):
            raise ConfigError(f"--hidden_loss_weight {config.hidden_loss_weight:g}: the student has "
                              f"{len(out.hidden_states) - 1} layers and the teacher {len(target.hidden_states) - 1}, "
                              f"and no map says which teacher layer each student layer learns from; set "
                              f"--hidden_loss_weight 0 or prune the depth with --depth_list.")
        mse = sum(F.mse_loss(s, h) for s, h in zip(out.hidden_states, targets))
        loss = loss + config.hidden_loss_weight * mse
    return loss


def _dev_score(model, d: _Data, batch_size: int) -> DevScore:
    """Dev accuracy, or the task's F1 at thresholds tuned on dev for this very model."""
    return d.objective.score(predict_logits(model, d.dev, batch_size), d.dev_y)


def distil(student, teacher, plan: WidthPlan | StudentPlan, d: _Data, config: PruneConfig, save) -> dict[str, Any]:
    """Train ``student`` on the teacher's outputs; ``save(student, state, dev)`` whenever the dev score improves
    (``dev``: the :class:`DevScore`, thresholds included)."""
    import paddle

    hidden_state_map = plan.hidden_state_map if isinstance(plan, StudentPlan) else None
    lengths = d.train.lengths()
    bs = config.batch_size
    steps_per_epoch = len(epoch_batches(lengths, bs, 0, 0, 1))
    optimizer, lr = adamw(student, config.learning_rate, config.weight_decay,
                          steps_per_epoch * config.epochs, config.warmup_proportion)
    teacher.eval()
    metric = d.objective.metric
    state = {"global_step": 0, "epoch": 0, "metric": metric, "best_dev_score": -1.0, "best_step": 0, "evaluations": []}
    started = time.perf_counter()
    since_evaluation = 0  # steps; --save_steps counts from the last evaluation, epoch ends included

    def evaluate() -> None:
        nonlocal since_evaluation
        since_evaluation = 0
        dev = _dev_score(student, d, config.eval_batch_size)
        state["evaluations"].append({"step": state["global_step"], "dev_score": dev.score})
        if dev.score > state["best_dev_score"]:
            state.update(best_dev_score=dev.score, best_step=state["global_step"])
            save(student, state, dev)
        log.info("%s step %d: dev %s %.4f (best %.4f at step %d)", plan.name, state["global_step"], metric,
                 dev.score, state["best_dev_score"], state["best_step"])

    for epoch in range(1, config.epochs + 1):
        student.train()
        losses: list[float] = []
        for rows in epoch_batches(lengths, bs, config.seed + epoch, 0, 1):
            ids, types = (paddle.to_tensor(a) for a in pad_batch(d.train, rows, int(student.config.pad_token_id or 0)))
            target = None if d.teacher_logits is None else paddle.to_tensor(d.teacher_logits[rows])
            loss = _distil_loss(student, teacher, ids, types, paddle.to_tensor(d.train_y[rows]), target, config,
                                d.objective, hidden_state_map)
            loss.backward()
            optimizer.step()
            lr.step()
            optimizer.clear_grad()
            state["global_step"] += 1
            since_evaluation += 1
            losses.append(float(loss))
            if state["global_step"] % config.logging_steps == 0:
                log.info("%s epoch %d step %d/%d: loss %.4f, lr %.3g", plan.name, epoch, state["global_step"],
                         steps_per_epoch * config.epochs, float(np.mean(losses[-config.logging_steps:])),
                         optimizer.get_lr())
            if since_evaluation >= config.save_steps:
                evaluate()
        state["epoch"] = epoch
        if since_evaluation:
            evaluate()
    state["seconds"] = time.perf_counter() - started
    return state


# ---------------------------------------------------------------------------------------------
# Measurement and report
# ---------------------------------------------------------------------------------------------


#: How the report names each metric: in prose, and in a table column.
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "micro_f1": "micro-F1"}
METRIC_COLUMNS = {"accuracy": "acc", "macro_f1": "macro-F1", "micro_f1": "micro-F1"}
#: The label-set scores kept for every export of a multi-label task (fractions).
SET_SCORES = ("macro_f1", "micro_f1", "subset_accuracy")


@dataclass
class WidthResult:
    """One row of the report. Its dev scores are of ``metric``: accuracy for a multi-class model, macro-F1 (or
    micro-F1) at the model's own per-label thresholds for a multi-label one. The JSON rows name them
    ``dev_<metric>...`` too (``dev_accuracy``, ``dev_accuracy_truncated``, as before multi-label tasks)."""

    name: str
    width: str
    num_attention_heads: int
    attention_head_dim: int
    intermediate_size: int
    parameters: int
    onnx_bytes: int
    export_dir: str
    checkpoint_dir: str | None = None
    metric: str = "accuracy"
    num_hidden_layers: int | None = None  # encoder layers (None in reports written before depth pruning)
    layers_kept: list[int] | None = None  # the teacher layer (zero-based) each encoder layer was copied from
    dev_score_truncated: float | None = None  # right after truncation, before distillation
    dev_score_best_dynamic: float | None = None  # best during distillation (Paddle dynamic graph)
    distil_seconds: float | None = None
    dev_score: float = float("nan")  # the export, through ONNX Runtime and its head (thresholds included)
    dev_set_scores: dict[str, float] = field(default_factory=dict)  # multi-label: SET_SCORES of the export
    ms_per_text: float = float("nan")  # median over the timing runs
    ms_per_text_best: float = float("nan")  # fastest run: the least disturbed by other load on the machine
    ms_per_text_runs: list[float] = field(default_factory=list)

    def named(self) -> dict[str, float | None]:
        """The dev scores under the metric's own keys: ``dev_accuracy``, ``dev_macro_f1_truncated``, ..."""
        key = f"dev_{self.metric}"
        return {key: self.dev_score, f"{key}_truncated": self.dev_score_truncated,
                f"{key}_best_dynamic": self.dev_score_best_dynamic}

    def label(self, base: WidthResult) -> str:
        """How the report names the row: its width, or ``d4 w1/2`` when it has fewer layers than ``base``."""
        return self.width if self.num_hidden_layers == base.num_hidden_layers else f"d{self.num_hidden_layers} w{self.width}"


#: Measured again by every timing session, so not read back from a report.
MEASURED = ("dev_score", "dev_set_scores", "ms_per_text", "ms_per_text_best", "ms_per_text_runs")
#: Row keys of reports written before multi-label tasks, and the fields they now fill.
LEGACY_ROW_KEYS = {"dev_accuracy_truncated": "dev_score_truncated", "dev_accuracy_best_dynamic": "dev_score_best_dynamic"}


def row_from_report(row: dict[str, Any]) -> WidthResult:
    """A report row (this format or the one before multi-label tasks) without its measured figures."""
    kept = {f.name for f in fields(WidthResult)} - set(MEASURED)
    values = {LEGACY_ROW_KEYS.get(key, key): value for key, value in row.items()}
    return WidthResult(**{k: v for k, v in values.items() if k in kept})


@dataclass
class PruneResult:
    rows: list[WidthResult]
    report_md: Path
    report_json: Path
    skipped: list[str] = field(default_factory=list)  # students not distilled: the deadline had passed


def measure(results: list[WidthResult], texts: list[str], truth: np.ndarray, batch_size: int, repeats: int,
            metric: str = "accuracy") -> None:
    """Dev score and in-process latency of every export, runs interleaved so load drift hits all alike.

    ``truth``: class ids (``metric`` accuracy) or the multi-hot dev rows. Each export is scored as it
    serves: its manifest's head decides the labels (argmax, or its own per-label thresholds).
    """
    predictors = [open_predictor(OfflineConfig(model=r.export_dir, batch_size=batch_size)) for r in results]
    for predictor in predictors:
        predictor.predict_probs(texts[:batch_size])  # warm-up: session and allocator setup
    last = {}
    for _ in range(repeats):
        for result, predictor in zip(results, predictors):
            last[result.name] = run = predictor.predict_probs(texts)
            result.ms_per_text_runs.append(1000.0 * run.seconds / len(texts))
    for result, predictor in zip(results, predictors):
        result.ms_per_text = float(np.median(result.ms_per_text_runs))
        result.ms_per_text_best = float(np.min(result.ms_per_text_runs))
        _score_export(result, predictor, last[result.name], truth, metric)


def _score_export(result: WidthResult, predictor, run, truth: np.ndarray, metric: str) -> None:
    if metric == "accuracy":
        result.dev_score = metrics.score(metric, truth, run.probs.argmax(1))
        return
    if not predictor.head.spec.multi_label:
        raise ConfigError(f"{result.export_dir}: a {predictor.head.task} export, but the teacher is scored by "
                          f"{metric}; export the checkpoint again (its task.json gives the task).")
    truth = truth.astype(bool)
    result.dev_score = metrics.score(metric, truth, run.mask)
    scores = metrics.set_scores(truth, run.mask)
    result.dev_set_scores = {name: scores[name] / 100.0 for name in SET_SCORES}


def timing_session(rows: list[WidthResult], repeats: int, load_before: float) -> dict[str, Any]:
    """One timing session's figures, kept in the report so sessions on a noisy machine can be compared."""
    import datetime

    base = rows[0].ms_per_text
    return {
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "repeats": repeats,
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "ms_per_text": {r.name: r.ms_per_text for r in rows},
        "latency_ratio": {r.name: r.ms_per_text / base for r in rows},
    }


def _ratios(row: WidthResult, base: WidthResult) -> dict[str, float]:
    delta = 100.0 * (row.dev_score - base.dev_score)
    return {
        f"{row.metric}_delta_points": delta,  # accuracy_delta_points for a multi-class model
        "score_delta_points": delta,
        "latency_ratio": row.ms_per_text / base.ms_per_text,
        "latency_ratio_best_run": row.ms_per_text_best / base.ms_per_text_best,
        "onnx_size_ratio": row.onnx_bytes / base.onnx_bytes,
        "parameter_ratio": row.parameters / base.parameters,
    }


def write_report(out: Path, rows: list[WidthResult], config: PruneConfig, source: Path, dev_size: int,
                 sessions: Sequence[dict[str, Any]] = (), task: str = MULTI_CLASS, skipped: Sequence[str] = ()
                 ) -> tuple[Path, Path]:
    """prune_report.json and .md; ``sessions``: every timing session so far, this one last; ``skipped``: the
    students a deadline left undistilled."""
    base = rows[0]
    metric = base.metric
    setup = {
        "teacher": str(source),
        "task": task,
        "metric": metric,
        "dev_file": str(config.path(config.dev_file)),
        "dev_texts": dev_size,
        "latency": {"runtime": "onnxruntime (runtime.Predictor)", "batch_size": config.eval_batch_size,
                    "sorted_by_length": True, "threads": os.cpu_count(), "statistic": "median",
                    "runs": config.latency_repeats},
    }
    payload = {"setup": setup, "config": asdict(config), "versions": versions(),
               "rows": [asdict(r) | r.named() | _ratios(r, base) for r in rows], "timing_sessions": list(sessions),
               "skipped": list(skipped)}
    json_path = out / f"{REPORT_NAME}.json"
    ckpt.write_json(json_path, payload)
    name, column = METRIC_NAMES[metric], METRIC_COLUMNS[metric]
    other = [m for m in ("macro_f1", "micro_f1") if m != metric] if metric != "accuracy" else []
    deep = [r for r in rows[1:] if r.num_hidden_layers != base.num_hidden_layers]  # depth-pruned rows
    layers = "layers | " if deep else ""  # a width-only report keeps its columns
    lines = [
        "# Depth and width pruning report" if deep else "# Width pruning report", "",
        f"Teacher `{source}`; dev `{setup['dev_file']}` ({dev_size} texts); max_seq_length {config.max_seq_length}; "
        f"distillation {config.epochs} epoch(s), lr {config.learning_rate:g}, T {config.temperature:g}, "
        f"soft-label weight {config.soft_label_weight:g}, hidden-state weight {config.hidden_loss_weight:g}"
        + (f", {config.augment_copies} augmented copies of each training text ({100 * config.augment_rate:g}% of "
           f"tokens changed), labelled by the teacher" if config.augment_copies else "") + ".", "",
    ]
    if task != MULTI_CLASS:
        lines += [f"Task {task} (from the teacher's task.json): soft targets are the teacher's tempered sigmoids "
                  f"(binary cross-entropy). Dev {name} of each export at its own per-label thresholds, tuned on dev "
                  f"for that model and kept in its checkpoint's task.json and its manifest.", ""]
    lines += [
        f"Latency: in-process ONNX Runtime (`tritoncls.runtime.Predictor`), batch {config.eval_batch_size}, texts sorted "
        f"by length, {os.cpu_count()} threads; median of {config.latency_repeats} interleaved runs over the dev texts, "
        f"tokenization included (every run, and the fastest, are in the JSON). Ratios are to the unpruned model "
        f"measured in the same run.", "",
        f"| {layers}width | heads x dim | FFN | params (M) | ONNX (MB) | dev {column} (%) | Δ {column} (pts) | "
        + "".join(f"dev {METRIC_COLUMNS[m]} (%) | " for m in other) + "ms/text | latency ratio | size ratio |",
        "|---|---|---|---|---|---|---|" + "---|" * (len(other) + bool(deep)) + "---|---|---|",
    ]
    for row in rows:
        r = _ratios(row, base)
        extra = "".join(f"{100 * row.dev_set_scores.get(m, float('nan')):.2f} | " for m in other)
        lines.append(
            (f"| {row.num_hidden_layers} " if deep else "")
            + f"| {row.width} | {row.num_attention_heads} x {row.attention_head_dim} | {row.intermediate_size} | "
            f"{row.parameters / 1e6:.2f} | {row.onnx_bytes / 2**20:.1f} | {100 * row.dev_score:.2f} | "
            f"{r['score_delta_points']:+.2f} | {extra}{row.ms_per_text:.2f} | {r['latency_ratio']:.3f} | "
            f"{r['onnx_size_ratio']:.3f} |"
        )
    pruned = [r for r in rows[1:] if r.dev_score_truncated is not None]
    if pruned:
        lines += ["", f"Dev {name} right after truncation (before distillation): "
                  + ", ".join(f"{r.label(base)}: {100 * r.dev_score_truncated:.2f}%" for r in pruned) + "."]
    if deep:
        kept = {r.num_hidden_layers: r.layers_kept for r in deep}
        lines += ["", f"Teacher layers each depth keeps (zero-based, of {base.num_hidden_layers}; "
                  f"`{config.layer_selection}` selection): "
                  + "; ".join(f"{n}: {', '.join(map(str, ks or []))}" for n, ks in kept.items()) + "."]
    if skipped:
        lines += ["", f"Not distilled (the time budget ran out before they started): {', '.join(skipped)}."]
    if len(sessions) > 1:
        lines += _session_lines(rows, sessions)
    md_path = out / f"{REPORT_NAME}.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, json_path


def _session_lines(rows: list[WidthResult], sessions: Sequence[dict[str, Any]]) -> list[str]:
    """Latency ratios of every timing session (the table above shows the last), and their mean."""
    names = [r.name for r in rows[1:]]
    lines = ["", "Latency ratio to the unpruned model in every timing session (`tritoncls prune --remeasure` adds one):", "",
             "| session finished | runs | load avg (1 min) | unpruned ms/text | "
             + " | ".join(r.label(rows[0]) for r in rows[1:]) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for item in sessions:
        load = item.get("load_average_1m", {})
        ratios = item["latency_ratio"]
        lines.append(f"| {item.get('finished', '?')} | {item.get('repeats', '?')} | {load.get('before', '?')} -> "
                     f"{load.get('after', '?')} | {item['ms_per_text'][rows[0].name]:.2f} | "
                     + " | ".join(f"{ratios[n]:.3f}" if n in ratios else "-" for n in names) + " |")
    means = [np.mean([s["latency_ratio"][n] for s in sessions if n in s["latency_ratio"]]) for n in names]
    lines.append(f"| mean of {len(sessions)} | | | | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return lines


# ---------------------------------------------------------------------------------------------
# The action
# ---------------------------------------------------------------------------------------------


def _read_data(config: PruneConfig, source: Path, num_labels: int, task: str) -> tuple[list[str], list, list]:
    """Labels, train and dev examples, read as the teacher's ``task`` lays them out."""
    labels = data.read_labels(config.path(config.label_file), task)
    saved = ckpt.saved_labels(source)
    if (saved is not None and saved != labels) or len(labels) != num_labels:
        raise ConfigError(
            f"--checkpoint {source}: the checkpoint predicts {num_labels} labels "
            f"{saved if saved is not None else ''} but {config.path(config.label_file)} lists {labels}. "
            f"Prune with the label file the model was trained with."
        )
    return (labels, data.read_examples(config.path(config.train_file), labels, task),
            data.read_examples(config.path(config.dev_file), labels, task))


def saved_metric(directory: Path, task: str) -> str:
    """The dev metric a checkpoint was selected by (``task.json``'s ``metric``), or the task's default: accuracy,
    or macro-F1 for multi-label tasks."""
    path = directory / ckpt.TASK_FILE
    recorded = ckpt.read_json(path).get("metric") if path.is_file() else None
    if recorded is not None and recorded not in metrics.METRICS[task]:
        raise ConfigError(f"{path}: metric {recorded!r} does not score a {task} task (one of "
                          f"{', '.join(metrics.METRICS[task])}); fix the file or retrain.")
    return metrics.check_metric(task, recorded)


def _importance_rows(config: PruneConfig, size: int) -> np.ndarray:
    """A seeded sample of at most --importance_max_examples row numbers out of ``size``."""
    rng = np.random.default_rng(config.seed)
    return np.sort(rng.permutation(size)[:config.importance_max_examples])


#: The :class:`PruneConfig` fields a distilled student depends on.
STUDENT_SETTINGS = ("dataset_dir", "train_file", "dev_file", "label_file", "epochs", "learning_rate", "batch_size",
                    "temperature", "soft_label_weight", "hidden_loss_weight", "augment_copies", "augment_rate",
                    "warmup_proportion", "weight_decay", "max_seq_length", "seed", "layer_selection")
#: A finished student is kept by ``--resume`` only when these settings of its training_config.json are the run's.
STUDENT_KEYS = ("teacher", "width_mult", "layers_kept") + STUDENT_SETTINGS


def earlier_report(config: PruneConfig) -> dict[str, Any] | None:
    """The prune report an earlier run left in ``config.output`` when it distilled every student ``config`` asks
    for (the same teacher, widths, depths and :data:`STUDENT_SETTINGS`; nothing skipped; every export still
    there), so that nothing is left to do; None otherwise, a report missing any of these settings included."""
    path = Path(config.output) / f"{REPORT_NAME}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    saved = record.get("config", {})
    keys = ("checkpoint", "width_mult_list", "depth_list") + STUDENT_SETTINGS
    if any(saved.get(key) != getattr(config, key) for key in keys) or record.get("skipped"):
        return None
    return record if all(Path(row["export_dir"]).is_dir() for row in record.get("rows", ())) else None


def _finished_student(width_dir: Path, config: PruneConfig, plan: StudentPlan, source: Path, metric: str
                      ) -> WidthResult | None:
    """The row of a student an earlier run finished (its export complete) with the same :data:`STUDENT_KEYS`;
    None when there is none to keep."""
    export_dir, checkpoint_dir = width_dir / "export", width_dir / "checkpoint"
    if not (export_dir / ckpt.COMPLETE_MARKER).is_file() or not (checkpoint_dir / "training_config.json").is_file():
        return None
    saved = ckpt.read_json(checkpoint_dir / "training_config.json")
    wanted = asdict(config) | {"teacher": str(source), "width_mult": plan.text,
                               "layers_kept": list(plan.depth.layers) if plan.depth_pruned else None}
    differ = [key for key in STUDENT_KEYS if saved.get(key) != wanted.get(key)]
    if differ:
        log.info("%s: an earlier run's student has other settings (%s): distilled again", plan.name, ", ".join(differ))
        return None
    state_file = checkpoint_dir / "training_state.json"
    state = ckpt.read_json(state_file) if state_file.is_file() else {}
    row = _row(plan.name, plan.text, modeling.load_checkpoint_model(checkpoint_dir), export_dir, metric,
               plan.depth.layers if plan.depth_pruned else None)
    row.checkpoint_dir = str(checkpoint_dir)
    row.dev_score_best_dynamic = state.get("best_dev_score")
    return row


def _saver(target: Path, tokenizer, objective: Objective, config: PruneConfig, plan: StudentPlan, source: Path):
    """``save(model, state, dev)``: a complete checkpoint of the student, with its own ``task.json`` (the
    thresholds tuned on dev for it, which its export serves)."""
    labels = objective.labels

    def save(model, state: dict[str, Any], dev: DevScore) -> None:
        def fill(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            ckpt.write_labels(tmp, labels)
            provenance = {"metric": objective.metric, "dev_score": dev.score, "step": state["global_step"]}
            ckpt.write_task(tmp, dev.task, **({"thresholds_from": dev.how} if dev.how else {}), **provenance)
            resolved = asdict(config) | {
                "stage": "prune", "teacher": str(source), "width_mult": plan.text,
                "num_attention_heads": plan.width.num_heads, "intermediate_size": plan.width.intermediate_size,
                "num_hidden_layers": int(model.config.num_hidden_layers),
                "layers_kept": list(plan.depth.layers) if plan.depth_pruned else None,
                "num_labels": len(labels), "versions": versions(),
            }
            ckpt.write_json(tmp / "training_config.json", resolved)
            ckpt.write_json(tmp / "training_state.json", {k: v for k, v in state.items() if k != "evaluations"})

        ckpt.write_checkpoint(target, fill)

    return save


def _export(checkpoint_dir: Path, out: Path, max_seq_length: int) -> Path:
    return export(ExportConfig(checkpoint=str(checkpoint_dir), output=str(out), max_seq_length=max_seq_length))


def _row(name: str, width: str, model, export_dir: Path, metric: str,
         layers_kept: Sequence[int] | None = None) -> WidthResult:
    """A report row; ``layers_kept``: the teacher layers a depth-pruned student was copied from (None: all)."""
    layers = int(model.config.num_hidden_layers)
    return WidthResult(
        name=name, width=width, num_attention_heads=int(model.config.num_attention_heads),
        attention_head_dim=modeling.attention_head_dim(model.config),
        intermediate_size=int(model.config.intermediate_size), parameters=parameter_count(model),
        onnx_bytes=(export_dir / ONNX_FILE).stat().st_size, export_dir=str(export_dir), metric=metric,
        num_hidden_layers=layers, layers_kept=list(layers_kept) if layers_kept is not None else list(range(layers)),
    )


def resolve_teacher(config: PruneConfig) -> Path:
    """The teacher checkpoint. A Hugging Face folder whose classifier was fine-tuned on the label file's labels
    is imported first, into ``OUTPUT/teacher`` (a folder without such a classifier cannot teach: refused)."""
    if not hf.is_hf_folder(config.checkpoint):
        return ckpt.resolve_checkpoint(config.checkpoint)
    target = Path(config.output) / TEACHER_NAME
    report = hf.import_hf(config.checkpoint, target, labels=data.read_labels(config.path(config.label_file)))
    if not report.kept_classifier:
        shutil.rmtree(target)
        raise ConfigError(f"--checkpoint {config.checkpoint}: a Hugging Face model without a fine-tuned classifier "
                          f"cannot teach the pruned widths; fine-tune it first (tritoncls train --model_name "
                          f"{config.checkpoint} ...) and prune that checkpoint.")
    log.info("Imported the Hugging Face classifier %s as the teacher: %s", config.checkpoint, target)
    return target


def _rank(teacher, config: PruneConfig, objective: Objective, train_enc: Encoded, train_y: np.ndarray,
          dev_enc: Encoded, dev_y: np.ndarray, out: Path) -> None:
    """Rank every layer's heads and neurons on the importance texts, reorder the teacher most important first, and
    save the scores in ``out/importance.npz``."""
    split = config.importance_split
    enc, y = (train_enc, train_y) if split == "train" else (dev_enc, dev_y)
    rows = _importance_rows(config, len(y))
    picked = Encoded([enc.input_ids[i] for i in rows], [enc.token_type_ids[i] for i in rows])
    started = time.perf_counter()
    head_scores, neuron_scores = importance(teacher, picked, y[rows], config.eval_batch_size, objective.loss())
    reorder(teacher, head_scores, neuron_scores)
    log.info("Ranked %d heads and %d FFN neurons per layer on %d %s texts in %.1f s", head_scores.shape[1],
             neuron_scores.shape[1], len(rows), split, time.perf_counter() - started)
    np.savez(out / "importance.npz", heads=head_scores, neurons=neuron_scores)


def _augmented(teacher, tokenizer, head, config: PruneConfig, train: Encoded, train_y: np.ndarray,
               teacher_logits: np.ndarray | None) -> tuple[Encoded, np.ndarray, np.ndarray | None]:
    """The training rows, targets and teacher logits with ``config.augment_copies`` changed copies of every
    training text appended, each labelled by the teacher (its prediction is the copy's hard target)."""
    copies = augment.augment(train, config.augment_copies, config.augment_rate, config.seed,
                             int(tokenizer.mask_token_id), tokenizer.all_special_ids)
    logits = predict_logits(teacher, copies, config.eval_batch_size, progress=True, desc="teacher on augmented texts")
    mask = head.predict(logits)[1]
    targets = mask.astype(np.float32) if head.spec.multi_label else mask.argmax(axis=1).astype(np.int64)
    kept = np.tile(train_y, (config.augment_copies,) + (1,) * (train_y.ndim - 1))
    same = (targets == kept).all(axis=-1) if targets.ndim > 1 else targets == kept
    log.info("Augmented the %d training texts with %d changed copies each (%.0f%% of tokens); the teacher keeps the "
             "gold label(s) on %.1f%% of the copies", len(train), config.augment_copies, 100 * config.augment_rate,
             100 * same.mean())
    rows = train.concat(copies)
    kept_logits = None if teacher_logits is None else np.concatenate([teacher_logits, logits])
    return rows, np.concatenate([train_y, targets]), kept_logits


def prune(config: PruneConfig, deadline: float | None = None) -> PruneResult:
    """Prune the checkpoint in ``config.checkpoint`` to every width (and depth), distil, export, and report.

    ``deadline`` (a ``time.monotonic()`` value; ``compress --budget_minutes``): a student not started by then is
    not distilled, and the report lists it as skipped."""
    source = resolve_teacher(config)
    arch = modeling.architecture(str(source))
    plans = plan_students(config, arch)
    limit = int(arch.get("max_position_embeddings", config.max_seq_length))
    if config.max_seq_length > limit:
        raise ConfigError(f"--max_seq_length {config.max_seq_length} exceeds the model's max_position_embeddings ({limit}).")

    set_device(config.device)
    set_seed(config.seed)
    teacher = modeling.load_checkpoint_model(source)
    tokenizer = modeling.load_tokenizer(source)
    task = ckpt.saved_task(source).task  # the teacher's task, never a flag: a model knows what it predicts
    labels, train_set, dev_set = _read_data(config, source, int(teacher.config.num_labels), task)
    objective = Objective(task, labels, saved_metric(source, task))
    log.info("Teacher %s: %s task, %d labels; dev scored by %s", source, task, len(labels), objective.metric)
    train_enc = encode(tokenizer, [e.text for e in train_set], config.max_seq_length)
    dev_enc = encode(tokenizer, [e.text for e in dev_set], config.max_seq_length)
    train_y, dev_y = objective.targets(train_set), objective.targets(dev_set)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)

    if any(plan.width.width < 1 for plan in plans):  # a depth-only run keeps every head and neuron: no ranking
        _rank(teacher, config, objective, train_enc, train_y, dev_enc, dev_y, out)

    teacher_logits = None
    if config.hidden_loss_weight == 0:
        teacher_logits = predict_logits(teacher, train_enc, config.eval_batch_size, desc="teacher logits")
    if config.augment_copies:
        head = ckpt.saved_task(source).head(labels)
        train_enc, train_y, teacher_logits = _augmented(teacher, tokenizer, head, config, train_enc, train_y,
                                                        teacher_logits)
    d = _Data(objective, train_enc, train_y, dev_enc, dev_y, [e.text for e in dev_set], teacher_logits)

    baseline_export = _export(source, out / BASELINE_NAME / "export", config.max_seq_length)
    results = [_row(BASELINE_NAME, "1", teacher, baseline_export, objective.metric)]
    skipped: list[str] = []
    for plan in plans:
        kept = _finished_student(out / plan.name, config, plan, source, objective.metric) if config.resume else None
        if kept is not None:
            log.info("%s: kept from an earlier run (--resume: same settings, export complete)", plan.name)
            results.append(kept)
            continue
        if deadline is not None and time.monotonic() > deadline:
            log.warning("%s: not distilled, the time budget ran out before it started", plan.name)
            skipped.append(plan.name)
            continue
        width_dir = out / plan.name
        student = student_copy(teacher, plan)
        truncated = _dev_score(student, d, config.eval_batch_size).score
        log.info("%s: %d layers%s, %d heads, %d FFN neurons per layer; dev %s %.4f before distillation", plan.name,
                 student.config.num_hidden_layers, f" (teacher's {list(plan.depth.layers)})" if plan.depth_pruned else "",
                 plan.width.num_heads, plan.width.intermediate_size, objective.metric, truncated)
        save = _saver(width_dir / "checkpoint", tokenizer, objective, config, plan, source)
        state = distil(student, teacher, plan, d, config, save)
        export_dir = _export(width_dir / "checkpoint", width_dir / "export", config.max_seq_length)
        row = _row(plan.name, plan.text, student, export_dir, objective.metric,
                   plan.depth.layers if plan.depth_pruned else None)
        row.checkpoint_dir = str(width_dir / "checkpoint")
        row.dev_score_truncated = truncated
        row.dev_score_best_dynamic = state["best_dev_score"]
        row.distil_seconds = state["seconds"]
        results.append(row)

    load_before = os.getloadavg()[0]
    measure(results, d.dev_texts, dev_y, config.eval_batch_size, config.latency_repeats, objective.metric)
    session = timing_session(results, config.latency_repeats, load_before)
    md, js = write_report(out, results, config, source, len(dev_set), [session], task, skipped)
    log.info("Report: %s\n%s", md, md.read_text(encoding="utf-8"))
    return PruneResult(results, md, js, skipped)


def remeasure(output_dir: str | Path, repeats: int | None = None, dataset_dir: str | None = None) -> PruneResult:
    """Time the exports of an earlier ``prune`` run again and rewrite its report.

    Latency ratios on a shared machine move with other load; each call adds a timing session to the
    report (the table shows the newest, and the mean over sessions), leaving checkpoints and exports as
    they are. The dev score (accuracy, or the multi-label metric) is measured again and must match the
    report's: a mismatch means an export changed since.
    """
    out = Path(output_dir)
    report_path = out / f"{REPORT_NAME}.json"
    if not report_path.is_file():
        raise ConfigError(f"{report_path}: not found; --remeasure re-times the output of an earlier `tritoncls prune` "
                          f"run: point --output at it.")
    old = json.loads(report_path.read_text(encoding="utf-8"))
    config = PruneConfig(**{RENAMED_FIELDS.get(key, key): value for key, value in old["config"].items()})
    config.latency_repeats = repeats or config.latency_repeats
    if dataset_dir:
        config.dataset_dir = dataset_dir
    if not config.path(config.dev_file).is_file():
        raise ConfigError(f"{config.path(config.dev_file)}: the dev file of the original run is not there; "
                          f"pass --dataset_dir with the data set it was pruned on.")
    rows = [row_from_report(row) for row in old["rows"]]
    for row in rows:
        Manifest.load(row.export_dir)  # a clear error if an export was moved or damaged
    task = old["setup"].get("task", MULTI_CLASS)  # reports written before multi-label tasks: multi-class
    labels = data.read_labels(config.path(config.label_file), task)
    dev = data.read_examples(config.path(config.dev_file), labels, task)
    objective = Objective(task, labels, rows[0].metric)
    load_before = os.getloadavg()[0]
    measure(rows, [e.text for e in dev], objective.targets(dev), config.eval_batch_size, config.latency_repeats,
            objective.metric)
    for row, before in zip(rows, old["rows"]):
        reported = before.get("dev_score", before.get("dev_accuracy"))
        if abs(row.dev_score - reported) > 1e-9:
            log.warning("%s: dev %s %.4f now, %.4f in the report: the export or the dev file changed since.",
                        row.name, METRIC_NAMES[row.metric], row.dev_score, reported)
    sessions = old.get("timing_sessions") or [_legacy_session(old)]
    sessions.append(timing_session(rows, config.latency_repeats, load_before))
    md, js = write_report(out, rows, config, Path(old["setup"]["teacher"]), len(dev), sessions, task,
                          old.get("skipped", []))
    log.info("Report: %s\n%s", md, md.read_text(encoding="utf-8"))
    return PruneResult(rows, md, js)


def _legacy_session(report: dict[str, Any]) -> dict[str, Any]:
    """The timing of a report written before sessions were recorded."""
    rows = report["rows"]
    return {"finished": "first run", "repeats": report["setup"]["latency"]["runs"], "load_average_1m": {},
            "ms_per_text": {r["name"]: r["ms_per_text"] for r in rows},
            "latency_ratio": {r["name"]: r["latency_ratio"] for r in rows}}
