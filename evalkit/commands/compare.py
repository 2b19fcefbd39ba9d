"""`evalkit compare RUN_A RUN_B`: paired comparison of two stored runs, exit by regression gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from evalkit.cli import app, err, out


def load_side(run_dir: str | Path) -> Any:
    """A stored run as ``compare.RunSide``: results, summary, router.json copy and judge.jsonl if present."""
    from evalkit.comparison import RunSide
    from evalkit.errors import ConfigError
    from evalkit.router_config import parse_router_config
    from evalkit.store import ROUTER, load_run
    from evalkit.summary import build_summary

    run = load_run(run_dir)
    m = run.manifest
    router = None
    rpath = run.path / ROUTER
    if rpath.is_file():
        try:
            router = parse_router_config(rpath.read_text(encoding="utf-8"), source=str(rpath))
        except (ConfigError, UnicodeDecodeError):
            router = None
    judge = None
    jpath = run.path / "judge.jsonl"
    if jpath.is_file():
        judge = []
        for line in jpath.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted judge run
            if isinstance(rec, dict):
                judge.append(rec)
    summary = run.summary if run.summary is not None else build_summary(m, run.results)
    return RunSide(run_id=m.run_id, results=run.results, labels=[*m.router.tasks, "fallback"], suite=m.suite.name,
                   suite_hash=m.suite.hash, router_hash=m.router.hash, target=m.target.kind, path=str(run.path),
                   summary=summary, router=router, judge=judge)


def write_compare(diff: dict[str, Any], folder: Path, *, junit_results: Any = None,
                  junit_cases: str = "regressed") -> dict[str, Path]:
    """diff.json, compare.html and compare.md into ``folder`` (each written atomically); with
    ``junit_results`` (run B's results) also junit.xml: the checks, the regressed and fixed cases."""
    from evalkit.report.compare import render_compare_html, render_compare_markdown
    from evalkit.store import DIFF, write_json, write_text

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / DIFF, "html": folder / "compare.html", "markdown": folder / "compare.md"}
    write_json(paths["json"], diff)
    write_text(paths["html"], render_compare_html(diff))
    write_text(paths["markdown"], render_compare_markdown(diff))
    if junit_results is not None:
        from evalkit.report.junit import render_compare_junit

        paths["junit"] = folder / "junit.xml"
        write_text(paths["junit"], render_compare_junit(diff, junit_results, cases=junit_cases))
    return paths


