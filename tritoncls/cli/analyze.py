"""``tritoncls analyze``: label balance, token lengths, truncation, duplicates and leakage of a dataset."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import add_dataset, add_max_seq_length, add_report, config_from_args, flag

NAME = "analyze"
STAGE = "tritoncls.training"
HELP = "label balance, token lengths, truncation, duplicates, leakage"
DESCRIPTION = (
    "Analyze a dataset before training: label counts and imbalance, text lengths in tokens, the share "
    "truncated at --max_seq_length, duplicate texts (and those with conflicting labels), dev texts that also "
    "appear in train, and a suggested --max_seq_length."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Analyze's options."""
    add_dataset(parser)
    add_max_seq_length(parser, "the length truncation is measured against")
    flag(parser, "vocab_file", default=None, help="count tokens with this vocab.txt (default: one built from train)")
    add_report(parser, "report_json", detail="the whole analysis")


def run(args: argparse.Namespace) -> int:
    """Analyze the dataset named in ``args``."""
    from tritoncls.training.analysis import AnalyzeConfig, analyze

    analyze(config_from_args(AnalyzeConfig, args))
    return 0
