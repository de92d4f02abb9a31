"""``tritoncls bench``: parse options, call :func:`tritoncls.benchmarks.bench.run_bench`."""

from __future__ import annotations

import argparse
import logging

from tritoncls.cli_common import flag, quiet_paddlenlp

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Measure serving speed side by side in one run: perf_analyzer against the served ensemble and its model "
    "step (request batch sizes x concurrency), in-process baselines (ONNX Runtime, Paddle Inference, Paddle "
    "dynamic graph; file order and length-sorted), the reference-style deployment as a peer, INT8 and ORT "
    "fusions, on ERNIE 3.0 shapes with random weights and the trained export's vocabulary. Writes report.json "
    "(with the issue's targets), report.md and PNG plots into --output. Starts and stops its own servers."
)


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark served and in-process speed; writes report.json/.md and plots",
                       description=DESCRIPTION)
    flag(p, "model", required=True,
         help="export directory of a trained model (vocabulary, labels, accuracy checks), from `tritoncls export`")
    flag(p, "data", required=True, help="file of texts, one a line, optionally text<TAB>label (e.g. KUAKE-QIC dev.txt)")
    flag(p, "output", required=True, help="report directory (report.json, report.md, PNGs; work/ holds exports and logs)")
    mode = p.add_mutually_exclusive_group()
    flag(mode, "quick", action="store_true",
         help="medium and nano shapes, 256 texts, a short sweep; under 5 minutes on 2 idle cores")
    flag(mode, "tiny", action="store_true",
         help="only the --model export itself, 64 texts, a minimal sweep: proves the wiring (tests)")
    flag(p, "shapes", default=None, help="comma-separated shapes to measure: medium, mini, nano, trained; unset: the mode decides")
    flag(p, "reference_shape", default=None, help="shape the reference-style and INT8 peers run on; unset: the mode decides")
    flag(p, "max_texts", type=int, default=None, help="use only the first N texts of --data; unset: the mode decides")
    flag(p, "instances", type=int, default=1, help="model-step instances of the served default repository")
    flag(p, "intra_op_threads", type=int, default=0, help="ONNX Runtime intra-op threads in the served model step (0: one per core)")
    flag(p, "settings_sweep", action="store_true", help="also try other instance/thread settings (always on in full mode)")
    flag(p, "work_dir", default=None, help="where shape exports, repositories and perf_analyzer files go (default: OUTPUT/work)")
    flag(p, "no_plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(handler=run_bench_command)


def config_from_args(args: argparse.Namespace):
    from tritoncls.benchmarks.bench import BenchConfig

    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    shapes = tuple(s.strip() for s in args.shapes.split(",") if s.strip()) if args.shapes else None
    return BenchConfig(model=args.model, data=args.data, output=args.output, mode=mode, shapes=shapes,
                       max_texts=args.max_texts, reference_shape=args.reference_shape, work_dir=args.work_dir,
                       instances=args.instances, intra_op_threads=args.intra_op_threads,
                       settings_sweep=True if args.settings_sweep else None, plots=not args.no_plots)


def run_bench_command(args: argparse.Namespace) -> int:
    quiet_paddlenlp()
    from tritoncls.benchmarks.bench import report_summary, run_bench

    report = run_bench(config_from_args(args))
    print(report_summary(report))
    print(f"\nreport: {args.output}/report.md")
    if report.get("failures"):
        log.error("%d measurement(s) failed; see the notes in the report", len(report["failures"]))
        return 1
    return 0
