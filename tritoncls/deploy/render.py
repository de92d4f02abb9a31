"""Render deployment files from the packaged Jinja2 templates (StrictUndefined: a missing value fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from tritoncls.errors import DeployError

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "deploy_templates"


def yaml_scalar(value: Any) -> str:
    """A YAML value as JSON (JSON is YAML): strings quoted and escaped, lists in flow style."""
    return json.dumps(value, ensure_ascii=False)


class Renderer:
    """Jinja2 over the deploy templates; templates only substitute and loop."""

    def __init__(self, templates_dir: str | Path = TEMPLATES_DIR) -> None:
        self.templates_dir = Path(templates_dir)
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)), undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
        self._env.filters["y"] = yaml_scalar

    def render(self, template: str, **values: Any) -> str:
        where = self.templates_dir / template
        try:
            text = self._env.get_template(template).render(**values)
        except jinja2.TemplateNotFound as exc:
            raise DeployError(f"{where}: template not found ({exc}). Reinstall tritoncls; its templates are package data.") from None
        except jinja2.UndefinedError as exc:
            raise DeployError(f"{where}: the template uses an undefined value ({exc.message}); the template and "
                              f"tritoncls.deploy.plan disagree on a field name.") from None
        except jinja2.TemplateSyntaxError as exc:
            raise DeployError(f"{exc.filename or where}:{exc.lineno}: template syntax error: {exc.message}.") from None
        return text if text.endswith("\n") else text + "\n"
