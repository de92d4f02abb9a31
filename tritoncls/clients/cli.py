"""``tritoncls classify``: a text file in, the same TSV ``tritoncls predict`` writes out, via Triton."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from tritoncls.cli_common import flag

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "classify", help="classify a text file with a model served by Triton",
        description="Send the texts of --input (one a line) to a tritoncls ensemble on one or more Triton servers "
                    "and write text, label and confidence to --output, in the format `tritoncls predict` writes. "
                    "Several --url spread the requests over several servers.")
    flag(p, "url", action="extend", nargs="+", required=True, metavar="HOST:PORT",
         help="server address (gRPC port 8001 or HTTP port 8000 by default); repeat for several servers")
    flag(p, "input", required=True, help="texts to classify, one a line (UTF-8)")
    flag(p, "output", required=True, help="TSV to write: text, label, confidence")
    flag(p, "protocol", default="grpc", choices=("grpc", "http"), help="how to talk to the servers")
    flag(p, "model_name", default="seqcls", help="the ensemble's name (build-repo --name)")
    flag(p, "concurrency", type=int, default=4, help="requests in flight at once")
    flag(p, "batch_size", type=int, default=32, help="texts per request (split further to the model's max_batch_size)")
    flag(p, "timeout_s", type=float, default=60.0, help="per-request timeout in seconds")
    flag(p, "retries", type=int, default=3, help="retries (with backoff) when a server is unavailable")
    p.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    from tritoncls.clients.classify import classify_texts
    from tritoncls.training.data import read_texts
    from tritoncls.training.predict import write_predictions

    texts = read_texts(args.input)
    start = time.perf_counter()
    predictions = classify_texts(texts, args.url, protocol=args.protocol, model_name=args.model_name,
                                 concurrency=args.concurrency, batch_size=args.batch_size, timeout_s=args.timeout_s,
                                 retries=args.retries, progress=True)
    seconds = time.perf_counter() - start
    out = Path(args.output)
    write_predictions(out, texts, [p.label for p in predictions], [p.confidence for p in predictions])
    log.info("Classified %d texts in %.1f s (%.0f texts/s) over %s; wrote %s",
             len(texts), seconds, len(texts) / max(seconds, 1e-9), ", ".join(args.url), out)
    return 0
