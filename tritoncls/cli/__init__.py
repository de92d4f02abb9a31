"""The ``tritoncls`` command: one subcommand per pipeline stage, one module per subcommand.

Each module in :data:`COMMANDS` has ``NAME``, ``HELP``, ``DESCRIPTION``, ``STAGE`` (the package it
drives), ``add_arguments(parser)`` and ``run(args) -> int``. ``run`` imports the heavy libraries
(paddle, onnxruntime) only when it runs, so ``--help`` is instant. A command whose stage package is
not in this build is not offered. A module with ``PASS_THROUGH = True`` (``perf-analyzer``) gets every word
after its name, unparsed, as ``args.args``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from types import ModuleType

from tritoncls import __version__
from tritoncls.cli_common import set_cpu_threads, setup_logging
from tritoncls.errors import USER_ERRORS, UsageError

log = logging.getLogger("tritoncls")

#: Command modules (in this package), in the order ``tritoncls --help`` lists them.
COMMANDS = (
    "train",
    "evaluate",
    "predict",
    "export",
    "import_hf",
    "analyze",
    "prune",
    "build_repo",
    "serve",
    "deploy",
    "classify",
    "soak",
    "monitor",
    "bench",
    "bench_gpu",
    "tune",
    "compress",
    "perf_analyzer",
    "doctor",
)


def command_modules() -> list[ModuleType]:
    """The command modules whose stage package is present, in :data:`COMMANDS` order."""
    modules = []
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("tritoncls.") and not exc.name.startswith(__name__):
                continue  # its stage package is not in this build
            raise
        if importlib.util.find_spec(module.STAGE) is not None:
            modules.append(module)
    return modules


def add_command(sub: argparse._SubParsersAction, module: ModuleType) -> argparse.ArgumentParser:
    """Register one command module as a subcommand."""
    parser = sub.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION,
                            add_help=not is_pass_through(module))
    module.add_arguments(parser)
    parser.set_defaults(handler=module.run, usage_error=parser.error)
    return parser


def is_pass_through(module: ModuleType) -> bool:
    """A command that hands its whole command line to another program (``PASS_THROUGH = True``)."""
    return bool(getattr(module, "PASS_THROUGH", False))


def split_pass_through(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """``argv`` up to a pass-through command's name, and every word after it untouched (None: no such command).

    argparse would read ``--help`` or ``-m`` after the name as its own options; the top-level options take
    no value, so the first word not starting with ``-`` is the command.
    """
    word = next((i for i, w in enumerate(argv) if not w.startswith("-")), None)
    if word is None or argv[word] not in {m.NAME for m in command_modules() if is_pass_through(m)}:
        return argv, None
    return argv[:word + 1], argv[word + 1:]


def build_parser() -> argparse.ArgumentParser:
    """The ``tritoncls`` parser with every available command."""
    parser = argparse.ArgumentParser(
        prog="tritoncls",
        description="Fine-tune ERNIE/BERT text classifiers with PaddlePaddle and serve them on Triton.",
    )
    parser.add_argument("--version", action="version", version=f"tritoncls {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        add_command(sub, module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command; 0 on success, 1 on a tritoncls error, 2 on bad usage."""
    parser = build_parser()
    head, rest = split_pass_through(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(head)
    if rest is not None:
        args.args = rest
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return launch(args)


def launch(args: argparse.Namespace) -> int:
    """Set up the process (CPU threads, logging, native-crash tracebacks), then :func:`run_command`: what every
    console script does once its arguments are parsed."""
    set_cpu_threads()
    setup_logging(args.verbose)
    _enable_faulthandler()
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Call ``args.handler``; errors become a logged message and an exit status."""
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        args.usage_error(str(exc))  # exits 2, like argparse's own errors
        return 2
    except USER_ERRORS as exc:  # the package's root and the runtime's
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

