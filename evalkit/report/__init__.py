"""Reports: ``build_context`` (pure) turns a summary and results into a plain dict; jinja2
templates (autoescaped) render it as a self-contained HTML page and as markdown.
"""

from evalkit.report.context import build_context
from evalkit.report.render import render_html, render_markdown, write_reports

__all__ = ["build_context", "render_html", "render_markdown", "write_reports"]
