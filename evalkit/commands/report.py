"""`evalkit report RUN`: re-render a run's summary.json, report.html and summary.md from its stored files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from evalkit.commands.console import err
from evalkit.commands.output import print_summary
from evalkit.finish import finish_hint


def report(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `evalkit run`.")) -> None:
    """Re-render a run's summary.json, report.html and summary.md from its stored files.

    When results.jsonl holds fewer results than the run planned (an interrupted run, or a
    truncated file), or ends in a torn line, a warning on stderr says so, as the report does.
    """
    from evalkit.run import rerender

    run = rerender(run_dir)
    print_summary(run)
    print_incomplete_warning(run)


def print_incomplete_warning(run: Any) -> None:
    """On stderr: cases without a result and a torn last line of results.jsonl (skipped when read)."""
    from rich.markup import escape

    from evalkit.store import RESULTS

    results = run.path / RESULTS
    info = run.summary.run
    problems = []
    if info.n_not_run:
        how = f"run stopped before it finished ({info.stopped})" if info.stopped else "incomplete run"
        problems.append(f"{how}: {info.n_not_run} of {info.n_planned} cases have no result in {results}; "
                        f"the figures cover the {run.summary.n_cases} that do. To complete it, "
                        f"{finish_hint(run.manifest, run.path)}")
    if _torn(results):
        problems.append(f"{results} ends in a torn line (no newline, not a whole result): it was skipped")
    for problem in problems:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(problem)}", highlight=False)


def _torn(path: Path) -> bool:
    """Whether the last line has no newline and is no JSON (``iter_results`` skips such a line)."""
    import json

    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - 1))
            if size == 0 or fh.read(1) == b"\n":
                return False
            fh.seek(0)
            last = fh.read().rsplit(b"\n", 1)[-1]
    except OSError:
        return False
    try:
        json.loads(last.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return True
    return False


def register(app: typer.Typer) -> None:
    app.command()(report)
