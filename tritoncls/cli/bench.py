"""``tritoncls bench``: served and in-process speed side by side; writes report.json/.md and plots."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from tritoncls.cli._args import MovedTo, add_input, add_model, add_output, config_from_args, flag, shared

if TYPE_CHECKING:
    from tritoncls.benchmarks.bench import BenchConfig

log = logging.getLogger(__name__)

NAME = "bench"
STAGE = "tritoncls.benchmarks"
HELP = "benchmark served and in-process speed; writes report.json/.md and plots"
DESCRIPTION = (
    "Measure serving speed side by side in one run: perf_analyzer against the served ensemble and its model "
    "step (request batch sizes x concurrency), in-process baselines (ONNX Runtime, Paddle Inference, Paddle "
    "dynamic graph; file order and length-sorted), the reference-style deployment as a peer, INT8 and ORT "
    "fusions, on ERNIE 3.0 shapes with random weights and the trained export's vocabulary. Writes report.json "
    "(with the targets), report.md and PNG plots into --output. Starts and stops its own servers. On a "
    "GPU: `tritoncls bench-gpu`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bench's options; ``--data`` is the older spelling of ``--input``."""
    add_model(parser, detail="a trained model (vocabulary, labels, accuracy checks)", required=True)
    add_input(parser, "data", detail="optionally text<TAB>label lines (e.g. KUAKE-QIC dev.txt)", required=True)
    add_output(parser, "the report directory (report.json, report.md, PNGs; work/ holds exports and logs)",
               required=True)
    mode = parser.add_mutually_exclusive_group()
    flag(mode, "quick", action="store_true",
         help="medium and nano shapes, 256 texts, a short sweep; under 5 minutes on 2 idle cores")
    flag(mode, "tiny", action="store_true",
         help="only the --model export itself, 64 texts, a minimal sweep: proves the wiring (tests)")
    flag(parser, "shapes", default=None,
         help="comma-separated shapes to measure: medium, mini, nano, trained; unset: the mode decides")
    flag(parser, "reference_shape", default=None,
         help="shape the reference-style and INT8 peers run on; unset: the mode decides")
    flag(parser, "max_texts", type=int, default=None,
         help="use only the first N texts of --input; unset: the mode decides")
    shared(parser, "instances", detail="of the served default repository", type=int, default=1)
    shared(parser, "intra_op_threads", detail="ONNX Runtime in the served default repository", type=int, default=0)
    flag(parser, "settings_sweep", action="store_true",
         help="also try other instance/thread settings (always on in full mode)")
    flag(parser, "work_dir", default=None,
         help="where shape exports, repositories and perf_analyzer files go (default: OUTPUT/work)")
    flag(parser, "no_plots", action="store_true", help="skip the PNG plots")
    shared(parser, "device", default="cpu", action=MovedTo, keeps=("cpu",),
           new="the GPU benchmark is its own command now: tritoncls bench-gpu --model EXPORT --input TEXTS --output DIR",
           detail="cpu only; the GPU benchmark is its own command, tritoncls bench-gpu")


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """The :class:`BenchConfig` of ``args`` (mode from --quick/--tiny, shapes split on commas)."""
    from tritoncls.benchmarks.bench import BenchConfig

    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    shapes = tuple(s.strip() for s in args.shapes.split(",") if s.strip()) if args.shapes else None
    return config_from_args(BenchConfig, args, mode=mode, shapes=shapes,
                            settings_sweep=True if args.settings_sweep else None, plots=not args.no_plots)


def run(args: argparse.Namespace) -> int:
    """Benchmark; 1 if a measurement failed."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.benchmarks.bench import report_summary, run_bench

    report = run_bench(bench_config(args))
    print(report_summary(report))
    print(f"\nreport: {args.output}/report.md")
    if report.get("failures"):
        log.error("%d measurement(s) failed; see the notes in the report", len(report["failures"]))
        return 1
    return 0
