"""`evalkit overlap`: overlapping and weak task descriptions, before any traffic and after a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from evalkit.commands.console import err, out
from evalkit.commands.options import ranged
from evalkit.errors import UsageError

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}


def overlap(
    router_json: Path = typer.Argument(..., help="Router config (the DigitalOcean create body, router.json)."),
    suite: Optional[Path] = typer.Option(None, "--suite", help="Also count the suite's prompts that the local classifier places between two tasks."),
    run: Optional[Path] = typer.Option(None, "--run", help="Also use a run directory's confusion between each pair, with the misrouted prompts."),
    margin: Optional[float] = typer.Option(None, "--margin", callback=ranged("--margin"), help="Suite evidence: a prompt is between two tasks when its top two scores differ by less than this (default 0.05)."),
    tfidf_only: bool = typer.Option(False, "--tfidf-only", help="Skip the embedding model: TF-IDF and shared terms only (fast, no model load)."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 1 when a pair reaches this severity: high, medium or low."),
    examples: int = typer.Option(3, "--examples", callback=ranged("--examples"), help="Prompts shown per pair in the terminal output."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the suite's cached prompt embeddings (EVALKIT_CACHE_DIR, default ~/.cache/evalkit)."),
    show_all: bool = typer.Option(False, "--all", help="List every pair in the table (default: every medium and high pair, then the 20 strongest others)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"pairs\": [...], \"weak\": [...]} as JSON (every pair)."),
) -> None:
    """Flag overlapping and weak task descriptions of a router config, with evidence and suggested edits.

    Every pair of tasks gets a severity (high, medium, low, none) from the description similarity
    (embedding and TF-IDF cosine, shared terms), and with --suite / --run from prompts that fall
    between the two tasks and from measured confusion. Exit 0, or 1 with --fail-on when a pair
    reaches that severity; 2 on bad input.
    """
    from evalkit.overlap import SEVERITIES, analyse_router, severity_at_least
    from evalkit.router_config import load_router_config

    if fail_on is not None and fail_on not in SEVERITIES[1:]:
        raise UsageError(f"unknown severity '{fail_on}'", where="--fail-on", fix="use high, medium or low")
    if margin is not None and not 0 < margin < 2:
        raise UsageError("margin must be between 0 and 2 (a cosine difference)", where="--margin",
                         got=str(margin), fix="e.g. --margin 0.05")
    router = load_router_config(router_json)
    cases: list[Any] = []
    if suite is not None:
        from evalkit.suites import load_suite

        if tfidf_only:
            raise UsageError("--suite needs the embedding model", where="--tfidf-only",
                             fix="drop --tfidf-only, or drop --suite")
        cases = load_suite(suite, router_path=router_json).cases
    results = None
    if run is not None:
        from evalkit.store import MANIFEST, ROUTER, load_run

        stored = load_run(run)
        measured = stored.manifest.router
        if measured.hash != router.hash:
            raise UsageError(
                f"the run measured another router config: {run / MANIFEST} has config hash "
                f"{measured.hash} ({measured.name}), {router_json} has hash {router.hash} ({router.name})",
                where="--run",
                fix=f"give the config the run measured (a copy is {run / ROUTER}), "
                    f"or a run of {router_json}")
        results = stored.results
    if not as_json and not tfidf_only:
        err.print("[dim]loading the embedding model[/dim]")
    report = analyse_router(router, cases=cases, results=results, margin=margin, embeddings=not tfidf_only,
                     use_cache=not no_cache)
    if as_json:
        from evalkit.overlap import pair_static_rule

        document = report.to_dict()
        for p, d in zip(report.pairs, document["pairs"]):
            d["evidence"]["static_rule"] = pair_static_rule(p)
        out.print_json(json.dumps(document))
    else:
        print_report(report, examples=examples, show_all=show_all)
    if fail_on and any(severity_at_least(p.severity, fail_on) for p in report.pairs):
        raise typer.Exit(1)


def print_report(report: Any, *, examples: int, show_all: bool = False) -> None:
    """The pairs table (every medium and high pair, then at most SHOWN_BELOW_MEDIUM others unless
    ``show_all``, with a line saying how many more there are), then each flagged pair's reason,
    examples and suggestions, then the weak descriptions."""
    from collections import Counter

    from rich.table import Table

    from evalkit.overlap import SHOWN_BELOW_MEDIUM, bound_pairs, pair_static_rule

    shown, n_left = (report.pairs, 0) if show_all else bound_pairs(report.pairs, SHOWN_BELOW_MEDIUM)
    table = Table(title=f"task pairs ({', '.join(report.evidence_kinds)} evidence)", title_justify="left")
    for col in ("pair", "severity", "embed", "tfidf", "shared terms", "between", "confusion"):
        table.add_column(col, justify="right" if col in ("embed", "tfidf", "between", "confusion") else "left")
    for p in shown:
        ev = p.evidence
        suite, run = ev.get("suite"), ev.get("run")
        table.add_row(
            " / ".join(p.tasks), f"[{SEVERITY_STYLE[p.severity]}]{p.severity}[/]",
            "-" if ev["embedding_cosine"] is None else f"{ev['embedding_cosine']:.2f}",
            f"{ev['tfidf_cosine']:.2f}", ", ".join(ev["shared_terms"][:5]),
            "-" if suite is None else f"{suite['n_between']} ({suite['rate'] * 100:.0f}%)",
            "-" if run is None else f"{run['a_to_b'] + run['b_to_a']} ({run['confusion_rate'] * 100:.1f}%)",
        )
    out.print(table)
    if n_left:
        listed = {id(p) for p in shown}
        left = Counter(p.severity for p in report.pairs if id(p) not in listed)
        out.print(f"{n_left} more pairs not listed ({', '.join(f'{k} {left[k]}' for k in ('low', 'none') if left[k])}; "
                  f"every medium and high pair is listed): --all lists every pair, --json prints them all",
                  highlight=False, markup=False)
    if "embedding" not in report.evidence_kinds:
        out.print("no embedding (--tfidf-only): static severity from TF-IDF cosine and shared terms; 2+ shared "
                  "terms alone make a pair medium (the TF-IDF-only rule, docs/overlap-and-lint.md)",
                  highlight=False, markup=False)
    for p in report.pairs:
        if p.severity in ("none", "low"):
            continue
        out.print(f"\n[{SEVERITY_STYLE[p.severity]}]{p.severity}[/] {p.tasks[0]} / {p.tasks[1]}: {p.reason}",
                  highlight=False)
        out.print(f"  static rule: {pair_static_rule(p)}", highlight=False, markup=False)
        run = p.evidence.get("run")
        shown = (run or {}).get("misrouted") or (p.evidence.get("suite") or {}).get("examples") or []
        label = "misrouted" if run and run.get("misrouted") else "between"
        for ex in shown[:examples]:
            where = f"{ex['expected_route']}→{ex['route']}" if "route" in ex else f"expected {ex['expected_route']}"
            out.print(f"  {label} [{ex['id']}] {where}: {ex['prompt']}", highlight=False, markup=False)
        for s in p.suggestions:
            out.print(f"  - {s}", highlight=False, markup=False)
    if report.weak:
        out.print("\n[bold]weak descriptions[/bold]")
        for w in report.weak:
            for kind in w.problems:
                out.print(f"  {w.task}: {kind}: {w.details.get(kind, '')}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command()(overlap)
