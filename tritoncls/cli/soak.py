"""``tritoncls soak``: hold a served ensemble under load; check errors, labels, latency and server memory."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import CONCEPTS, add_client, add_input, add_report, config_from_args, flag, shared

NAME = "soak"
STAGE = "tritoncls.soak"
HELP = "hold a served ensemble under load; check errors, labels, latency and server memory"
DESCRIPTION = (
    "Send --requests single-text requests (texts drawn from --input, shuffled, so lengths mix) from "
    "--concurrency threads, with no retries, to a running server (--url) or to one started on "
    "--model_repository (loopback, free ports). Reports errors, p50/p99 latency and the RSS of tritonserver "
    "and its python-backend stubs at the start, after --warmup_requests and at the end; with "
    "--reference_model every answer is compared with the in-process predictor (the label, or for a multi-label "
    "or hierarchical export the whole label set, as its manifest's task says). Exits 1 unless there are no "
    "errors, no answer differs and RSS grew at most --max_rss_growth_mib after the warm-up."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """soak's options; ``--texts`` and ``--reference_export`` are older spellings."""
    target = parser.add_mutually_exclusive_group(required=True)
    shared(target, "url", detail="a running server", default=None, metavar="HOST:PORT")
    shared(target, "model_repository", detail="start tritonserver on it for the soak", default=None)
    add_input(parser, "texts", detail="or text<TAB>label lines (e.g. KUAKE-QIC dev.txt)", required=True)
    flag(parser, "requests", type=int, default=20000, help="single-text requests to send")
    add_client(parser, concurrency=16, timeout_s=30.0)
    flag(parser, "reference_model", "reference_export", default=None,
         help=f"{CONCEPTS['model']}; compare every answer (label or label set) with the in-process predictor on it")
    flag(parser, "server_pid", type=int, default=None,
         help="with --url: the tritonserver pid (default: the process listening on the URL's port, where the "
              "OS shows it)")
    flag(parser, "warmup_requests", type=int, default=500, help="requests before the RSS baseline is taken")
    flag(parser, "max_rss_growth_mib", type=float, default=32.0, help="allowed RSS growth after the warm-up, in MiB")
    flag(parser, "max_seconds", type=float, default=3600.0, help="stop sending after this long (the soak then fails)")
    shared(parser, "seed", detail="it orders the texts", type=int, default=0)
    add_report(parser)


def run(args: argparse.Namespace) -> int:
    """Soak the server; 0 when the soak passed."""
    from tritoncls.soak import SoakConfig, soak, write_report

    report = soak(config_from_args(SoakConfig, args))
    print(report.summary(), flush=True)
    if args.report:
        write_report(report, args.report)
    return 0 if report.passed else 1
