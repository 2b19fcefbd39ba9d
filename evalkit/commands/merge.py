"""`evalkit merge RUN... --out DIR`: join shard runs into one run directory that reports as if whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evalkit.cli import app, out, print_summary


@app.command()
def merge(
    runs: list[Path] = typer.Argument(..., help="Run directories to join: the shards of one `evalkit run --shard I/N` matrix."),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Parent folder of the merged run directory (<out>/<suite>/<run-id>/)."),
    gate: Optional[list[str]] = typer.Option(None, "--gate", help="Extra gate METRIC OP VALUE for the merged run (repeatable)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A stored run to compare the merged run with (as `evalkit run --baseline`)."),
    junit_cases: Optional[str] = typer.Option(None, "--junit-cases", help="junit.xml test cases besides the gates: regressed or all (default: as the shards ran, regressed unless they said all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the merged summary.json on stdout instead of the table."),
) -> None:
    """Join shard runs into one run (results, judge verdicts, router config), recompute its summary,
    reports and gates as if the suite had run whole. Exits 1 when a gate fails."""
    from evalkit.commands.compare import load_side
    from evalkit.commands.gate import finish_run
    from evalkit.gates import check_tasks, parse_gates
    from evalkit.pipeline import RunOutcome, finalize
    from evalkit.shard import merge_runs
    from evalkit.store import MANIFEST, ROUTER, ResultWriter, create_run_dir, load_run, new_run_id, write_json, write_text
    from evalkit.errors import UsageError
    from evalkit.report.junit import check_junit_cases

    if junit_cases is not None:
        check_junit_cases(junit_cases)
    loaded = [load_run(r) for r in runs]
    extra = parse_gates(gate or [], where="--gate")
    base_side = load_side(baseline) if baseline is not None else None
    run_id = new_run_id()
    manifest, results = merge_runs(loaded, run_id=run_id)
    check_tasks(extra, [*manifest.router.tasks, "fallback"], where="--gate")
    manifest.options["gates"] = [*(manifest.options.get("gates") or []), *(g.expr for g in extra)]
    if any(g.relative for g in parse_gates(manifest.options["gates"])) and base_side is None:
        raise UsageError("a gate compares with a baseline, but no baseline run was given", where="evalkit merge",
                         fix="pass --baseline RUN (a stored run directory)")
    if baseline is not None:
        manifest.options["baseline"] = str(baseline)
    if junit_cases is not None:
        manifest.options["junit_cases"] = junit_cases
    run_dir = create_run_dir(out_dir, manifest.suite.name, run_id)
    write_json(run_dir / MANIFEST, manifest.model_dump(mode="json"))
    router_copy = next((r.path / ROUTER for r in loaded if (r.path / ROUTER).is_file()), None)
    if router_copy is not None:
        write_json(run_dir / ROUTER, json.loads(router_copy.read_text(encoding="utf-8")))
    with ResultWriter(run_dir) as writer:
        for r in results:
            writer.write(r)
    judge_lines = [line for r in loaded if (r.path / "judge.jsonl").is_file()
                   for line in (r.path / "judge.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    if judge_lines:
        write_text(run_dir / "judge.jsonl", "\n".join(judge_lines) + "\n")
    summary = finalize(run_dir, manifest, results, baseline=base_side.summary if base_side else None)
    outcome = RunOutcome(run_dir=run_dir, manifest=manifest, results=results, summary=summary)
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        print_summary(summary, run_dir)
    raise typer.Exit(finish_run(outcome, baseline=base_side, as_json=as_json))
