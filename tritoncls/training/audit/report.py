"""Report writers shared by the audits: one markdown table, the same table as an HTML page, and JSON."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritoncls.common import files
from tritoncls.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Table:
    """A report: a title, a few summary lines, and rows of the named columns."""

    title: str
    summary: list[str]
    columns: Sequence[str]
    rows: list[dict[str, Any]]
    data: dict[str, Any] = field(default_factory=dict)  # the JSON report (rows included by the writer)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(table: Table) -> str:
    lines = [f"# {table.title}", ""] + [f"- {line}" for line in table.summary] + [""]
    lines.append("| " + " | ".join(table.columns) + " |")
    lines.append("|" + "---|" * len(table.columns))
    for row in table.rows:
        cells = (_cell(row.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in table.columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def html_page(table: Table, body: str | None = None) -> str:
    """A standalone page: the summary and the table (or ``body``, already escaped HTML)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c, '')))}</td>" for c in table.columns) + "</tr>"
                   for row in table.rows)
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in table.summary)
    content = body if body is not None else f"<table><tr>{head}</tr>{rows}</table>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(table.title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#eee}</style></head>"
            f"<body><h1>{html.escape(table.title)}</h1><ul>{summary}</ul>{content}</body></html>\n")


def write_reports(folder: str | Path, name: str, table: Table, html_body: str | None = None) -> dict[str, Path]:
    """``folder/name.md``, ``name.json`` and ``name.html``; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / f"{name}.md", "json": folder / f"{name}.json", "html": folder / f"{name}.html"}
    files.write_text(paths["markdown"], markdown(table))
    files.write_text(paths["json"], json.dumps(table.data | {"title": table.title, "summary": table.summary,
                                                            "rows": table.rows}, indent=2, ensure_ascii=False) + "\n")
    files.write_text(paths["html"], html_page(table, html_body))
    log.info("Wrote %s, %s and %s", paths["markdown"], paths["json"], paths["html"])
    return paths


def refuse_original(target: Path, originals: Sequence[Path], option: str, example: str = "cleaned") -> None:
    """Refuse to write ``target`` over one of the data set's own files (the error suggests ``NAME.example.txt``)."""
    for original in originals:
        if target.resolve() == original.resolve():
            raise ConfigError(f"{option} {target}: that is the data set's own {original.name}, which an audit never "
                              f"changes. Write to a new file (e.g. {original.with_name(f'{original.stem}.{example}.txt')}).")
