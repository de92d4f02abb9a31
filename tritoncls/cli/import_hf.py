"""``tritoncls import-hf``: a Hugging Face model folder -> an ordinary tritoncls checkpoint, with a tensor report."""

from __future__ import annotations

import argparse
from pathlib import Path

from tritoncls.cli._args import add_output, add_report, flag

NAME = "import-hf"
STAGE = "tritoncls.modeling"
HELP = "convert a Hugging Face model folder (BERT, MiniLM, ERNIE, RoBERTa) into a checkpoint"
DESCRIPTION = (
    "Convert a Hugging Face model folder (config.json, model.safetensors or its shards, tokenizer.json / vocab.txt) "
    "into a tritoncls checkpoint that evaluate, export and train --model_name read. Every tensor is listed in "
    "import_report.json: mapped (with its new name and shape), new (a classifier for your labels) or ignored "
    "(MLM heads, buffers). An already fine-tuned classifier keeps its head and its id2label labels (label.txt)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """import-hf's options."""
    parser.add_argument("folder", help="the Hugging Face model folder (holds config.json)")
    add_output(parser, "the checkpoint directory (replaced atomically)", required=True)
    labels = parser.add_mutually_exclusive_group()
    flag(labels, "num_labels", type=int, default=None, help="labels of a new classification head")
    flag(labels, "labels", "label_file", default=None, metavar="FILE",
         help="a label file (one label a line) for a new classification head, or to confirm a fine-tuned model's "
              "labels")
    flag(parser, "fresh_head", action="store_true",
         help="replace a fine-tuned model's classifier with a new one for --num_labels / --labels")
    add_report(parser)


def run(args: argparse.Namespace) -> int:
    """Import the folder named in ``args`` and print the report's summary."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.common.data import read_labels
    from tritoncls.modeling.checkpoint import write_json
    from tritoncls.modeling.hf import import_hf

    labels = read_labels(args.labels) if args.labels else None
    report = import_hf(args.folder, args.output, num_labels=args.num_labels, labels=labels,
                       fresh_head=args.fresh_head)
    print(report.summary())
    print(f"checkpoint written to {args.output}")
    if args.report:
        write_json(Path(args.report), report.to_json())
    return 0
