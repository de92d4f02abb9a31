"""``tritoncls compress``: the fastest served variant of a fine-tuned model within an accuracy budget."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from tritoncls.cli._args import add_batch_size, add_checkpoint, add_dataset, add_output, config_from_args, flag, shared
from tritoncls.cli.prune import add_student_flags
from tritoncls.compress.config import PRECISIONS, SERVINGS

if TYPE_CHECKING:
    from tritoncls.compress.config import CompressConfig

log = logging.getLogger(__name__)

NAME = "compress"
STAGE = "tritoncls.compress"
HELP = "the fastest served variant of a fine-tuned model within an accuracy budget (pruning, INT8, length)"
DESCRIPTION = (
    "Take a checkpoint fine-tuned by `tritoncls train` (the teacher), prune it to every --depths x --widths student "
    "with `prune` (distilled for --epochs), export each, also at the train texts' --length_quantile token length "
    "rounded up to a bucket when that is shorter than the trained length, and measure every structure x --precisions "
    "candidate the way it will run: build-repo, serve, the dev score through the served ensemble, perf_analyzer "
    "at --request_texts texts a request and at single texts at concurrency 32, beside the unpruned FP32 default "
    "repository and the reference-style deployment of the unpruned model. Chooses the fastest candidate (texts/s at "
    "batched requests) whose served score is within --max_drop points of the unpruned FP32 default's. Writes "
    "compress_report.md/.json, compress.png and compress.json (apply it with `build-repo --model EXPORT --options "
    "compress.json`) into --output. A failed candidate is recorded and skipped; --resume keeps finished ones. "
    "Exit status 3: no candidate is within the budget (the closest are listed)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint(parser, detail="the fine-tuned model to compress (the teacher)", required=True)
    add_dataset(parser)
    add_output(parser, "the compress folder (reports, compress.json, prune/, structures/, candidates/)", required=True)
    flag(parser, "max_drop", type=float, required=True,
         help="accuracy budget: most points of the served dev score a candidate may lose to the unpruned FP32 model")
    flag(parser, "budget_minutes", type=float, default=None,
         help="stop starting candidates after this many minutes of the run (pruning included); those left are "
              "reported as not measured (default: no limit)")
    flag(parser, "widths", nargs="+", default=["3/4", "1/2"], metavar="W",
         help="widths of the pruned students (heads and FFN kept), fractions; 1 alone: no width pruning")
    flag(parser, "depths", nargs="+", type=int, default=[], metavar="D",
         help="encoder layer counts of the pruned students; each pairs with every width (default: the teacher's)")
    flag(parser, "precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS,
         help="build-repo precisions of each structure (int8: ONNX Runtime dynamic quantization; int8_static: "
              "static quantization calibrated on the train texts)")
    flag(parser, "servings", nargs="+", default=["default"], choices=tuple(SERVINGS),
         help="how each structure x precision is served: default (build-repo's defaults), fused (--layout fused), "
              "split (one model instance per core, one intra-op thread each), fused_split (both)")
    shared(parser, "epochs", detail="of distillation, per student", type=int, default=2)
    shared(parser, "learning_rate", type=float, default=3e-5)
    add_batch_size(parser, "per distillation step")
    add_student_flags(parser, parser.add_argument_group("students (as prune makes them)"))
    flag(parser, "length_quantile", type=float, default=0.99,
         help="quantile of the train texts' token lengths that sets the extra, shorter max_seq_length")
    flag(parser, "no_corpus_length", action="store_true",
         help="export and measure every structure at its trained max_seq_length only")
    flag(parser, "max_dev_texts", type=int, default=None, help="score the first N dev texts (default: all)")
    flag(parser, "test_file", default=None,
         help="in --dataset_dir: also scored through the server for every candidate, reported beside dev, never "
              "used to choose (default: test.txt where the dataset has one)")
    flag(parser, "no_test", action="store_true", help="score on dev only, even where the dataset has a test file")
    flag(parser, "request_texts", type=int, default=32, help="texts per request of the batched measurement")
    flag(parser, "batch_concurrency", type=int, default=2, help="requests in flight at once of the batched measurement")
    flag(parser, "single_concurrency", type=int, default=32, help="requests in flight at once of single texts")
    flag(parser, "min_requests", type=int, default=8, help="responses per perf_analyzer window (at least)")
    flag(parser, "max_trials", type=int, default=6, help="perf_analyzer windows before it gives up stabilizing")
    flag(parser, "stability_pct", type=int, default=20,
         help="perf_analyzer's stability threshold: windows within this percent of each other")
    flag(parser, "resume", action="store_true",
         help="keep the candidates (and pruned students) an interrupted run in --output finished")
    flag(parser, "no_plots", action="store_true", help="skip compress.png")
    shared(parser, "seed", type=int, default=3)


def compress_config(args: argparse.Namespace) -> CompressConfig:
    """The :class:`CompressConfig` of ``args`` (lists as tuples, ``--no_plots`` inverted)."""
    from tritoncls.compress.config import CompressConfig

    return config_from_args(CompressConfig, args, widths=tuple(args.widths), depths=tuple(args.depths),
                            precisions=tuple(args.precisions), servings=tuple(args.servings),
                            plots=not args.no_plots,
                            corpus_length=not args.no_corpus_length, score_test=not args.no_test)


def run(args: argparse.Namespace) -> int:
    """Compress; 3 when no candidate is within the budget."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.compress.compress import run_compress
    from tritoncls.compress.config import NO_CANDIDATE_WITHIN_BUDGET, OPTIONS_FILE, REPORT_FILE, NoCandidateWithinBudget

    config = compress_config(args)
    try:
        outcome = run_compress(config)
    except NoCandidateWithinBudget as exc:
        log.error("%s", exc)
        print(f"report: {config.output_dir / REPORT_FILE}")
        return NO_CANDIDATE_WITHIN_BUDGET
    print(f"report: {config.output_dir / REPORT_FILE}\nchosen: {outcome.chosen.name}\napply it: tritoncls build-repo "
          f"--model {outcome.chosen.export_dir} --output REPO --options {config.output_dir / OPTIONS_FILE}")
    return 0
