"""Fine-tune an ERNIE classifier: evaluate on dev every epoch, keep the best checkpoint atomically.

The task (``--task``) picks the loss and the dev score (:class:`~tritoncls.modeling.objective.Objective`):
multi-class cross-entropy and accuracy, or for multi-label and hierarchical data binary cross-entropy and
macro-F1 at per-label thresholds tuned on dev; the thresholds of the best epoch are saved in the
checkpoint's ``task.json``.

Runs as one process or data-parallel under ``python -m paddle.distributed.launch`` (gloo on CPU,
NCCL on GPU). Every rank reads the same data and sees the same shuffled order; rank ``r`` takes
every ``world``-th batch. Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tritoncls import modeling
from tritoncls.common import data, metrics
from tritoncls.common.versions import versions
from tritoncls.errors import ConfigError, ModelError
from tritoncls.modeling import checkpoint as ckpt
from tritoncls.modeling import hf
from tritoncls.modeling.dynamic import Encoded, encode, pad_batch, predict_logits
from tritoncls.modeling.loop import DEVICES, adamw, epoch_batches, set_device, set_seed
from tritoncls.modeling.objective import DevScore, Objective
from tritoncls.runtime import MULTI_CLASS, TASKS

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    """Every option of the reference ``train.py`` (and its multi-label and hierarchical siblings'), plus
    ``from_scratch``. Defaults match the reference."""

    dataset_dir: str
    device: str = "cpu"
    output: str = "./checkpoint"
    max_seq_length: int = 128
    model_name: str = "ernie-3.0-medium-zh"
    from_scratch: bool = False
    batch_size: int = 32
    learning_rate: float = 3e-5
    epochs: int = 10
    early_stop: bool = False
    early_stop_nums: int = 4
    logging_steps: int = 5
    weight_decay: float = 0.0
    warmup: bool = False
    warmup_steps: int = 0
    init_from_ckpt: str | None = None
    seed: int = 3
    train_file: str = "train.txt"
    dev_file: str = "dev.txt"
    label_file: str = "label.txt"
    #: Extra architecture fields for ``from_scratch`` (e.g. ``{"num_hidden_layers": 2}``).
    arch_overrides: dict[str, Any] = field(default_factory=dict)
    task: str = MULTI_CLASS
    #: What picks the best epoch: accuracy (multi-class), macro_f1 (multi-label default) or micro_f1.
    metric: str | None = None
    #: One threshold for every label, instead of per-label thresholds tuned on dev (multi-label tasks).
    threshold: float | None = None
    #: A ``label<TAB>threshold`` file, instead of thresholds tuned on dev (multi-label tasks).
    thresholds_file: str | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r}: choose one of {', '.join(DEVICES)}.")
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: choose one of {', '.join(TASKS)}.")
        self.metric = metrics.check_metric(self.task, self.metric)
        metrics.check_threshold_options(self.task, self.threshold, self.thresholds_file)
        positive = ("max_seq_length", "batch_size", "epochs", "early_stop_nums", "logging_steps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {getattr(self, name)}.")
        if self.max_seq_length < 3:
            raise ConfigError("--max_seq_length must be at least 3 ([CLS], one token, [SEP]).")
        if not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be > 0, got {self.learning_rate}.")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ConfigError("--warmup_steps and --weight_decay must not be negative.")

    def path(self, name: str) -> Path:
        return Path(self.dataset_dir) / name


@dataclass
class TrainResult:
    best_score: float  # the best dev score (``metric``, a fraction)
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    save_dir: Path
    stopped_early: bool
    history: list[dict[str, float]]
    global_step: int = 0  # optimizer steps since the first epoch, a resumed run's included
    metric: str = "accuracy"
    task: str = MULTI_CLASS

    @property
    def best_accuracy(self) -> float:
        """The best dev accuracy of a multi-class run."""
        if self.metric != "accuracy":
            raise AttributeError(f"a {self.task} run is scored by {self.metric}: read best_score")
        return self.best_score


@dataclass
class _State:
    """What a resumed run needs besides weights and optimizer moments."""

    epoch: int = 0
    global_step: int = 0
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> _State:
        values = dict(values)
        if "best_accuracy" in values:  # written before multi-label tasks
            values["best_score"] = values.pop("best_accuracy")
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    import paddle.distributed as dist

    world = dist.get_world_size()
    if world > 1:
        dist.init_parallel_env()
    return dist.get_rank(), world


def _make_tokenizer_and_model(config: TrainConfig, labels: list[str], train_texts: list[str], workdir: Path):
    """Resolve where weights and vocabulary come from; returns (tokenizer, model, source)."""
    if config.init_from_ckpt:
        directory = ckpt.resolve_checkpoint(config.init_from_ckpt)
        _check_labels_match(directory, labels, config.task)
        model = modeling.load_checkpoint_model(directory)
        model.train()
        return modeling.load_tokenizer(directory), model, f"checkpoint {directory}"
    if config.from_scratch:
        arch = modeling.architecture(config.model_name)
        arch.update(config.arch_overrides)
        local_vocab = Path(config.model_name) / "vocab.txt"
        if local_vocab.is_file():
            tokenizer = modeling.load_tokenizer(config.model_name)
        else:
            tokenizer = modeling.scratch_tokenizer(train_texts, workdir)
        model = modeling.scratch_model(arch, len(labels), len(tokenizer.vocab), tokenizer.pad_token_id)
        return tokenizer, model, f"{config.model_name} architecture, random weights"
    if hf.is_hf_folder(config.model_name):
        imported = _import_hf_folder(Path(config.model_name), labels, workdir / "imported")
        model = modeling.pretrained_model(str(imported), len(labels))
        return modeling.load_tokenizer(imported), model, f"Hugging Face model {config.model_name} (imported)"
    if Path(config.model_name).is_dir():
        tokenizer = modeling.load_tokenizer(config.model_name)
    else:
        tokenizer = modeling.hub_tokenizer(config.model_name)
    model = modeling.pretrained_model(config.model_name, len(labels))
    return tokenizer, model, f"pretrained {config.model_name}"


def _import_hf_folder(folder: Path, labels: list[str], target: Path) -> Path:
    """Convert a Hugging Face folder into a checkpoint to fine-tune. A classifier of the same labels keeps its
    head; one of other labels gets a new head for ``labels`` (said in the log)."""
    report = hf.import_hf(folder, target, labels=labels, replace_other_head=True)
    log.info("Imported %s (%s): %d tensors mapped, %d new, %d ignored", folder, report.model_type,
             report.count("mapped"), report.count("new"), report.count("ignored"))
    return target


def _check_labels_match(directory: Path, labels: list[str], task: str) -> None:
    saved = ckpt.saved_labels(directory)
    if saved is not None and saved != labels:
        raise ConfigError(
            f"--init_from_ckpt {directory}: its labels {saved} differ from the label file's {labels}. "
            f"Resume with the label file the checkpoint was trained with, or start a new run."
        )
    saved_task = ckpt.saved_task(directory).task
    if saved_task != task:
        raise ConfigError(f"--init_from_ckpt {directory}: it was trained as a {saved_task} model, this run is "
                          f"--task {task}. Pass --task {saved_task}, or start a new run.")


def _optimizer(model, config: TrainConfig, total_steps: int):
    return adamw(model, config.learning_rate, config.weight_decay, total_steps,
                 config.warmup_steps if config.warmup else None)


def train(config: TrainConfig) -> TrainResult:
    """Train, evaluating on dev every epoch; the best model lands in ``config.output``."""
    import paddle

    set_device(config.device)
    rank, world = _world()
    set_seed(config.seed + rank)
    labels = data.read_labels(config.path(config.label_file), config.task)
    train_set = data.read_examples(config.path(config.train_file), labels, config.task)
    dev_set = data.read_examples(config.path(config.dev_file), labels, config.task)
    objective = Objective(config.task, labels, config.metric, _fixed_thresholds(config, labels))

    save_dir = Path(config.output)
    scratch_dir = save_dir.with_name(f".{save_dir.name}.vocab-{rank}")
    tokenizer, model, source = _make_tokenizer_and_model(config, labels, [e.text for e in train_set], scratch_dir)
    max_len = _effective_max_len(config, model)
    train_enc = encode(tokenizer, [e.text for e in train_set], max_len)
    dev_enc = encode(tokenizer, [e.text for e in dev_set], max_len)
    train_y, dev_y = objective.targets(train_set), objective.targets(dev_set)
    if objective.init_head(model, train_y) and rank == 0:
        log.info("New multi-label head: each label's bias starts at its share of the training texts (log-odds)")
    if rank == 0:
        log.info("Model: %s; %s task, %d labels; vocab %d; max_seq_length %d; %d processes",
                 source, config.task, len(labels), len(tokenizer.vocab), max_len, world)
        for stale in ckpt.remove_stale_staging(save_dir):  # a killed writer's half checkpoint: free the disk now
            log.info("Removed %s, left by a checkpoint writer that was killed", stale)

    steps_per_epoch = len(epoch_batches(train_enc.lengths(), config.batch_size, 0, rank, world))
    total_steps = steps_per_epoch * config.epochs
    optimizer, lr = _optimizer(model, config, total_steps)
    state = _restore_state(config, model, optimizer, lr)
    net = paddle.DataParallel(model) if world > 1 else model
    loss_fn = objective.loss()

    history: list[dict[str, float]] = []
    epoch_seconds: list[float] = []
    stopped_early = False
    saved = False
    first_epoch = state.epoch + 1
    for epoch in range(first_epoch, config.epochs + 1):
        started = time.perf_counter()
        batches = epoch_batches(train_enc.lengths(), config.batch_size, config.seed + epoch, rank, world)
        loss = _run_epoch(net, optimizer, lr, loss_fn, train_enc, train_y, batches, epoch, state, config, rank)
        dev = _dev_score(model, objective, dev_enc, dev_y, config.batch_size)
        epoch_seconds.append(time.perf_counter() - started)
        history.append({"epoch": epoch, "train_loss": loss, f"dev_{config.metric}": dev.score,
                        "seconds": epoch_seconds[-1]})
        state.epoch = epoch
        improved = dev.score > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = dev.score, epoch, 0
        else:
            state.bad_epochs += 1
        if rank == 0:
            log.info("epoch %d: dev %s %.4f (best %.4f at epoch %d), %.1f s",
                     epoch, config.metric, dev.score, state.best_score, state.best_epoch, epoch_seconds[-1])
            if improved:
                _save(save_dir, model, tokenizer, optimizer, labels, config, state, max_len, world, dev)
                saved = True
        if config.early_stop and state.bad_epochs >= config.early_stop_nums:
            if rank == 0:
                log.info("Early stop: dev %s has not improved for %d epochs.", config.metric, state.bad_epochs)
            stopped_early = True
            break
    if world > 1:
        paddle.distributed.barrier()
    _cleanup(scratch_dir)
    if not saved and config.init_from_ckpt and not ckpt.is_complete(save_dir):
        save_dir = ckpt.resolve_checkpoint(config.init_from_ckpt)
        if rank == 0:
            log.warning("No epoch of this run beat the resumed best (dev %s %.4f at epoch %d): nothing was written "
                        "to %s; the best checkpoint is still %s", config.metric, state.best_score, state.best_epoch,
                        config.output, save_dir)
    return TrainResult(
        best_score=state.best_score,
        best_epoch=state.best_epoch,
        epochs_run=len(history),
        seconds_per_epoch=float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
        save_dir=save_dir,
        stopped_early=stopped_early,
        history=history,
        global_step=state.global_step,
        metric=str(config.metric),
        task=config.task,
    )


def _fixed_thresholds(config: TrainConfig, labels: list[str]) -> tuple[float, ...] | None:
    """The user's thresholds (``--threshold`` or ``--thresholds_file``), or None to tune them on dev."""
    if config.thresholds_file:
        return metrics.read_thresholds(config.thresholds_file, labels)
    if config.threshold is not None:
        return (float(config.threshold),) * len(labels)
    return None


def _effective_max_len(config: TrainConfig, model) -> int:
    limit = int(model.config.max_position_embeddings)
    if config.max_seq_length > limit:
        raise ConfigError(
            f"--max_seq_length {config.max_seq_length} exceeds the model's "
            f"max_position_embeddings ({limit}). Use --max_seq_length {limit} or less."
        )
    return config.max_seq_length


def _run_epoch(net, optimizer, lr, loss_fn, enc: Encoded, y: np.ndarray, batches, epoch: int,
               state: _State, config: TrainConfig, rank: int) -> float:
    import paddle

    net.train()
    losses: list[float] = []
    window_started, window_texts = time.perf_counter(), 0
    for step, rows in enumerate(batches, start=1):
        ids, types = pad_batch(enc, rows)
        logits = net(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types))
        loss = loss_fn(logits, paddle.to_tensor(y[rows]))
        loss.backward()
        optimizer.step()
        if hasattr(lr, "step"):
            lr.step()
        optimizer.clear_grad()
        state.global_step += 1
        losses.append(float(loss))
        window_texts += len(rows)
        if rank == 0 and (step % config.logging_steps == 0 or step == len(batches)):
            elapsed = time.perf_counter() - window_started
            log.info("epoch %d step %d/%d (global %d): loss %.4f, lr %.3g, %.1f texts/s",
                     epoch, step, len(batches), state.global_step, float(np.mean(losses[-config.logging_steps:])),
                     optimizer.get_lr(), window_texts / max(elapsed, 1e-9))
            window_started, window_texts = time.perf_counter(), 0
    return float(np.mean(losses)) if losses else float("nan")