def print_compare(diff: dict[str, Any], paths: dict[str, Path] | None = None, *, limit: int = 20) -> None:
    """The short terminal account of a comparison."""
    from rich.table import Table

    for w in diff["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    a, b = diff["a"], diff["b"]
    table = Table(title=f"compare {a['run_id']} (A) -> {b['run_id']} (B) · {diff['n_matched']} matched cases",
                  title_justify="left")
    for col in ("metric", "A", "B", "delta", "95% CI"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in diff["metrics"]:
        if "[" in m["metric"] and not m["delta"]:
            continue  # unchanged per-task figures stay in diff.json
        ci = m["ci95"]
        table.add_row(escape(m["metric"]), _f(m["a"]), _f(m["b"]), "n/a" if m["delta"] is None else f"{m['delta']:+.3f}",
                      f"{ci[0]:+.3f} to {ci[1]:+.3f}" if ci else "")
    out.print(table)
    mc = diff["mcnemar"]
    out.print(f"McNemar exact: {mc['regressed']} regressed, {mc['fixed']} fixed of {mc['n']} cases, "
              f"p={mc['p_value']:.4g}" + (" (significant)" if mc["significant"] else " (not significant)"))
    for kind in ("regressed", "fixed"):
        rows = diff[kind]
        if rows:
            out.print(f"{kind} ({len(rows)}):")
            for r in rows[:limit]:
                prompt = " ".join(r["prompt"].split())
                out.print(f"  {r['id']}: expected {r['expected_route']}, {r['route_a']} -> {r['route_b']}: "
                          f"{prompt[:100]}", highlight=False, markup=False)
            if len(rows) > limit:
                out.print(f"  ...and {len(rows) - limit} more in diff.json")
    cfg = diff.get("config")
    if cfg and cfg["changed"]:
        changed = [t["task"] for t in cfg["tasks"]]
        parts = [f"tasks changed: {', '.join(changed)}"] if changed else []
        if cfg["tasks_added"]:
            parts.append("added: " + ", ".join(t["task"] for t in cfg["tasks_added"]))
        if cfg["tasks_removed"]:
            parts.append("removed: " + ", ".join(t["task"] for t in cfg["tasks_removed"]))
        if cfg["fallback_models"]:
            parts.append("fallback models changed")
        out.print(f"router config {cfg['a_hash']} -> {cfg['b_hash']}: {'; '.join(parts) or 'other fields changed'}")
    elif cfg:
        out.print("router config: unchanged")
    for c in diff["checks"]:
        out.print(("[green]PASS[/green] " if c["passed"] else "[red]FAIL[/red] ") + escape(c["message"]), highlight=False)
    if paths:
        out.print(f"report: {paths['html']}")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def default_folder(diff: dict[str, Any]) -> Path:
    return Path("reports") / "compare" / f"{diff['a']['run_id']}-vs-{diff['b']['run_id']}"


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="The baseline run directory (before)."),
    run_b: Path = typer.Argument(..., help="The candidate run directory (after)."),
    max_drop: Optional[list[str]] = typer.Option(None, "--max-drop", help="Fail when METRIC worsens by more than DROP, e.g. accuracy=0.02 or recall[reasoning]=5% (repeatable)."),
    fail_on_significant_regression: bool = typer.Option(True, "--fail-on-significant-regression/--no-fail-on-significant-regression", help="Fail when McNemar's exact test finds significantly more regressed than fixed cases (default on)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for compare.html, diff.json and compare.md (default reports/compare/<A>-vs-<B>/)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of McNemar's test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap (same seed, same intervals)."),
    n_boot: int = typer.Option(2000, "--bootstrap", help="Bootstrap resamples for the delta intervals."),
    junit_cases: str = typer.Option("regressed", "--junit-cases", help="junit.xml test cases: regressed (the cases B broke fail, the ones it fixed pass) or all (every case B misroutes fails)."),
    as_json: bool = typer.Option(False, "--json", help="Print diff.json on stdout instead of the table."),
) -> None:
    """Compare two runs case by case: metric deltas with paired bootstrap intervals, McNemar's exact
    test, fixed and regressed cases, judge and cost deltas, the router config diff.

    Writes diff.json, compare.html, compare.md and junit.xml. Exits 1 when a --max-drop check
    fails or (by default) routing got significantly worse.
    """
    from evalkit.comparison import compare_runs, parse_max_drop
    from evalkit.errors import UsageError
    from evalkit.report.junit import check_junit_cases

    check_junit_cases(junit_cases)
    if not 0 < alpha < 1:
        raise UsageError("alpha must be between 0 and 1", where="--alpha", got=str(alpha), fix="e.g. --alpha 0.05")
    if n_boot < 0:
        raise UsageError("--bootstrap must be zero or more", where="--bootstrap", got=str(n_boot), fix="e.g. --bootstrap 2000")
    side_a, side_b = load_side(run_a), load_side(run_b)
    drops = parse_max_drop(max_drop, labels=list(dict.fromkeys(side_a.labels + side_b.labels)))
    diff = compare_runs(side_a, side_b, seed=seed, n_boot=n_boot, alpha=alpha, max_drop=drops,
                        fail_on_significant_regression=fail_on_significant_regression)
    folder = out_dir or default_folder(diff)
    paths = write_compare(diff, folder, junit_results=side_b.results, junit_cases=junit_cases)
    if as_json:
        out.print_json(json.dumps(diff, default=str))
    else:
        print_compare(diff, paths)
    from evalkit.cli import append_step_summary

    append_step_summary(paths["markdown"])
    raise typer.Exit(1 if diff["verdict"]["failed"] else 0)
