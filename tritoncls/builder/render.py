"""Render config.pbtxt files from the packaged Jinja2 templates (StrictUndefined: a missing value fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

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


class Renderer:
    """Jinja2 over one template folder; templates only substitute and loop."""

    def __init__(self, templates_dir: str | Path = TEMPLATES_DIR) -> None:
        self.templates_dir = Path(templates_dir)
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self._env.filters["q"] = pbtxt_string

    def render(self, template: str, **values: Any) -> str:
        where = self.templates_dir / template
        try:
            text = self._env.get_template(template).render(**values)
        except jinja2.TemplateNotFound as exc:
            raise BuildError(f"{where}: template not found ({exc}). Reinstall tritoncls; its templates are package data.") from None
        except jinja2.UndefinedError as exc:
            raise BuildError(
                f"{where}: the template uses an undefined value ({exc.message}). The template and "
                f"tritoncls.builder.plan disagree on a field name; fix the template variable.") from None
        except jinja2.TemplateSyntaxError as exc:
            raise BuildError(f"{exc.filename or where}:{exc.lineno}: template syntax error: {exc.message}.") from None
        return text if text.endswith("\n") else text + "\n"
