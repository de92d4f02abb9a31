"""``tritoncls perf-analyzer ARGS...``: the installed perf_analyzer, every argument passed through untouched.

perf_analyzer from the ``tritonclient`` 2.51 wheel links ``libcudart.so.12`` (even on CPU) and
``libb64.so.0d``. Found and prepared by :meth:`tritoncls.measure.perf_analyzer.PerfAnalyzer.find`
(the same discovery ``tritoncls bench`` uses), it replaces this process (``exec``): its output, exit
status and signal handling are perf_analyzer's own.
"""

from __future__ import annotations

import argparse
import os
import sys

NAME = "perf-analyzer"
STAGE = "tritoncls.measure"
HELP = "run the installed perf_analyzer with the libraries it needs (every argument passed through)"
DESCRIPTION = (
    "Run perf_analyzer (installed by the tritonclient 2.51 wheel beside this Python) exactly as its own "
    "documentation describes, with pip's nvidia-cuda-runtime-cu12 lib folder on LD_LIBRARY_PATH. Every argument "
    "after `perf-analyzer`, --help included, goes to perf_analyzer untouched, e.g. "
    "`tritoncls perf-analyzer -m seqcls -u 127.0.0.1:8001 -i grpc --string-data hello --concurrency-range 1:4`."
)
#: The CLI hands every argument after the command name to ``args.args`` without parsing it.
PASS_THROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One positional that takes the rest of the command line (shown in ``tritoncls --help``)."""
    parser.add_argument("args", nargs=argparse.REMAINDER, help="perf_analyzer's own arguments")


def command(args: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """The binary, its argv and its environment; BenchmarkError saying how to install what is missing."""
    from tritoncls.measure.perf_analyzer import PerfAnalyzer

    analyzer = PerfAnalyzer.find()
    return str(analyzer.binary), [str(analyzer.binary), *args], analyzer.env


def run(args: argparse.Namespace) -> int:
    """Replace this process with perf_analyzer; returns only when it cannot start."""
    binary, argv, env = command(list(args.args))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(binary, argv, env)
    except OSError as exc:
        from tritoncls.errors import BenchmarkError

        raise BenchmarkError(f"{binary}: cannot run it ({exc.strerror}); reinstall `tritonclient[grpc,http]==2.51.0`.") from exc
    return 1  # not reached: execve does not return
