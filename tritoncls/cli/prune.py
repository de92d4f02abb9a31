"""``tritoncls prune``: width- and depth-prune a fine-tuned checkpoint, distil each student, export and report."""

from __future__ import annotations

import argparse
import logging

from tritoncls.cli._args import (
    add_batch_size,
    add_checkpoint,
    add_dataset,
    add_device,
    add_max_seq_length,
    add_optimizer,
    add_output,
    config_from_args,
    flag,
)
from tritoncls.errors import UsageError
from tritoncls.prune.depth import LAYER_SELECTIONS

log = logging.getLogger(__name__)

NAME = "prune"
STAGE = "tritoncls.prune"
HELP = "width and depth pruning: drop the least important heads and FFN neurons, or layers, distil, export"
DESCRIPTION = (
    "DynaBERT-style width pruning of a checkpoint written by `tritoncls train`: rank attention heads and FFN "
    "neurons by gradient importance, keep the most important share at each width, distil from the unpruned "
    "model, then export each width (static graph + ONNX + manifest) and write prune_report.md/.json with "
    "the dev score, size and latency against the unpruned model. The task comes from the checkpoint (its "
    "task.json): a multi-label or hierarchical model distils against the teacher's sigmoids, is scored by its "
    "metric (macro-F1 unless task.json says micro_f1) at per-label thresholds tuned on dev for each width, and "
    "each width's checkpoint and export keep its own thresholds. --depth_list D... also keeps fewer encoder "
    "layers (copied from the teacher's, evenly spread from the first to the last): every (depth, width) pair is one "
    "student, so --width_mult_list 1 gives depth-only students. Layout: OUTPUT/width_mult_<w rounded to 2 "
    "decimals>/{checkpoint,export}/, OUTPUT/d<depth>_w<numerator>[_<denominator>]/ for fewer layers (d4_w1_2: 4 "
    "layers at width 1/2), OUTPUT/unpruned/export/. --dataset_dir is required unless --remeasure."
)


def add_student_flags(parser, group) -> None:
    """How students are made and distilled: the layer selection (on ``parser``) and the distillation loss (on
    ``group``); ``prune`` and ``compress`` share them."""
    flag(parser, "layer_selection", default="spread", choices=tuple(LAYER_SELECTIONS),
         help="which teacher layers a depth keeps: spread (evenly spaced, first and last included) or bottom (the "
              "first ones)")
    flag(group, "temperature", type=float, default=2.0,
         help="temperature of the teacher's soft labels (its softmax, or its sigmoids for a multi-label model)")
    flag(group, "soft_label_weight", type=float, default=0.5,
         help="loss = w * T^2 * soft-label cross-entropy + (1 - w) * hard-label cross-entropy (binary for a "
              "multi-label model)")
    flag(group, "hidden_loss_weight", type=float, default=0.0,
         help="weight of the hidden-state MSE to the teacher, summed over layers (0: off, and faster)")
    flag(group, "augment_copies", type=int, default=0,
         help="changed copies of every training text (tokens masked, replaced or deleted) that the teacher labels "
              "for the student; each costs one more pass over train per epoch (0: the training texts alone)")
    flag(group, "augment_rate", type=float, default=0.15,
         help="share of each copy's tokens that are changed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Prune's options; the reference's names (``--params_dir``, ``--output_dir``, ...) work too."""
    add_device(parser)
    add_dataset(parser, required=False)
    add_checkpoint(parser, "params_dir", detail="the fine-tuned (unpruned) model, or a Hugging Face classifier folder fine-tuned on "
                   "these labels (imported first); also the teacher")
    add_output(parser, "pruned checkpoints, exports and the report", "output_dir", default="./prune")
    add_max_seq_length(parser)
    add_batch_size(parser, "per distillation step", "per_device_train_batch_size")
    flag(parser, "eval_batch_size", "per_device_eval_batch_size", type=int, default=32,
         help="texts per forward pass for importance, evaluation and the latency measurement")
    add_optimizer(parser, epochs_aliases=("num_train_epochs",), epochs_detail="of distillation, per width")
    flag(parser, "save_steps", type=int, default=50,
         help="evaluate on dev this many steps after the last evaluation (and at each epoch end); the best "
              "checkpoint is kept")
    flag(parser, "width_mult_list", nargs="+", default=["3/4", "2/3", "1/2"], metavar="W",
         help="widths to keep, as fractions or decimals; each times the number of heads must be an integer")
    flag(parser, "depth_list", nargs="+", type=int, default=None, metavar="D",
         help="encoder layer counts to keep (the teacher's count: all layers); every (depth, width) pair of this and "
              "--width_mult_list is one student, the whole teacher excepted (default: the teacher's depth only)")
    group = parser.add_argument_group("distillation, importance and report")
    add_student_flags(parser, group)
    flag(group, "warmup_proportion", type=float, default=0.1,
         help="share of the steps with linear warmup, then linear decay")
    flag(group, "importance_split", default="train", choices=("train", "dev"),
         help="labelled texts that rank heads and neurons; train keeps dev unseen until evaluation")
    flag(group, "importance_max_examples", type=int, default=2048,
         help="at most this many texts (a seeded random sample)")
    flag(group, "latency_repeats", type=int, default=5,
         help="interleaved timing runs per model over the dev texts (the report gives the median and the fastest)")
    flag(group, "resume", action="store_true",
         help="keep each student an earlier run into --output finished (its export complete) with the same settings "
              "instead of distilling it again")
    flag(group, "remeasure", action="store_true",
         help="only time the exports in --output (an earlier prune run) again and rewrite its report with this "
              "timing session added (--latency_repeats runs per model); --dataset_dir only if the data moved, "
              "the rest is read from the report")


def run(args: argparse.Namespace) -> int:
    """Prune (or, with ``--remeasure``, re-time an earlier prune run)."""
    if not args.dataset_dir and not args.remeasure:
        raise UsageError("--dataset_dir is required (the directory with train.txt, dev.txt and label.txt), "
                         "unless --remeasure")
    from tritoncls.cli_common import quiet_paddlenlp, resolve_device

    quiet_paddlenlp()
    from tritoncls.prune.prune import PruneConfig, prune, remeasure

    if args.remeasure:
        result = remeasure(args.output, args.latency_repeats, args.dataset_dir)
        log.info("Timed %d export(s) again; report in %s", len(result.rows), result.report_md)
        return 0
    result = prune(config_from_args(PruneConfig, args, device=resolve_device(args.device)))
    log.info("Pruned %d student(s); report in %s", len(result.rows) - 1, result.report_md)
    return 0
