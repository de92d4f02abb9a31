"""``tritoncls tune``: search the serving configuration on your texts and machine against a p99 budget."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from tritoncls.cli._args import add_batch_size, add_input, add_model, add_output, config_from_args, flag, shared

if TYPE_CHECKING:
    from tritoncls.tune.config import TuneConfig

log = logging.getLogger(__name__)

NAME = "tune"
STAGE = "tritoncls.tune"
HELP = "search the serving configuration on your texts against a p99 latency budget; writes tune.json"
DESCRIPTION = (
    "Build candidate repositories from --model, serve each with tritonserver and drive it with perf_analyzer "
    "using the texts of --input (single-text requests, or --request_texts a request, at rising concurrency; "
    "batched requests in the final comparison). A coordinate search (layout ensemble/fused x model-step "
    "instances x intra-op threads, max_queue_delay_us, INT8 when labelled texts show its accuracy within --accuracy_floor, bucket edges from "
    "the corpus's token-length quantiles, the fused layout's length-group padding, tokenizer instances, "
    "max_batch_size) keeps the highest throughput of that workload whose p99 stays within --latency_budget_ms, "
    "within --budget_minutes. Then the default and the chosen configuration are measured again side by side. "
    "Writes tune.json (apply it with `build-repo --options`), tune_report.md, tune_plot.png and "
    "tune_results.json into --output. Exit code 3: no configuration meets the budget."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """tune's options; ``--data`` is another spelling of ``--input``."""
    add_model(parser, required=True)
    add_input(parser, "data", detail="or text<TAB>label lines (labels enable the INT8 accuracy check)", required=True)
    add_output(parser, "the tune folder (tune.json, tune_report.md, tune_plot.png, tune_results.json, work/)",
               required=True)
    flag(parser, "latency_budget_ms", type=float, default=200.0,
         help="p99 latency budget of the workload's requests (single texts unless --request_texts)")
    flag(parser, "budget_minutes", type=float, default=10.0,
         help="time for the whole run; the search stops starting candidates when it would run over")
    flag(parser, "concurrencies", type=int, nargs="+", default=[1, 4, 16, 32],
         help="concurrencies of the workload, rising (a candidate stops at the first past the budget)")
    add_batch_size(parser, "of the batched requests in the final side-by-side")
    flag(parser, "request_texts", type=int, default=1,
         help="texts per request of the workload the search optimises: 1 (single texts) or your clients' batch "
              "size; the budget is then the p99 of such requests")
    flag(parser, "client_cpus", type=int, nargs="+", default=[],
         help="run perf_analyzer on these CPU numbers and tritonserver and the in-process runs on the others, "
              "as if the client ran on another machine (default: everything shares every CPU)")
    flag(parser, "max_texts", type=int, default=1024, help="use the first N texts of --input")
    flag(parser, "accuracy_floor", type=float, default=1.0,
         help="INT8 is tried only when its accuracy on labelled texts is at most this many points below FP32")
    flag(parser, "final_rounds", type=int, default=2, help="side-by-side rounds of default vs tuned")
    flag(parser, "max_candidates", type=int, default=None,
         help="stop the search after this many candidates (the default counts as one); unset: the time budget decides")
    shared(parser, "name", detail="in the candidate repositories", default="seqcls")
    flag(parser, "stages", nargs="+", default=None,
         help="search only these stages (default: all): 'layout x instances x threads', max_queue_delay_us, "
              "precision, buckets, group_padding, tokenizer_instances, max_batch_size")
    flag(parser, "no_plots", action="store_true", help="skip tune_plot.png")


def tune_config(args: argparse.Namespace) -> TuneConfig:
    """The :class:`TuneConfig` of ``args`` (lists as tuples, ``--no_plots`` inverted)."""
    from tritoncls.tune.config import TuneConfig

    return config_from_args(TuneConfig, args, concurrencies=tuple(args.concurrencies), plots=not args.no_plots,
                            stages=tuple(args.stages) if args.stages else None, client_cpus=tuple(args.client_cpus))


def run(args: argparse.Namespace) -> int:
    """Tune; 3 when no configuration meets the budget."""
    from tritoncls.cli_common import quiet_paddlenlp

    quiet_paddlenlp()
    from tritoncls.tune.config import NO_CANDIDATE_MEETS_BUDGET, REPORT_FILE
    from tritoncls.tune.tune import run_tune

    config = tune_config(args)
    outcome = run_tune(config)
    print(f"report: {config.output_dir / REPORT_FILE}")
    if not outcome.met:
        log.error("no configuration meets the p99 budget of %g ms; the report lists the closest", config.latency_budget_ms)
        return NO_CANDIDATE_MEETS_BUDGET
    best = outcome.result.best
    print(f"chosen: {best.candidate.name}\napply it: tritoncls build-repo --model {config.model} --output REPO "
          f"--options {config.output_dir / 'tune.json'}")
    return 0
