"""Render the report context with jinja2 (autoescaped) and write the run's report files."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import jinja2
from markupsafe import Markup

from evalkit.records import CaseResult, Manifest
from evalkit.report.context import build_context
from evalkit.report.junit import DEFAULT_JUNIT_CASES, render_junit

if TYPE_CHECKING:
    from evalkit.comparison import Comparison
    from evalkit.summary import Summary

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
    # Not autoescaped: HTML entities are not markdown (`->` would print as `-&gt;`, and inside a
    # code span an entity shows as typed). Untrusted text goes through `md` or `mdcode` instead.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             finalize=visible_controls)
    env.filters["md"] = md_cell
    env.filters["mdcode"] = md_code
    return env


def _one_line(value: Any, limit: int) -> str:
    text = " ".join(visible_controls(str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_cell(value: Any, limit: int = 120) -> str:
    """Text made inert for one markdown table cell (or a line of prose).

    GitHub renders some raw HTML in markdown (step summaries, comments), so a ``<`` from data
    is backslash-escaped: ``\\<img ...>`` shows as text and can open no tag, autolink or comment.
    ``>`` opens nothing inside a line and is left as is, so ``->`` reads as ``->``. Pipes are
    escaped (they would split the cell), newlines folded, backticks made quotes, and ``](`` broken
    so that no link or image (a tracking pixel, a ``javascript:`` link) comes from data.
    """
    text = _one_line(value, limit)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("`", "'")
    return text.replace("](", "]\\(")


def md_code(value: Any, limit: int = 120) -> str:
    """Text for inside a markdown code span (`` `...` ``), which shows it verbatim: only what could
    end the span (a backtick) or the table cell (a pipe, which GitHub unescapes in code spans too)
    is changed, and ``](`` is broken here as well so that no text from data ever reads as a link."""
    return _one_line(value, limit).replace("`", "'").replace("|", "\\|").replace("](", "]\\(")


def render_html(context: dict[str, Any]) -> str:
    return environment().get_template("report.html.jinja2").render(**context)


def render_markdown(context: dict[str, Any]) -> str:
    return _md_environment().get_template("summary.md.jinja2").render(**context)


def write_reports(run_dir: str | Path, summary: Summary, results: Sequence[CaseResult],
                  manifest: Manifest, *, diff: Comparison | None = None,
                  only: Sequence[str] = ("html", "markdown", "junit")) -> dict[str, Path]:
    """Write ``report.html``, ``summary.md`` and ``junit.xml`` (those named in ``only``) into the
    run directory; ``diff`` is the comparison with the run's baseline, when it had one."""
    from evalkit.comparison import Comparison
    from evalkit.summary import Summary

    from evalkit.store import JUNIT, REPORT_HTML, SUMMARY_MD, RunDir

    run = RunDir(run_dir)
    summary = Summary.coerce(summary)
    diff = Comparison.coerce(diff) if diff is not None else None
    context = build_context(summary, results, manifest, diff=diff, run_path=run_dir)
    paths = {"html": run.file(REPORT_HTML), "markdown": run.file(SUMMARY_MD), "junit": run.file(JUNIT)}
    if "html" in only:
        run.write_text(REPORT_HTML, render_html(context))
    if "markdown" in only:
        run.write_text(SUMMARY_MD, render_markdown(context))
    if "junit" in only:
        cases = manifest.options.get("junit_cases") or DEFAULT_JUNIT_CASES
        run.write_text(JUNIT, render_junit(summary, results, started_at=manifest.started_at, diff=diff, cases=cases))
    return paths
