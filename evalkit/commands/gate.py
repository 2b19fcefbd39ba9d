"""`evalkit gate RUN EXPR...`: evaluate gate expressions on a stored run (exit 1 when one fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from evalkit.cli import app, err, out


def print_gates(verdicts: list[dict[str, Any]]) -> None:
    for v in verdicts:
        style = "green" if v["passed"] else "red"
        out.print(f"[{style}]{'PASS' if v['passed'] else 'FAIL'}[/{style}] {escape(v['message'])}", highlight=False)


@app.command()
def gate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `evalkit run`."),
    exprs: list[str] = typer.Argument(..., help="Gate expressions METRIC OP VALUE, e.g. 'accuracy >= 0.90' 'recall[reasoning] >= 0.85'."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run for relative gates such as 'accuracy >= baseline - 0.02'."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"passed\": ..., \"gates\": [...]} on stdout."),
) -> None:
    """Evaluate gate expressions on a stored run without changing it. Exits 1 when a gate fails."""
    from evalkit.gates import evaluate_gates, parse_gates
    from evalkit.store import load_run
    from evalkit.summary import build_summary

    gates = parse_gates(exprs, where="evalkit gate")
    run = load_run(run_dir)
    summary = run.summary or build_summary(run.manifest, run.results)
    base_summary = None
    if baseline is not None:
        base = load_run(baseline)
        base_summary = base.summary or build_summary(base.manifest, base.results)
    verdicts = [v.model_dump() for v in evaluate_gates(gates, summary, baseline=base_summary)]
    passed = all(v["passed"] for v in verdicts)
    if as_json:
        out.print_json(json.dumps({"run": str(run_dir), "passed": passed, "gates": verdicts}))
    else:
        print_gates(verdicts)
    raise typer.Exit(0 if passed else 1)


def finish_run(outcome: Any, *, baseline: Any | None, as_json: bool) -> int:
    """After ``evalkit run`` / ``evalkit merge``: the gates' verdicts, the comparison with a baseline
    run (written into the run directory as compare.html / diff.json / compare.md, and into its
    summary.md and junit.xml), the step summary; the exit code."""
    from evalkit.cli import append_step_summary

    failed = False
    verdicts = outcome.summary.get("gates") or []
    if verdicts and not as_json:
        print_gates(verdicts)
    failed = any(not v["passed"] for v in verdicts)
    if outcome.manifest.options.get("shard") and outcome.manifest.options.get("gates") and not as_json:
        err.print(f"shard {outcome.manifest.options['shard']}: gates are evaluated when the shards are merged "
                  "(evalkit merge)", highlight=False)
    if baseline is not None:
        from evalkit.commands.compare import load_side, print_compare, write_compare
        from evalkit.comparison import compare_runs
        from evalkit.report import write_reports

        diff = compare_runs(baseline, load_side(outcome.run_dir))
        paths = write_compare(diff, outcome.run_dir)
        # summary.md shows the comparison; junit.xml fails the cases the change broke.
        write_reports(outcome.run_dir, outcome.summary, outcome.results, outcome.manifest, diff=diff,
                      only=("markdown", "junit"))
        if not as_json:
            print_compare(diff, paths)
        failed = failed or diff["verdict"]["failed"]
    append_step_summary(outcome.run_dir / "summary.md")
    return 1 if failed else 0
