"""`evalkit gate RUN EXPR...`: evaluate gate expressions on a stored run (exit 1 when one fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evalkit.commands.output import print_gates, print_json


def gate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`."),
    exprs: list[str] = typer.Argument(..., help="Gate expressions METRIC OP VALUE, e.g. 'accuracy >= 0.90' 'recall[reasoning] >= 0.85'."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run for relative gates such as 'accuracy >= baseline - 0.02'."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Evaluate the gates on the cases that have a result even when the run is incomplete (by default every gate of an incomplete run fails)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"passed\": ..., \"gates\": [...]} on stdout."),
) -> None:
    """Evaluate gate expressions on a stored run without changing it. Exits 1 when a gate fails
    (every gate fails on an incomplete run, unless --allow-incomplete)."""
    from evalkit.api import gate as evaluate
    from evalkit.gates import parse_gates
    from evalkit.store import load_run

    parse_gates(exprs, where="evalkit gate")
    report = evaluate(load_run(run_dir), exprs, baseline=load_run(baseline) if baseline is not None else None,
                      allow_incomplete=allow_incomplete)
    report.run = str(run_dir)
    if as_json:
        print_json(report)
    else:
        print_gates(report.gates)
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    app.command()(gate)
