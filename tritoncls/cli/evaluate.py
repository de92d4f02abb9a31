"""``tritoncls evaluate``: accuracy, top-k, per-class P/R/F1, bad cases and a confusion matrix of a checkpoint."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import (
    add_batch_size,
    add_checkpoint,
    add_dataset,
    add_device,
    add_max_seq_length,
    add_report,
    add_thresholds,
    config_from_args,
    flag,
)

NAME = "evaluate"
STAGE = "tritoncls.training"
HELP = "accuracy, top-k, per-class P/R/F1, bad cases, confusion matrix"
DESCRIPTION = (
    "Evaluate a checkpoint on train and dev: accuracy, top-2/top-3 accuracy, per-class counts, precision, "
    "recall and F1; writes bad cases and a confusion-matrix PNG. A multi-label or hierarchical checkpoint (its "
    "task.json says so) gets micro/macro precision, recall and F1, subset accuracy, per-label (and per-level) "
    "scores and bad cases with both label sets, at the checkpoint's thresholds unless --threshold or "
    "--thresholds_file is given, or at thresholds tuned on dev for --metric (--tune_thresholds FILE)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Evaluate's options; the reference's ``--params_path`` names the checkpoint too."""
    add_device(parser)
    add_dataset(parser)
    add_checkpoint(parser, "params_path")
    add_max_seq_length(parser)
    add_batch_size(parser, "per forward pass")
    flag(parser, "bad_case_path", default="./bad_case.txt", help="where misclassified dev texts are written")
    flag(parser, "confusion_matrix", default="./confusion_matrix.png", help="confusion-matrix PNG path ('' to skip)")
    add_report(parser, "report_json", detail="every number")
    add_thresholds(parser, detail="for this evaluation")
    flag(parser, "tune_thresholds", default=None, metavar="FILE",
         help="multi-label: choose each label's threshold on the dev file for --metric, score at them and write "
              "them to FILE (label<TAB>threshold; serve them with `export --thresholds_file FILE`)")
    flag(parser, "metric", default=None, choices=("macro_f1", "micro_f1"),
         help="what --tune_thresholds maximises (default: the checkpoint's, from its task.json)")


def run(args: argparse.Namespace) -> int:
    """Evaluate with the options in ``args``."""
    from tritoncls.cli_common import quiet_paddlenlp, resolve_device

    quiet_paddlenlp()
    from tritoncls.training.evaluate import EvaluateConfig, evaluate

    evaluate(config_from_args(EvaluateConfig, args, device=resolve_device(args.device),
                              confusion_matrix_path=args.confusion_matrix or None))
    return 0
