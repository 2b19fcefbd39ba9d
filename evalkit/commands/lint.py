"""`evalkit lint`: the router config's schema and limits, plus warnings (evalkit/lint.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evalkit.commands.console import out

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def lint(
    router_json: Path = typer.Argument(..., help="Router config (the DigitalOcean create body, router.json)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when there is any warning."),
    prices: Optional[Path] = typer.Option(None, "--prices", help="Price catalog YAML for the fallback cost check (default: the packaged one)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"file\", \"valid\", \"findings\": [...]} as JSON."),
) -> None:
    """Validate a router config against the DigitalOcean schema and limits, then warn about
    short, duplicate or near-identical descriptions, a fallback model costlier than the pools
    it backs, and task names that are not slugs.

    Exit 0: valid (warnings allowed); 1: --strict and at least one warning; 2: schema error.
    """
    from rich.markup import escape

    from evalkit.cost import load_prices
    from evalkit.errors import ConfigError
    from evalkit.lint import Finding, lint_router
    from evalkit.router_config import load_router_config

    catalog = load_prices(prices)
    try:
        config = load_router_config(router_json)
    except ConfigError as exc:
        if not as_json:
            raise
        problems = getattr(exc, "problems", None) or [exc]  # every schema problem, or the one error
        schema = [Finding(level="error", code="schema", where=p.where or str(router_json),
                          message=p.what + (f" (found: {p.got})" if p.got else ""), fix=p.fix).model_dump()
                  for p in problems]
        out.print_json(json.dumps({"file": str(router_json), "valid": False, "findings": schema,
                                   "n_errors": len(schema), "n_warnings": 0}))
        raise typer.Exit(exc.exit_code) from None
    findings = lint_router(config, catalog)
    warnings = [f for f in findings if f.level == "warning"]
    if as_json:
        out.print_json(json.dumps({"file": str(router_json), "valid": True,
                                   "findings": [f.model_dump() for f in findings],
                                   "n_errors": 0, "n_warnings": len(warnings)}))
    else:
        for f in findings:
            out.print(f"[{LEVEL_STYLE[f.level]}]{f.level}[/] " + escape(f"{router_json} at {f.where}: {f.message} [{f.code}]"),
                      highlight=False)
            if f.fix and f.level != "info":
                out.print(f"  fix: {f.fix}", highlight=False, markup=False)
        tasks = ", ".join(config.task_names)
        out.print(f"{router_json}: valid ({len(config.tasks)} tasks: {tasks}); {len(warnings)} warning(s)",
                  highlight=False, markup=False)
    if strict and warnings:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(lint)