def _dev_score(model, objective: Objective, enc: Encoded, y: np.ndarray, batch_size: int) -> DevScore:
    logits = predict_logits(model, enc, batch_size)
    model.train()
    return objective.score(logits, y)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def _save(save_dir: Path, model, tokenizer, optimizer, labels, config: TrainConfig, state: _State,
          max_len: int, world: int, dev: DevScore) -> None:
    import paddle

    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        ckpt.write_labels(tmp, labels)
        provenance = {"metric": config.metric, "dev_score": dev.score, "epoch": state.epoch}
        ckpt.write_task(tmp, dev.task, **({"thresholds_from": dev.how} if dev.how else {}), **provenance)
        paddle.save(portable_optimizer_state(model, optimizer.state_dict()), str(tmp / "model_state.pdopt"))
        resolved = asdict(config) | {"max_seq_length": max_len, "num_labels": len(labels),
                                     "world_size": world, "versions": versions()}
        ckpt.write_json(tmp / "training_config.json", resolved)
        ckpt.write_json(tmp / "training_state.json", asdict(state))

    ckpt.write_checkpoint(save_dir, fill)
    log.info("Saved best checkpoint to %s", save_dir)


def _rename_keys(state: dict, mapping: dict[str, str]) -> dict:
    """Rename optimizer-state keys ``<param>_<accumulator>`` through ``mapping`` of param names."""
    names = sorted(mapping, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            out[key] = {mapping.get(k, k): v for k, v in value.items()}
            continue
        match = next((n for n in names if key.startswith(n + "_")), None)
        out[mapping[match] + key[len(match):] if match else key] = value
    return out


def portable_optimizer_state(model, state: dict) -> dict:
    """Optimizer state keyed by structured parameter names (``ernie.encoder.layers.0...``).

    Paddle keys optimizer moments by generated names (``linear_12.w_0``) that change with how
    many models a process has built; structured names survive into the resuming process.
    """
    return _rename_keys(state, {p.name: n for n, p in model.named_parameters()})


def local_optimizer_state(model, state: dict) -> dict:
    return _rename_keys(state, {n: p.name for n, p in model.named_parameters()})


def _restore_state(config: TrainConfig, model, optimizer, lr) -> _State:
    """Optimizer moments, LR schedule and epoch counter from ``init_from_ckpt``, where present."""
    import paddle

    if not config.init_from_ckpt:
        return _State()
    directory = ckpt.resolve_checkpoint(config.init_from_ckpt)
    state_path = directory / "training_state.json"
    if not state_path.is_file():
        log.info("Initialised weights from %s (no training state: starting at epoch 1)", directory)
        return _State()
    state = _State.from_dict(ckpt.read_json(state_path))
    opt_path = directory / "model_state.pdopt"
    if opt_path.is_file():
        try:
            optimizer.set_state_dict(local_optimizer_state(model, paddle.load(str(opt_path))))
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{opt_path}: cannot restore the optimizer state ({exc}).") from exc
    elif hasattr(lr, "step"):
        lr.step(state.global_step)  # the optimizer state would have carried the schedule
    log.info("Resuming from %s after epoch %d (best dev %s %.4f)", directory, state.epoch, config.metric,
             state.best_score)
    return state


def _cleanup(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def dump_result(result: TrainResult) -> str:
    return json.dumps(asdict(result) | {"save_dir": str(result.save_dir)}, indent=2)
