"""Versions of the packages that shape a checkpoint, an export or a measurement."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata

PACKAGES = ("tritoncls", "paddlepaddle", "paddlenlp", "paddle2onnx", "onnx", "onnxruntime", "onnxruntime-gpu",
            "tokenizers", "tritonclient", "nvidia-pytriton", "numpy")


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version}`` for each installed package of ``packages``."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
