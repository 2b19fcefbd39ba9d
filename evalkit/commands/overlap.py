"""`evalkit overlap`: overlapping and weak task descriptions, before any traffic and after a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from evalkit.commands.console import err, out
from evalkit.errors import UsageError

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}


def cache_dir() -> Path:
    """Where prompt embeddings are kept between runs (``EVALKIT_CACHE_DIR``, else ~/.cache/evalkit)."""
    import os

    root = os.environ.get("EVALKIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "evalkit")
    return Path(root) / "embeddings"


def encode_prompts(prompts: list[str], *, use_cache: bool) -> Any:
    """Embeddings of a suite's prompts, cached by the model and the exact prompt list.

    The description-improvement loop re-runs ``evalkit overlap`` on the same suite with new
    descriptions; only the descriptions need encoding again. A damaged cache file is ignored.
    """
    import hashlib
    import os

    import numpy as np

    from evalkit.embedding import MODEL_ID, encode

    digest = hashlib.sha256("\x00".join([MODEL_ID, *prompts]).encode("utf-8")).hexdigest()[:32]
    path = cache_dir() / f"{digest}.npy"
    if use_cache and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape[0] == len(prompts):
                return cached
        except (OSError, ValueError):
            pass
    vectors = encode(prompts)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")  # one per process: concurrent runs never share it
            np.save(tmp, vectors, allow_pickle=False)
            tmp.replace(path)
        except OSError:
            pass  # a read-only home is not a reason to fail the analysis
    return vectors


def analyse(router: Any, *, cases: Sequence[Any] = (), results: Sequence[Any] | None = None,
            margin: float | None = None, embeddings: bool = True, use_cache: bool = True) -> Any:
    """Encode the descriptions and the suite's prompts (each once), then run the pure analysis."""
    from evalkit.overlap import AMBIGUOUS_MARGIN, find_overlaps

    vectors = scores = None
    threshold = 0.0
    if embeddings:
        from evalkit.embedding import encode
        from evalkit.emulator.classifier import DEFAULT_THRESHOLD

        threshold = DEFAULT_THRESHOLD
        vectors = encode([t.description for t in router.tasks])
        if cases:
            scores = encode_prompts([c.user_text for c in cases], use_cache=use_cache) @ vectors.T
    return find_overlaps(router, description_vectors=vectors, cases=list(cases) if scores is not None else (),
                         prompt_scores=scores, results=results,
                         margin=AMBIGUOUS_MARGIN if margin is None else margin, threshold=threshold)


def overlap(
    router_json: Path = typer.Argument(..., help="Router config (the DigitalOcean create body, router.json)."),
    suite: Optional[Path] = typer.Option(None, "--suite", help="Also count the suite's prompts that the local classifier places between two tasks."),
    run: Optional[Path] = typer.Option(None, "--run", help="Also use a run directory's confusion between each pair, with the misrouted prompts."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Suite evidence: a prompt is between two tasks when its top two scores differ by less than this (default 0.05)."),
    tfidf_only: bool = typer.Option(False, "--tfidf-only", help="Skip the embedding model: TF-IDF and shared terms only (fast, no model load)."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Exit 1 when a pair reaches this severity: high, medium or low."),
    examples: int = typer.Option(3, "--examples", help="Prompts shown per pair in the terminal output."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the suite's cached prompt embeddings (EVALKIT_CACHE_DIR, default ~/.cache/evalkit)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"pairs\": [...], \"weak\": [...]} as JSON."),
) -> None:
    """Flag overlapping and weak task descriptions of a router config, with evidence and suggested edits.

    Every pair of tasks gets a severity (high, medium, low, none) from the description similarity
    (embedding and TF-IDF cosine, shared terms), and with --suite / --run from prompts that fall
    between the two tasks and from measured confusion. Exit 0, or 1 with --fail-on when a pair
    reaches that severity; 2 on bad input.
    """
    from evalkit.overlap import SEVERITIES, severity_at_least
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
        from evalkit.store import load_run

        stored = load_run(run)
        results = stored.results
        if stored.manifest.router.tasks != router.task_names and not as_json:
            err.print(f"[yellow]note:[/yellow] the run measured tasks {', '.join(stored.manifest.router.tasks)}; "
                      f"{router_json} has {', '.join(router.task_names)}", highlight=False)
    if not as_json and not tfidf_only:
        err.print("[dim]loading the embedding model[/dim]")
    report = analyse(router, cases=cases, results=results, margin=margin, embeddings=not tfidf_only,
                     use_cache=not no_cache)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        print_report(report, examples=examples)
    if fail_on and any(severity_at_least(p.severity, fail_on) for p in report.pairs):
        raise typer.Exit(1)


def print_report(report: Any, *, examples: int) -> None:
    from rich.table import Table

    table = Table(title=f"task pairs ({', '.join(report.evidence_kinds)} evidence)", title_justify="left")
    for col in ("pair", "severity", "embed", "tfidf", "shared terms", "between", "confusion"):
        table.add_column(col, justify="right" if col in ("embed", "tfidf", "between", "confusion") else "left")
    for p in report.pairs:
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
    for p in report.pairs:
        if p.severity in ("none", "low"):
            continue
        out.print(f"\n[{SEVERITY_STYLE[p.severity]}]{p.severity}[/] {p.tasks[0]} / {p.tasks[1]}: {p.reason}",
                  highlight=False)
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
