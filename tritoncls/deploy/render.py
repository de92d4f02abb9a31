"""Render deployment files from the packaged Jinja2 templates (StrictUndefined: a missing value fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tritoncls.common.templates import TemplateRenderer
from tritoncls.errors import DeployError

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "deploy_templates"


def yaml_scalar(value: Any) -> str:
    """A YAML value as JSON (JSON is YAML): strings quoted and escaped, lists in flow style."""
    return json.dumps(value, ensure_ascii=False)


class Renderer(TemplateRenderer):
    """The deploy templates, with ``y`` for YAML scalars."""

    def __init__(self, templates_dir: str | Path = TEMPLATES_DIR) -> None:
        super().__init__(templates_dir, {"y": yaml_scalar}, DeployError, "tritoncls.deploy.plan")
