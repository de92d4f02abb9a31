"""The ``tritoncls`` command: one subcommand per pipeline stage.

Each stage module registers its parser; handlers import heavy libraries (paddle, onnxruntime) only
when they run, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tritoncls import __version__
from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.errors import TritonclsError

log = logging.getLogger("tritoncls")

#: Modules with a ``register(subparsers)`` function, in the order their commands are listed.
COMMAND_MODULES = (
    "tritoncls.training.cli",
    "tritoncls.builder.cli",
    "tritoncls.server.cli",
    "tritoncls.clients.cli",
    "tritoncls.benchmarks.cli",
    "tritoncls.training.prune_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tritoncls",
        description="Fine-tune ERNIE/BERT text classifiers with PaddlePaddle and serve them on Triton.",
    )
    parser.add_argument("--version", action="version", version=f"tritoncls {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # stage not present in this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    set_cpu_threads()
    setup_logging(args.verbose)
    _enable_faulthandler()
    try:
        return int(args.handler(args) or 0)
    except TritonclsError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def _enable_faulthandler() -> None:
    """Python tracebacks on a native crash (Paddle, ONNX Runtime, gloo), instead of a bare exit status."""
    import faulthandler

    if faulthandler.is_enabled():
        return
    try:
        faulthandler.enable()
    except (AttributeError, ValueError, OSError):  # stderr without a file descriptor (e.g. captured)
        pass


if __name__ == "__main__":
    sys.exit(main())
