"""``tritoncls classify``: a text file in, the same TSV ``tritoncls predict`` writes out, via Triton."""

from __future__ import annotations

import argparse
import logging

from tritoncls.cli_common import flag

log = logging.getLogger(__name__)


def register(sub) -> None:
    _register_classify(sub)
    _register_soak(sub)


def _register_classify(sub) -> None:
    p = sub.add_parser(
        "classify", help="classify a text file with a model served by Triton",
        description="Send the texts of --input (one a line) to a tritoncls ensemble on one or more Triton servers "
                    "and write text, label and confidence to --output, in the format `tritoncls predict` writes. "
                    "Several --url spread the requests over several servers. Results are kept chunk by chunk in "
                    "<output>.parts/ (each chunk written atomically) and joined into --output at the end; a run "
                    "that stops says how many texts are done, and --resume finishes it.")
    flag(p, "url", action="extend", nargs="+", required=True, metavar="HOST:PORT",
         help="server address (gRPC port 8001 or HTTP port 8000 by default); repeat for several servers")
    flag(p, "input", required=True, help="texts to classify, one a line (UTF-8)")
    flag(p, "output", required=True, help="TSV to write: text, label, confidence")
    flag(p, "protocol", default="grpc", choices=("grpc", "http"), help="how to talk to the servers")
    flag(p, "model_name", default="seqcls", help="the ensemble's name (build-repo --name)")
    flag(p, "concurrency", type=int, default=4, help="requests in flight at once")
    flag(p, "batch_size", type=int, default=32, help="texts per request (split further to the model's max_batch_size)")
    flag(p, "timeout_s", type=float, default=60.0, help="per-request timeout in seconds")
    flag(p, "retries", type=int, default=3,
         help="retries when a server is unavailable, waiting 0.5 s, 1 s, 2 s, then 5 s between tries; "
              "8 rides out a server restart of about 20 s")
    flag(p, "chunk_size", type=int, default=1000, help="texts per chunk written to <output>.parts/")
    flag(p, "resume", action="store_true",
         help="finish an earlier run that stopped: keep its chunks in <output>.parts/ and classify only the rest")
    flag(p, "force", action="store_true", help="overwrite an existing --output and discard an earlier run's chunks")
    p.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    from tritoncls.clients.chunked import ClassifyFileConfig, classify_file

    config = ClassifyFileConfig(
        input=args.input, output=args.output, urls=tuple(args.url), protocol=args.protocol,
        model_name=args.model_name, concurrency=args.concurrency, batch_size=args.batch_size,
        chunk_size=args.chunk_size, timeout_s=args.timeout_s, retries=args.retries, resume=args.resume,
        force=args.force, progress=True)
    result = classify_file(config)
    fresh = result.texts - result.resumed_texts
    log.info("Classified %d texts in %.1f s (%.0f texts/s) over %s%s; wrote %s",
             fresh, result.seconds, fresh / max(result.seconds, 1e-9), ", ".join(args.url),
             f" ({result.resumed_texts} more done by the earlier run)" if result.resumed_texts else "", result.output)
    return 0


def _register_soak(sub) -> None:
    p = sub.add_parser(
        "soak", help="hold a served ensemble under load; check errors, labels, latency and server memory",
        description="Send --requests single-text requests (texts drawn from --texts, shuffled, so lengths mix) "
                    "from --concurrency threads, with no retries, to a running server (--url) or to one started "
                    "on --model_repository (loopback, free ports). Reports errors, p50/p99 latency and the RSS of "
                    "tritonserver and its python-backend stubs at the start, after --warmup_requests and at the "
                    "end; with --reference_export every label is compared with the in-process predictor. Exits "
                    "1 unless there are no errors, no label differs and RSS grew at most --max_rss_growth_mib "
                    "after the warm-up.")
    target = p.add_mutually_exclusive_group(required=True)
    flag(target, "url", default=None, metavar="HOST:PORT", help="a running server (gRPC 8001 or HTTP 8000)")
    flag(target, "model_repository", default=None, help="start tritonserver on this repository for the soak")
    flag(p, "texts", required=True, help="texts to send: one a line, or text<TAB>label lines (e.g. KUAKE-QIC dev.txt)")
    flag(p, "requests", type=int, default=20000, help="single-text requests to send")
    flag(p, "concurrency", type=int, default=16, help="requests in flight at once (above the model's instance count)")
    flag(p, "protocol", default="grpc", choices=("grpc", "http"), help="how to talk to the server")
    flag(p, "model_name", default="seqcls", help="the ensemble's name (build-repo --name)")
    flag(p, "reference_export", default=None, help="export directory: compare every label with the in-process predictor")
    flag(p, "server_pid", type=int, default=None, help="with --url: the tritonserver pid (default: the process "
                                                        "listening on the URL's port, where the OS shows it)")
    flag(p, "warmup_requests", type=int, default=500, help="requests before the RSS baseline is taken")
    flag(p, "max_rss_growth_mib", type=float, default=32.0, help="allowed RSS growth after the warm-up, in MiB")
    flag(p, "max_seconds", type=float, default=3600.0, help="stop sending after this long (the soak then fails)")
    flag(p, "timeout_s", type=float, default=30.0, help="per-request timeout in seconds")
    flag(p, "seed", type=int, default=0, help="seed of the text order")
    flag(p, "report", default=None, help="also write the report as JSON here")
    p.set_defaults(handler=run_soak)


def run_soak(args: argparse.Namespace) -> int:
    from tritoncls.benchmarks.soak import SoakConfig, soak, write_report

    report = soak(SoakConfig(
        texts=args.texts, requests=args.requests, concurrency=args.concurrency, url=args.url,
        model_repository=args.model_repository, protocol=args.protocol, model_name=args.model_name,
        reference_export=args.reference_export, server_pid=args.server_pid, warmup_requests=args.warmup_requests,
        max_rss_growth_mib=args.max_rss_growth_mib, max_seconds=args.max_seconds, timeout_s=args.timeout_s,
        seed=args.seed))
    print(report.summary(), flush=True)
    if args.report:
        write_report(report, args.report)
    return 0 if report.passed else 1
