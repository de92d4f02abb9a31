"""``tritoncls prune``: width-prune a fine-tuned checkpoint, distil each width, export and report."""

from __future__ import annotations

import logging

from tritoncls.cli_common import flag, quiet_paddlenlp, resolve_device

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "gpu", "xpu", "npu")


def register(sub) -> None:
    p = sub.add_parser(
        "prune", help="width pruning: drop the least important heads and FFN neurons, distil, export",
        description="DynaBERT-style width pruning of a checkpoint written by `tritoncls train`: rank attention "
                    "heads and FFN neurons by gradient importance, keep the most important share at each width, "
                    "distil from the unpruned model, then export each width (static graph + ONNX + manifest) and "
                    "write prune_report.md/.json with accuracy, size and latency against the unpruned model. "
                    "Layout: OUTPUT_DIR/width_mult_<w rounded to 2 decimals>/{checkpoint,export}/, "
                    "OUTPUT_DIR/unpruned/export/.")
    flag(p, "output_dir", default="./prune", help="where the pruned checkpoints, exports and the report go")
    flag(p, "device", default="auto", choices=DEVICE_CHOICES,
         help="where to run; 'auto' picks gpu when this Paddle build has CUDA and a GPU, else cpu")
    flag(p, "per_device_train_batch_size", type=int, default=32, help="texts per distillation step")
    flag(p, "per_device_eval_batch_size", type=int, default=32,
         help="texts per forward pass for importance, evaluation and the latency measurement")
    flag(p, "learning_rate", type=float, default=3e-5, help="peak AdamW learning rate of the distillation")
    flag(p, "num_train_epochs", type=int, default=10, help="distillation epochs per width")
    flag(p, "logging_steps", type=int, default=5, help="log the loss every this many steps")
    flag(p, "save_steps", type=int, default=50,
         help="evaluate on dev this many steps after the last evaluation (and at each epoch end); the best "
              "checkpoint is kept")
    flag(p, "seed", type=int, default=3, help="random seed")
    flag(p, "dataset_dir", default=None, help="directory holding train.txt, dev.txt and label.txt (required)")
    flag(p, "max_seq_length", type=int, default=128, help="tokens per text after truncation, [CLS]/[SEP] included")
    flag(p, "params_dir", default="./checkpoint", help="the fine-tuned (unpruned) checkpoint; also the teacher")
    flag(p, "width_mult_list", nargs="+", default=["3/4", "2/3", "1/2"], metavar="W",
         help="widths to keep, as fractions or decimals; each times the number of heads must be an integer")
    g = p.add_argument_group("distillation, importance and report")
    flag(g, "temperature", type=float, default=2.0, help="softmax temperature of the teacher's soft labels")
    flag(g, "soft_label_weight", type=float, default=0.5,
         help="loss = w * T^2 * soft-label cross-entropy + (1 - w) * hard-label cross-entropy")
    flag(g, "hidden_loss_weight", type=float, default=0.0,
         help="weight of the hidden-state MSE to the teacher, summed over layers (0: off, and faster)")
    flag(g, "warmup_proportion", type=float, default=0.1, help="share of the steps with linear warmup, then linear decay")
    flag(g, "weight_decay", type=float, default=0.0, help="AdamW weight decay (not on biases and norms)")
    flag(g, "importance_split", default="train", choices=("train", "dev"),
         help="labelled texts that rank heads and neurons; train keeps dev unseen until evaluation")
    flag(g, "importance_max_examples", type=int, default=2048, help="at most this many texts (a seeded random sample)")
    flag(g, "latency_repeats", type=int, default=5,
         help="interleaved timing runs per model over the dev texts (the report gives the median and the fastest)")
    flag(g, "remeasure", action="store_true",
         help="only time the exports in --output_dir again (an earlier prune run) and rewrite its report with "
              "this timing session added (--latency_repeats runs per model); --dataset_dir only if the data "
              "moved, the rest is read from the report")
    flag(g, "train_file", default="train.txt", help="training file name inside --dataset_dir")
    flag(g, "dev_file", default="dev.txt", help="dev file name inside --dataset_dir")
    flag(g, "label_file", default="label.txt", help="label file name inside --dataset_dir")
    p.set_defaults(handler=run_prune)


def run_prune(args) -> int:
    quiet_paddlenlp()
    from tritoncls.errors import ConfigError
    from tritoncls.prune.prune import PruneConfig, prune, remeasure

    if args.remeasure:
        result = remeasure(args.output_dir, args.latency_repeats, args.dataset_dir)
        log.info("Timed %d export(s) again; report in %s", len(result.rows), result.report_md)
        return 0
    if not args.dataset_dir:
        raise ConfigError("--dataset_dir is required: the directory with train.txt, dev.txt and label.txt.")

    result = prune(PruneConfig(
        dataset_dir=args.dataset_dir, params_dir=args.params_dir, output_dir=args.output_dir,
        device=resolve_device(args.device), width_mult_list=list(args.width_mult_list),
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size, learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs, logging_steps=args.logging_steps, save_steps=args.save_steps,
        seed=args.seed, max_seq_length=args.max_seq_length, temperature=args.temperature,
        soft_label_weight=args.soft_label_weight, hidden_loss_weight=args.hidden_loss_weight,
        warmup_proportion=args.warmup_proportion, weight_decay=args.weight_decay,
        importance_split=args.importance_split, importance_max_examples=args.importance_max_examples,
        latency_repeats=args.latency_repeats, train_file=args.train_file, dev_file=args.dev_file,
        label_file=args.label_file,
    ))
    log.info("Pruned %d width(s); report in %s", len(result.rows) - 1, result.report_md)
    return 0

