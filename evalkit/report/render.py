"""Render the report context with jinja2 (autoescaped) and write the run's report files."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import jinja2
from markupsafe import Markup

from evalkit.records import CaseResult, Manifest
from evalkit.report.context import build_context
from evalkit.report.junit import render_junit
from evalkit.store import write_text

TEMPLATES = Path(__file__).parent / "templates"

# Text in a report is untrusted (prompts, answers, ids, tags, task descriptions, rationales).
# Autoescaping stops markup; these characters are shown as visible codes instead, because bidi
# overrides reorder what a reader sees (an id can be made to read as another) and C0 controls
# have no business in a report.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def visible_controls(value: Any) -> Any:
    """Replace bidi and control characters in a plain string by ``[U+XXXX]`` (markup is left alone)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", value)
    return value


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "jinja2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=visible_controls,
    )


def _md_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             finalize=visible_controls)
    env.filters["md"] = md_cell
    return env


def md_cell(value: Any, limit: int = 120) -> str:
    """Text made safe for one markdown table cell: no pipes, newlines, HTML, links or bidi controls."""
    text = " ".join(visible_controls(str(value)).split())
    text = text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
    # No markdown link or image from data (a tracking pixel, a javascript: link): both need "](".
    text = text.replace("](", "]\\(")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_html(context: dict[str, Any]) -> str:
    return environment().get_template("report.html.jinja2").render(**context)


def render_markdown(context: dict[str, Any]) -> str:
    return _md_environment().get_template("summary.md.jinja2").render(**context)


def write_reports(run_dir: str | Path, summary: dict[str, Any], results: Sequence[CaseResult],
                  manifest: Manifest) -> dict[str, Path]:
    """Write ``report.html``, ``summary.md`` and ``junit.xml`` into the run directory."""
    run_dir = Path(run_dir)
    context = build_context(summary, results, manifest)
    paths = {"html": run_dir / "report.html", "markdown": run_dir / "summary.md", "junit": run_dir / "junit.xml"}
    write_text(paths["html"], render_html(context))
    write_text(paths["markdown"], render_markdown(context))
    write_text(paths["junit"], render_junit(summary, results, started_at=manifest.started_at))
    return paths
