"""``tritoncls analyze``: the dataset summary, and the data audits as sub-commands.

``tritoncls analyze --dataset_dir D`` is the summary it always was (label balance, token lengths,
truncation, duplicates, leakage). ``tritoncls analyze AUDIT ...`` runs one audit (see
:mod:`tritoncls.cli._audit`); each audit has its own options, written after its name.
"""

from __future__ import annotations

import argparse

from tritoncls.cli import _audit
from tritoncls.cli._args import add_dataset, add_max_seq_length, add_report, add_task, config_from_args, flag
from tritoncls.errors import UsageError

NAME = "analyze"
STAGE = "tritoncls.training"
HELP = "dataset summary; audits: label issues, sparse data, augmentation, interpretation"
DESCRIPTION = (
    "Without an AUDIT: analyze a dataset before training: label counts and imbalance (per label, labels per text "
    "and texts with none for --task multi_label or hierarchical), text lengths in tokens, "
    "the share truncated at --max_seq_length, duplicate texts (and those with conflicting labels), dev texts "
    "that also appear in train, and a suggested --max_seq_length (--dataset_dir is required then). With an "
    "AUDIT (its options after its name; `tritoncls analyze AUDIT --help`): find mislabeled training texts, "
    "find dev texts the training data hardly supports and texts to annotate for them, augment training "
    "texts, or explain a prediction token by token. See docs/analysis.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The summary's options, then one sub-command per audit."""
    # Every audit's arguments pass through this parser first: with abbreviations on, interpret's --label would be
    # refused as an ambiguous abbreviation of --label_file / --label-file. Options here are spelled out.
    parser.allow_abbrev = False
    add_dataset(parser, required=False)
    add_task(parser, detail="label sets are counted per label, with labels per text and texts with none")
    add_max_seq_length(parser, "the length truncation is measured against")
    flag(parser, "vocab_file", default=None, help="count tokens with this vocab.txt (default: one built from train)")
    add_report(parser, "report_json", detail="the whole analysis")
    _audit.add_audits(parser)


def run(args: argparse.Namespace) -> int:
    """Analyze the dataset named in ``args`` (the summary; each audit has its own handler)."""
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    if not args.dataset_dir:
        raise UsageError("the following arguments are required: --dataset_dir (or name an AUDIT)")
    analyze(config_from_args(AnalyzeConfig, args))
    return 0
