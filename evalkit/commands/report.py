"""`evalkit report RUN`: re-render a run's summary.json, report.html and summary.md from its stored files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from evalkit.commands.console import err
from evalkit.commands.output import print_summary


def report(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory written by `evalkit run`.")) -> None:
    """Re-render a run's summary.json, report.html and summary.md from its stored files.

    When results.jsonl holds fewer results than the run planned (an interrupted run, or a
    truncated file), or ends in a torn line, a warning on stderr says so, as the report does.
    """
    from evalkit.run import rerender

    run = rerender(run_dir)
    print_summary(run.summary, run.path, run.results)
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
                        f"the figures cover the {run.summary.n_cases} that do. Finish it with "
                        f"`{finish_command(run.manifest, run.path)}`")
    if _torn(results):
        problems.append(f"{results} ends in a torn line (no newline, not a whole result): it was skipped")
    for problem in problems:
        err.print(f"[bold yellow]warning:[/bold yellow] {escape(problem)}", highlight=False)


def finish_command(manifest: Any, run_path: Path) -> str:
    """The ``evalkit run ... --resume RUN`` that finishes a stored run, from what its manifest
    recorded: the suite, the router config given with --router, the target with its base URL,
    model and route header, the shard and the baseline model (the options resume checks); shell-quoted."""
    import shlex

    from evalkit.targets import DEFAULT_ROUTE_HEADER

    target, options = manifest.target, manifest.options
    args = ["evalkit", "run", manifest.suite.path]
    if options.get("router"):
        args += ["--router", str(options["router"])]
    if target.kind != "local":
        args += ["--target", target.kind]
        if target.kind == "openai" and target.base_url:
            args += ["--base-url", target.base_url]
        if target.model and target.model != f"router:{target.router_name or manifest.router.name}":
            args += ["--model", target.model]
    if target.route_header and target.route_header != DEFAULT_ROUTE_HEADER:
        args += ["--route-header", target.route_header]
    if options.get("shard"):
        args += ["--shard", str(options["shard"])]
    if options.get("baseline_model"):
        args += ["--baseline-model", str(options["baseline_model"])]
    return shlex.join([*args, "--resume", str(run_path)])


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
