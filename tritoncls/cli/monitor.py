"""``tritoncls monitor``: compare a served model's live traffic with its reference distribution; exit 3 on drift."""

from __future__ import annotations

import argparse

from tritoncls.cli._args import add_output, config_from_args, flag, shared

NAME = "monitor"
STAGE = "tritoncls.monitor"
HELP = "compare a served model's live traffic with its reference distribution; exit 3 on drift"
DESCRIPTION = (
    "Read the tritoncls_ counters of a served model from Triton's metrics port (--metrics_url; cumulative since the "
    "server started, or since a --baseline snapshot) or from Prometheus (--prometheus, the increase over --window), "
    "and compare them with the reference distribution its export recorded on dev data: the population stability "
    "index (PSI) of the predicted labels, the top confidence, the token lengths and (multi-label) the labels per "
    "text, a chi-square test of the label shares, the low-confidence and truncated rates, refused requests. A "
    "distribution drifted when its PSI is at least --psi_threshold (labels: and the chi-square test rejects at "
    "--alpha). Prints a table; --output also writes monitor.json, monitor.md and monitor.png. Exit status: 0 no "
    "drift, 3 drift, 4 not enough traffic (fewer than --min_texts texts: no verdict), 1 an error. See "
    "docs/monitoring.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """monitor's options."""
    from tritoncls.monitor.config import CHI2_ALPHA, DEFAULT_METRICS_URL, DEFAULT_MIN_TEXTS, PSI_DRIFT

    flag(parser, "reference", required=True, metavar="PATH",
         help="the reference distribution: a reference.json, the export folder holding it (`tritoncls export "
              "--reference_data`), or the model repository built from that export (tritoncls_reference.json)")
    source = parser.add_mutually_exclusive_group()
    flag(source, "metrics_url", default=DEFAULT_METRICS_URL, metavar="URL",
         help="Triton's metrics endpoint (`tritoncls serve --metrics_port`)")
    flag(source, "prometheus", default=None, metavar="URL",
         help="a Prometheus server's base URL that scrapes the metrics port, instead of --metrics_url")
    flag(parser, "window", default="1h", metavar="DURATION", help="with --prometheus: compare the counts of this last span")
    shared(parser, "name", "model_name", default=None,
           detail="the served model whose series to compare (their model label; default: the only one present)")
    flag(parser, "baseline", default=None, metavar="FILE",
         help="a snapshot written by --save_snapshot: compare only the counts since it was taken")
    flag(parser, "save_snapshot", default=None, metavar="FILE",
         help="write the counters read now, for a later --baseline")
    add_output(parser, "a folder for monitor.json, monitor.md and monitor.png (reference and live shares)",
               default=None, metavar="DIR")
    flag(parser, "min_texts", type=int, default=DEFAULT_MIN_TEXTS,
         help="fewer texts classified than this: no verdict, exit 4")
    flag(parser, "psi_threshold", type=float, default=PSI_DRIFT,
         help="a distribution whose PSI is at least this drifted (0.1 to it is reported as moderate)")
    flag(parser, "alpha", type=float, default=CHI2_ALPHA,
         help="significance level of the chi-square test the label shares must also fail to count as drift")
    shared(parser, "timeout_s", type=float, default=10.0)


def run(args: argparse.Namespace) -> int:
    """Compare and print the table; the exit status is the verdict's."""
    from tritoncls.monitor.config import MonitorConfig
    from tritoncls.monitor.monitor import monitor
    from tritoncls.monitor.report import table, write_report

    report = monitor(config_from_args(MonitorConfig, args))
    print(table(report), flush=True)
    if args.output:
        paths = write_report(report, args.output)
        print(f"wrote {', '.join(str(p) for p in paths.values())}", flush=True)
    return report.exit_status
