"""`evalkit merge RUN... --out DIR`: join shard runs into one run directory that reports as if whole."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rich.markup import escape

from evalkit.commands.console import err
from evalkit.commands.output import print_json, print_run_verdict, print_summary


def merge(
    runs: list[Path] = typer.Argument(..., help="Run directories to join: the shards of one `evalkit run --shard I/N` matrix."),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Parent folder of the merged run directory (<out>/<suite>/<run-id>/)."),
    gate: Optional[list[str]] = typer.Option(None, "--gate", help="Extra gate METRIC OP VALUE for the merged run (repeatable)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run to compare the merged run with (as `evalkit run --baseline`)."),
    junit_cases: Optional[str] = typer.Option(None, "--junit-cases", help="junit.xml test cases besides the gates: regressed or all (default: as the shards ran, regressed unless they said all)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Merge even when a shard run is missing or lacks cases, and evaluate the gates on the cases there are (by default a missing shard is refused and every gate of an incomplete merged run fails)."),
    as_json: bool = typer.Option(False, "--json", help="Print the merged summary.json on stdout instead of the table."),
) -> None:
    """Join shard runs into one run (results, the judge's grades, the baseline model's answers and
    grades, pairwise verdicts, router config), recompute its summary, reports and gates as if the
    suite had run whole. Exits 1 when a gate fails."""
    from evalkit.run import merge_shards

    merged = merge_shards(runs, out=out_dir, gates=gate or [], junit_cases=junit_cases, baseline=baseline,
                          allow_incomplete=allow_incomplete)
    absent = merged.manifest.options.get("missing_shards")
    if absent:
        err.print(f"[bold yellow]warning:[/bold yellow] shard(s) {escape(', '.join(absent))} missing: "
                  f"{merged.summary.run.n_not_run} of {merged.summary.run.n_planned} cases were not run; "
                  "the gates are evaluated on the rest (--allow-incomplete)", highlight=False)
    if as_json:
        print_json(merged.summary)
    else:
        print_summary(merged)
    raise typer.Exit(print_run_verdict(merged, as_json=as_json))


def register(app: typer.Typer) -> None:
    app.command()(merge)
