"""Jinja2 rendering for the packaged templates (build-repo's and deploy's): StrictUndefined, so a
missing value fails; templates only substitute and loop, the planners decide."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from tritoncls.errors import TritonclsError


class TemplateRenderer:
    """Jinja2 over one template folder; errors name the template and are raised as ``error``."""

    def __init__(self, templates_dir: str | Path, filters: dict[str, Callable[[Any], str]],
                 error: type[TritonclsError], planner: str) -> None:
        self.templates_dir = Path(templates_dir)
        self.error = error
        self.planner = planner  # the module whose plan fills the templates, named in errors
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)), undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
        self._env.filters.update(filters)

    def render(self, template: str, **values: Any) -> str:
        where = self.templates_dir / template
        try:
            text = self._env.get_template(template).render(**values)
        except jinja2.TemplateNotFound as exc:
            raise self.error(f"{where}: template not found ({exc}). Reinstall tritoncls; its templates are "
                             f"package data.") from None
        except jinja2.UndefinedError as exc:
            raise self.error(f"{where}: the template uses an undefined value ({exc.message}). The template and "
                             f"{self.planner} disagree on a field name; fix the template variable.") from None
        except jinja2.TemplateSyntaxError as exc:
            raise self.error(f"{exc.filename or where}:{exc.lineno}: template syntax error: {exc.message}.") from None
        return text if text.endswith("\n") else text + "\n"
