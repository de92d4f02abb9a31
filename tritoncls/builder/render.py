"""Render config.pbtxt files from the packaged Jinja2 templates (StrictUndefined: a missing value fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tritoncls.common.templates import TemplateRenderer
from tritoncls.errors import BuildError

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "model_repository_templates"
PYTHON_MODELS_DIR = TEMPLATES_DIR / "python_models"


def pbtxt_string(value: Any) -> str:
    """A protobuf text-format string literal: quotes, backslashes and control characters escaped;
    other characters (UTF-8) kept as they are."""
    text = str(value)
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Renderer(TemplateRenderer):
    """The model repository templates, with ``q`` for protobuf text-format strings."""

    def __init__(self, templates_dir: str | Path = TEMPLATES_DIR) -> None:
        super().__init__(templates_dir, {"q": pbtxt_string}, BuildError, "tritoncls.builder.plan")
