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
    add_input,
    add_max_seq_length,
    add_output,
    add_report,
    add_task,
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
    group = parser.add_argument_group("with --source checkpoint (k-fold fine-tuning) or embeddings (its frozen encoder)")
    add_device(group)
    add_checkpoint(group, detail="fine-tuned afresh on each k-1 folds, or (embeddings) only encoding the texts")
    shared(group, "epochs", detail="per fold", type=int, default=2)
    shared(group, "learning_rate", type=float, default=5e-5)
    add_batch_size(group, "per fine-tuning step")
    add_max_seq_length(group)


# ---------------------------------------------------------------------------------------------
# label-issues
# ---------------------------------------------------------------------------------------------


def _label_issues_args(parser: argparse.ArgumentParser) -> None:
    add_dataset(parser, files=("train",), holds="train.txt and label.txt")
    add_task(parser, detail="label sets get one probability per label and cleanlab's multi-label filter; the "
                            "suggested set is the labels at or above 0.5")
    add_output(parser, "folder for label_issues.md, .json and .html", default="./audit")
    flag(parser, "source", default="tfidf", choices=("tfidf", "embeddings", "checkpoint"),
         help="where the out-of-fold probabilities come from: character n-gram TF-IDF + logistic regression "
              "(seconds); logistic regression on --checkpoint's frozen mean-pooled embeddings (a pretrained or "
              "imported model; a minute on CPU, better than TF-IDF where the model knows the language); or k-fold "
              "fine-tuning of --checkpoint (minutes to hours on CPU)")
    _add_seed_and_folds(parser)
    flag(parser, "max_issues", type=int, default=None,
         help="flag at most this many texts, the least likely labels first (default: all cleanlab flags)")
    flag(parser, "write_cleaned", default=None, metavar="FILE",
         help="also write a new training file with the flagged texts fixed (the original is never changed)")
    flag(parser, "mode", default="relabel", choices=("relabel", "drop"),
         help="with --write_cleaned: give flagged texts their suggested label (set), or drop them")
    flag(parser, "write_review", default=None, metavar="FILE",
         help="also write the flagged lines (given label, least likely first) for a person to re-check; with "
              "--write_cleaned REST --mode drop, `cat REST FILE` after the review is the cleaned training file")
    _add_fine_tuning(parser)


def _run_label_issues(args: argparse.Namespace) -> int:
    device = _device(args) if args.source != "tfidf" else "cpu"
    from tritoncls.training.audit.label_issues import LabelIssuesConfig, label_issues

    label_issues(config_from_args(LabelIssuesConfig, args, device=device))
    return 0


# ---------------------------------------------------------------------------------------------
# sparse
# ---------------------------------------------------------------------------------------------


def _sparse_args(parser: argparse.ArgumentParser) -> None:
    add_dataset(parser, files=("train", "dev", "data"), holds="train.txt, dev.txt, label.txt and data.txt")
    add_task(parser, detail="multi_class only: label sets are refused with what to use instead")
    add_input(parser, detail="judge these texts (production traffic; text or text<TAB>label lines) instead of dev",
              default=None)
    add_output(parser, "folder for sparse.md, .json, .html and to_annotate.txt", default="./audit")
    flag(parser, "space", default="tfidf", choices=("tfidf", "checkpoint"),
         help="where neighbours are found: character n-gram TF-IDF, or --checkpoint's [CLS] vectors")
    flag(parser, "neighbours", type=int, default=5, help="nearest training texts whose mean similarity is the support")
    flag(parser, "rank_by", default="similarity", choices=("similarity", "similarity_x_stability"),
         help="what 'least supported' means: the similarity alone, or times the cross-validation stability")
    flag(parser, "top", type=int, default=100, help="least supported texts reported and covered by the selection")
    flag(parser, "select", type=int, default=100, help="unlabeled texts from --data_file to choose for annotation (0: none)")
    flag(parser, "strategy", default="uncertainty", choices=("uncertainty", "coverage", "hybrid", "diverse"),
         help="how --select chooses: the pool texts the cross-validation models are least sure of (uncertainty: "
              "smallest top-2 margin of their averaged probabilities), the nearest pool text of each least "
              "supported text in turn (coverage), the least sure among the 10 nearest of each least supported "
              "text (hybrid), or one text per k-means cluster of the --prefilter x --select least sure (diverse); "
              "measured in docs/analysis.md")
    flag(parser, "prefilter", type=int, default=10,
         help="with --strategy diverse: cluster the --prefilter x --select least sure pool texts into --select "
              "clusters (k-means seeded by --seed, weighted by uncertainty) and take the text nearest each centre")
    flag(parser, "max_similarity", type=float, default=0.9,
         help="skip a candidate at least this similar (cosine) to one already chosen")
    _add_seed_and_folds(parser)
    group = parser.add_argument_group("with --space checkpoint")
    add_device(group)
    add_checkpoint(group, detail="its encoder's [CLS] vectors are the space")
    add_batch_size(group, "per forward pass")
    add_max_seq_length(group)


def _run_sparse(args: argparse.Namespace) -> int:
    device = _device(args) if args.space == "checkpoint" else "cpu"
    from tritoncls.training.audit.sparse import SparseConfig, sparse

    sparse(config_from_args(SparseConfig, args, device=device))
    return 0


