"""`evalkit cost`: monthly projections, misroute cost, router overhead (computed by ``evalkit.projection``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from evalkit.commands.console import out
from evalkit.commands.options import ranged
from evalkit.errors import UsageError


def _pairs(values: list[str] | None, option: str, example: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values or []:
        task, sep, rest = value.partition("=")
        if not sep or not task.strip() or not rest.strip():
            raise UsageError(f"{option} takes TASK=VALUE", where=option, got=value, fix=f"e.g. {option} {example}")
        result[task.strip()] = rest.strip()
    return result


def cost(
    traffic: Optional[Path] = typer.Option(None, "--traffic", metavar="FILE", help="Traffic file (YAML): per task requests a month, prompt_tokens, completion_tokens, model; optional compare list."),
    run_dir: Optional[Path] = typer.Option(None, "--run", metavar="RUN", help="A run directory: token profiles and served models per task, its suite mix, and its misroute cost matrix."),
    requests: Optional[list[str]] = typer.Option(None, "--requests", metavar="TASK=N", help="TASK=N requests a month (repeatable)."),
    tokens: Optional[list[str]] = typer.Option(None, "--tokens", metavar="TASK=IN/OUT", help="TASK=PROMPT/COMPLETION mean tokens per request (repeatable)."),
    model: Optional[list[str]] = typer.Option(None, "--model", metavar="TASK=SLUG", help="TASK=SLUG the model serving the task (repeatable)."),
    compare: Optional[list[str]] = typer.Option(None, "--compare", metavar="SLUG", help="Model slug to compare against as the only model for every task (repeatable; default: the traffic file's list, else every priced model)."),
    monthly_requests: int = typer.Option(1_000_000, "--monthly-requests", callback=ranged("--monthly-requests"), metavar="N", help="Monthly volume for a run's suite mix when no requests are given."),
    prices: Optional[Path] = typer.Option(None, "--prices", metavar="FILE", help="Price catalog YAML replacing the packaged one."),
    overhead: Optional[tuple[Path, Path]] = typer.Option(None, "--overhead", metavar="RUN_ROUTER RUN_DIRECT", help="RUN_ROUTER RUN_DIRECT: the router's latency and cost overhead against a direct-model run of the same suite."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Per-request and monthly cost: routed versus hard-coding one model, misroute cost, router overhead.

    Each task's figures come from the flags, else the traffic file, else the run. Unpriced
    models are reported as unknown cost, never zero. See docs/cost.md.

    \b
    Examples:
      evalkit cost --traffic examples/tutorial-traffic.yaml
      evalkit cost --run reports/saas-support/<run-id> --traffic my-traffic.yaml
      evalkit cost --requests qa=250000 --tokens qa=24/292 --model qa=anthropic-claude-4.6-sonnet
      evalkit cost --overhead RUN_ROUTER RUN_DIRECT
    """
    from evalkit.projection import cost_report

    result = cost_report(traffic=traffic, run_dir=run_dir, requests=_pairs(requests, "--requests", "classify=700000"),
                         tokens=_pairs(tokens, "--tokens", "classify=94/80"),
                         models=_pairs(model, "--model", "classify=openai-gpt-oss-20b"), compare=compare,
                         monthly_requests=monthly_requests, prices=prices, overhead=overhead)
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    print_cost(result)


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Plain aligned text (never truncated, whatever the terminal width)."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def print_cost(result: dict[str, Any]) -> None:
    from evalkit.cost import usd_text

    lines: list[str] = [f"warning: {w}" for w in result.get("warnings", [])]
    if result.get("savings_withheld"):
        lines.append(f"warning: {result['savings_withheld']}")
    if lines:
        lines.append("")
    if "tasks" in result:
        rows = [[t["task"], f"{t['requests']:,}", t["model"],
                 f"{_tok(t['prompt_tokens'])} / {_tok(t['completion_tokens'])}",
                 t["per_request_text"], t["monthly_text"]] for t in result["tasks"]]
        rows.append(["routed", f"{result['requests']:,}", "", "", "", result["routed"]["monthly_text"]])
        lines += ["Monthly cost, routed (each task on its own model)", "",
                  *_table(["task", "requests/month", "model", "tokens in / out", "per request", "per month"],
                          rows, {1, 3, 4, 5}), ""]
        rows = []
        for s in result["single_model"]:
            saves = s["savings_text"]
            if s["savings_pct"] is not None and s["savings_pct"] < 0:
                saves = f"{saves} (routing costs more)"
            rows.append([s["model"], s["monthly_text"], saves])
        if result.get("savings_withheld"):
            rows = [row[:2] for row in rows]
        lines += ["Hard-coding one model for every task", "",
                  *_table(["model", "per month", "routing saves"][:len(rows[0]) if rows else 3], rows, {1, 2}), ""]
    if "misroute" in result:
        m = result["misroute"]
        basis = ("the given traffic" if m["basis"] == "traffic"
                 else f"the suite's mix at {m['monthly_requests']:,} requests a month")
        lines.append(f"Misroute cost of run {result.get('run')} at {basis}: "
                     f"{usd_text(m['monthly_misroute_usd'], places=2)} a month")
        lines += [f"  - {cell['text']}" for row in m["rows"] for cell in row["cells"] if cell["text"]]
        lines.append("")
    if "overhead" in result:
        o = result["overhead"]
        lat = o["latency"]
        c = o["cost"]
        lines += [f"Router overhead over {o['n_pairs']} paired cases ({o['n_unpaired']} unpaired): "
                  f"p50 {_ms(lat['p50_ms'])}, p95 {_ms(lat['p95_ms'])}, p99 {_ms(lat['p99_ms'])} "
                  f"(router p50 {_ms(o['router']['p50_ms'])}, direct p50 {_ms(o['direct']['p50_ms'])})",
                  f"Cost over the pairs: router {usd_text(c['router_usd'])}, direct {usd_text(c['direct_usd'])}", ""]
    lines += [f"note: {note}" for note in result.get("notes", [])]
    out.print("\n".join(lines).rstrip(), markup=False, highlight=False)


def _tok(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def register(app: typer.Typer) -> None:
    app.command()(cost)
