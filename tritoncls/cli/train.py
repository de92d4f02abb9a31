"""``tritoncls train``: fine-tune a classifier on text<TAB>label files, keep the best checkpoint on dev."""

from __future__ import annotations

import argparse
import json
import logging

from tritoncls.cli._args import (
    add_batch_size,
    add_dataset,
    add_device,
    add_max_seq_length,
    add_optimizer,
    add_output,
    add_task,
    add_thresholds,
    config_from_args,
    flag,
)
from tritoncls.errors import UsageError

log = logging.getLogger(__name__)

NAME = "train"
STAGE = "tritoncls.training"
HELP = "fine-tune a classifier; keeps the best checkpoint on dev"
DESCRIPTION = (
    "Fine-tune an ERNIE classifier on text<TAB>label files. Evaluates on dev every epoch and writes the best "
    "checkpoint atomically to --output. Multi-label and hierarchical data (--task) train with a sigmoid per label; "
    "the best epoch is picked by --metric at per-label thresholds chosen on dev, saved in the checkpoint. For "
    "data-parallel training run it under `python -m paddle.distributed.launch --nproc_per_node N [--backend gloo]`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Train's options; the reference's names (``--save_dir``, ...) work too."""
    add_device(parser)
    add_dataset(parser)
    add_task(parser)
    add_output(parser, "the best checkpoint directory", "save_dir", default="./checkpoint")
    add_max_seq_length(parser)
    flag(parser, "model_name", default="ernie-3.0-medium-zh",
         help="an ERNIE name (ernie-3.0-{xbase,base,medium,mini,micro,nano}-zh, ernie-2.0-{base,large}-en, "
              "ernie-1.0-large-zh-cw) or a local checkpoint directory")
    flag(parser, "from_scratch", action="store_true",
         help="random weights in --model_name's architecture and a vocabulary built from the training texts "
              "(works offline; no pretrained download)")
    flag(parser, "arch", nargs="*", default=[], metavar="KEY=VALUE",
         help="with --from_scratch: override architecture fields, e.g. num_hidden_layers=2 hidden_size=128")
    add_batch_size(parser, "per training step, per process")
    add_optimizer(parser, epochs_detail="at most (see --early_stop)")
    flag(parser, "metric", default=None, choices=("accuracy", "macro_f1", "micro_f1"),
         help="the dev score that picks the best epoch and early stopping, and that the thresholds maximise: "
              "accuracy (multi_class), macro_f1 (multi_label and hierarchical, the default: each label's own "
              "F1) or micro_f1 (the micro-F1 of all labels together)")
    add_thresholds(parser, detail="saved in the checkpoint")
    flag(parser, "early_stop", action="store_true",
         help="stop when the dev score (--metric) has not improved for --early_stop_nums epochs")
    flag(parser, "early_stop_nums", type=int, default=4, help="patience of --early_stop, in epochs")
    flag(parser, "warmup", action="store_true", help="linear warmup over --warmup_steps, then linear decay to 0")
    flag(parser, "warmup_steps", type=int, default=0, help="warmup length in steps, with --warmup")
    flag(parser, "init_from_ckpt", default=None,
         help="checkpoint directory (or its model_state.pdparams) to resume from; resumes optimizer and "
              "epoch when it was written by tritoncls train")


def run(args: argparse.Namespace) -> int:
    """Train with the options in ``args``."""
    from tritoncls.cli_common import launched_processes, quiet_paddlenlp, resolve_device

    quiet_paddlenlp()
    from tritoncls.training.train import TrainConfig, train

    config = config_from_args(TrainConfig, args, device=resolve_device(args.device),
                              arch_overrides=parse_overrides(args.arch))
    result = train(config)
    log.info("Best dev %s %.4f at epoch %d (%d epochs, %.1f s/epoch) -> %s", result.metric,
             result.best_score, result.best_epoch, result.epochs_run, result.seconds_per_epoch, result.save_dir)
    if launched_processes() > 1:
        _exit_worker()
    return 0


def parse_overrides(items: list[str]) -> dict:
    """``--arch KEY=VALUE ...`` as a dict; numbers and booleans parsed as JSON."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--arch {item!r}: expected KEY=VALUE, e.g. num_hidden_layers=2")
        out[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return out


def _exit_worker() -> None:
    """End a finished multi-process worker at once, skipping interpreter teardown.

    Every rank has passed the final barrier and rank 0's checkpoint is on disk (fsynced and renamed)
    by now. What is left is the C++ teardown of the gloo/NCCL communicators and the TCP store, which
    races between ranks (one rank's sockets close while another still tears down) and can abort a
    worker whose training succeeded, failing the whole launch. So flush and leave with status 0.
    """
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
