"""`evalkit report RUN`: re-render a run's summary.json, report.html and summary.md from its stored files."""

from __future__ import annotations

from pathlib import Path

import typer

from evalkit.commands.output import print_summary


def report(run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`.")) -> None:
    """Re-render a run's summary.json, report.html and summary.md from its stored files."""
    from evalkit.run import rerender

    run = rerender(run_dir)
    print_summary(run.summary, run.path, run.results)


def register(app: typer.Typer) -> None:
    app.command()(report)
