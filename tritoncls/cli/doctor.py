"""``tritoncls doctor``: check that this environment can serve and measure, and say how to fix what cannot."""

from __future__ import annotations

import argparse
from pathlib import Path

from tritoncls.cli._args import shared

NAME = "doctor"
STAGE = "tritoncls.doctor"
HELP = "check this environment for serving and benchmarking; print each fix"
DESCRIPTION = (
    "Check, with the same code serve and bench use, what serving needs here: Python, NumPy (1.x under the bundled "
    "Triton 2.51), tritonserver and its python-backend stub's libraries (libpython), perf_analyzer, ONNX "
    "Runtime's providers, whether the stub imports the same packages as this process (it ignores PYTHONPATH), "
    "the GPU; with --model_repository, whether that repository's model step would fall back to the CPU. "
    "Exits 1 when a check fails."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """doctor's options."""
    shared(parser, "model_repository", default=None, detail="also check it against this environment")


def run(args: argparse.Namespace) -> int:
    """Print every check; 1 if one failed."""
    from tritoncls.doctor import failed, render, run_checks

    checks = run_checks(Path(args.model_repository) if args.model_repository else None)
    print(render(checks))
    return 1 if failed(checks) else 0
