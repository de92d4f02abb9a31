"""``tritoncls classify``: a texts file in, the TSV ``tritoncls predict`` writes out, via Triton."""

from __future__ import annotations

import argparse
import logging

from tritoncls.cli._args import add_batch_size, add_client, add_input, add_output, config_from_args, flag, shared

log = logging.getLogger(__name__)

NAME = "classify"
STAGE = "tritoncls.clients"
HELP = "classify a text file with a model served by Triton"
DESCRIPTION = (
    "Send the texts of --input (one a line) to a tritoncls ensemble on one or more Triton servers and write "
    "text, label and confidence to --output, in the format `tritoncls predict` writes. Several --url spread "
    "the requests over several servers. Results are kept chunk by chunk in <output>.parts/ (each chunk "
    "written atomically) and joined into --output at the end; a run that stops says how many texts are done, "
    "and --resume finishes it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """classify's options."""
    shared(parser, "url", detail="repeat for several servers", action="extend", nargs="+", required=True,
           metavar="HOST:PORT")
    add_input(parser, required=True)
    add_output(parser, "a TSV of text, label, confidence", required=True)
    add_client(parser, concurrency=4, timeout_s=60.0)
    add_batch_size(parser, "per request (split further to the model's max_batch_size)")
    flag(parser, "retries", type=int, default=3,
         help="retries when a server is unavailable, waiting 0.5 s, 1 s, 2 s, then 5 s between tries; "
              "8 rides out a server restart of about 20 s")
    flag(parser, "chunk_size", type=int, default=1000, help="texts per chunk written to <output>.parts/")
    flag(parser, "resume", action="store_true",
         help="finish an earlier run that stopped: keep its chunks in <output>.parts/ and classify only the rest")
    flag(parser, "force", action="store_true",
         help="overwrite an existing --output and discard an earlier run's chunks")


def run(args: argparse.Namespace) -> int:
    """Classify ``--input`` into ``--output``."""
    from tritoncls.clients.chunked import ClassifyFileConfig, classify_file

    result = classify_file(config_from_args(ClassifyFileConfig, args, urls=tuple(args.url), progress=True))
    fresh = result.texts - result.resumed_texts
    log.info("Classified %d texts in %.1f s (%.0f texts/s) over %s%s; wrote %s",
             fresh, result.seconds, fresh / max(result.seconds, 1e-9), ", ".join(args.url),
             f" ({result.resumed_texts} more done by the earlier run)" if result.resumed_texts else "", result.output)
    return 0