# ---------------------------------------------------------------------------------------------
# augment
# ---------------------------------------------------------------------------------------------


def _augment_args(parser: argparse.ArgumentParser) -> None:
    add_dataset(parser, holds="train.txt, label.txt and (for --targets sparse) dev.txt")
    add_task(parser, detail="an augmented line copies its source line's label field")
    add_output(parser, "the new training file: every original line, then the augmented ones", required=True)
    flag(parser, "methods", nargs="+", default=["swap", "delete", "insert"], choices=("swap", "delete", "insert"),
         help="unit edits (characters in CJK text, words otherwise); insert draws units from the training texts")
    flag(parser, "copies", type=int, default=2, help="augmented texts per target text, the methods in turn")
    flag(parser, "ratio", type=float, default=0.1, help="share of a text's units changed (at least one)")
    flag(parser, "targets", default="sparse", choices=("sparse", "all"),
         help="which training texts to augment: the nearest neighbours of the least supported dev texts, or all")
    flag(parser, "top", type=int, default=100, help="with --targets sparse: least supported dev texts to cover")
    flag(parser, "neighbours", type=int, default=5, help="with --targets sparse: training texts per sparse dev text")
    shared(parser, "seed", type=int, default=3)
    add_report(parser, detail="the augmented texts and their sources")


def _run_augment(args: argparse.Namespace) -> int:
    from tritoncls.training.audit.augment import AugmentConfig, augment

    augment(config_from_args(AugmentConfig, args))
    return 0


# ---------------------------------------------------------------------------------------------
# interpret
# ---------------------------------------------------------------------------------------------


def _interpret_args(parser: argparse.ArgumentParser) -> None:
    add_device(parser)
    add_checkpoint(parser, detail="the classifier whose predictions are explained")
    flag(parser, "text", nargs="+", default=[], metavar="TEXT", help="texts to explain")
    add_input(parser, detail="explain every text in it (a label after a tab is ignored)", default=None)
    add_dataset(parser, required=False, files=(), holds="label.txt: checked against the checkpoint's labels")
    add_output(parser, "folder for interpret.html and interpret.json", default="./audit")
    flag(parser, "label", "target", default=None, metavar="NAME",
         help="the label to explain in every text (default: the predicted one; for a multi-label or hierarchical "
              "checkpoint each predicted label, or the most probable one where none is predicted)")
    flag(parser, "methods", nargs="+", default=["ig"], choices=("ig", "occlusion"),
         help="integrated gradients on the word embeddings; occlusion (delete each token in turn)")
    flag(parser, "steps", type=int, default=50, help="integrated-gradient steps between the baseline and the text")
    add_max_seq_length(parser)
    flag(parser, "no_terminal", dest="terminal", action="store_false",
         help="do not print the coloured texts to the terminal")


def _run_interpret(args: argparse.Namespace) -> int:
    device = _device(args)
    from tritoncls.training.audit.interpret import InterpretConfig, interpret

    interpret(config_from_args(InterpretConfig, args, device=device))
    return 0


AUDITS: tuple[Audit, ...] = (
    Audit("label-issues", "training texts whose label is probably wrong (confident learning)",
          "Out-of-sample probabilities by k-fold cross-validation, then cleanlab's confident learning: the training "
          "texts whose given label is probably wrong, ranked, with file:line, the suggested label and the "
          "probabilities. Writes label_issues.md/.json/.html to --output; --write_cleaned FILE writes a new "
          "training file with them relabelled or dropped.", _label_issues_args, _run_label_issues),
    Audit("sparse", "dev texts the training data hardly supports, and unlabeled texts to annotate for them",
          "Support of each dev (or --input) text: the mean similarity of its nearest training texts (TF-IDF or "
          "checkpoint [CLS] space), and the share of cross-validation models agreeing on its label. Reports the "
          "least supported (sparse.md/.json/.html) and chooses --select texts of --data_file, not in train and no "
          "near-copies, by --strategy: those the cross-validation models are least sure of (default), those "
          "nearest the least supported texts (coverage), the least sure among those (hybrid), or one per cluster "
          "of the least sure (diverse); written to "
          "to_annotate.txt as text<TAB> lines for an annotator to label.",
          _sparse_args, _run_sparse),
    Audit("augment", "extra training texts by swap, delete and insert (offline, Chinese and English)",
          "Augment chosen training texts (by default those nearest the least supported dev texts) by swapping, "
          "deleting or inserting characters (CJK) or words, deterministically for --seed, and write the original "
          "training lines plus the new ones to --output. No synonym substitution: paddlenlp.dataaug downloads its "
          "dictionaries and no installed package ships one.", _augment_args, _run_augment),
    Audit("interpret", "which tokens drove a prediction (integrated gradients, occlusion)",
          "Explain a checkpoint's prediction of each --text (or --input line) token by token: integrated gradients "
          "on the word embeddings from a [PAD] baseline (attributions add up to the logit's change), optionally "
          "occlusion; --label NAME explains that label instead of the predicted one (a multi-label checkpoint, as "
          "its task.json says: each predicted label, the label's own sigmoid probability). Prints the texts coloured in the terminal (green: for the label, red: against) and writes "
          "interpret.html and interpret.json to --output.", _interpret_args, _run_interpret),
)
