"""The audits of ``tritoncls analyze``: one sub-command each, with its options and its handler.

Each audit is a row of :data:`AUDITS`: name, help, description, ``add(parser)`` and ``run(args)``. The
handler imports the audit's module (and Paddle, where it needs it) only when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from tritoncls.cli._args import (
    add_batch_size,
    add_checkpoint,
    add_dataset,
    add_device,
    add_max_seq_length,
    add_output,
    config_from_args,
    flag,
    shared,
)


@dataclass(frozen=True)
class Audit:
    name: str
    help: str
    description: str
    add: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_audits(parser: argparse.ArgumentParser) -> None:
    """One sub-command per audit under ``parser`` (optional: without one the parser's own command runs)."""
    sub = parser.add_subparsers(dest="audit", metavar="AUDIT", title="audits (options after the name)")
    for audit in AUDITS:
        child = sub.add_parser(audit.name, help=audit.help, description=audit.description)
        audit.add(child)
        child.set_defaults(handler=audit.run, usage_error=child.error)


def _device(args: argparse.Namespace) -> str:
    from tritoncls.cli_common import quiet_paddlenlp, resolve_device

    quiet_paddlenlp()
    return resolve_device(args.device)


def _add_seed_and_folds(parser: argparse.ArgumentParser) -> None:
    shared(parser, "seed", type=int, default=3)
    flag(parser, "folds", type=int, default=5, help="cross-validation folds for out-of-sample probabilities")


def _add_fine_tuning(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("with --source checkpoint: k-fold fine-tuning of the checkpoint")
    add_device(group)
    add_checkpoint(group, detail="fine-tuned afresh on each k-1 folds")
    shared(group, "epochs", detail="per fold", type=int, default=2)
    shared(group, "learning_rate", type=float, default=5e-5)
    add_batch_size(group, "per fine-tuning step")
    add_max_seq_length(group)


# ---------------------------------------------------------------------------------------------
# label-issues
# ---------------------------------------------------------------------------------------------


def _label_issues_args(parser: argparse.ArgumentParser) -> None:
    add_dataset(parser, files=("train",), holds="train.txt and label.txt")
    add_output(parser, "folder for label_issues.md, .json and .html", default="./audit")
    flag(parser, "source", default="tfidf", choices=("tfidf", "checkpoint"),
         help="where the out-of-fold probabilities come from: character n-gram TF-IDF + logistic regression "
              "(seconds), or k-fold fine-tuning of --checkpoint (minutes to hours on CPU)")
    _add_seed_and_folds(parser)
    flag(parser, "max_issues", type=int, default=None,
         help="flag at most this many texts, the least likely labels first (default: all cleanlab flags)")
    flag(parser, "write_cleaned", default=None, metavar="FILE",
         help="also write a new training file with the flagged texts fixed (the original is never changed)")
    flag(parser, "mode", default="relabel", choices=("relabel", "drop"),
         help="with --write_cleaned: give flagged texts their suggested label, or drop them")
    _add_fine_tuning(parser)


def _run_label_issues(args: argparse.Namespace) -> int:
    device = _device(args) if args.source == "checkpoint" else "cpu"
    from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues

    label_issues(config_from_args(LabelIssuesConfig, args, device=device))
    return 0


AUDITS: tuple[Audit, ...] = (
    Audit("label-issues", "training texts whose label is probably wrong (confident learning)",
          "Out-of-sample probabilities by k-fold cross-validation, then cleanlab's confident learning: the training "
          "texts whose given label is probably wrong, ranked, with file:line, the suggested label and the "
          "probabilities. Writes label_issues.md/.json/.html to --output; --write_cleaned FILE writes a new "
          "training file with them relabelled or dropped.", _label_issues_args, _run_label_issues),
)
