"""`evalkit cost` (registered on evalkit.cli.app): monthly projections, misroute cost, router overhead.

Where each figure of a task comes from, explicit beats derived: ``--requests/--tokens/--model``
flags, then the ``--traffic`` file, then the ``--run`` (its token profiles, its served models and
its suite mix scaled to ``--monthly-requests``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import typer

from evalkit.commands.console import err, out  # noqa: F401
from evalkit.errors import UsageError


def _pairs(values: list[str] | None, option: str, example: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values or []:
        task, sep, rest = value.partition("=")
        if not sep or not task.strip() or not rest.strip():
            raise UsageError(f"{option} takes TASK=VALUE", where=option, got=value, fix=f"e.g. {option} {example}")
        result[task.strip()] = rest.strip()
    return result


def _count(text: str, option: str, task: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError("requests must be a whole number of requests a month", where=f"{option} {task}=",
                         got=text, fix=f"e.g. {option} {task}=700000")
    return value


def _tokens(text: str, task: str) -> tuple[float, float]:
    left, sep, right = text.partition("/")
    try:
        prompt, completion = float(left.replace(",", "")), float(right.replace(",", ""))
    except ValueError:
        prompt = completion = -1.0
    if not sep or prompt < 0 or completion < 0:
        raise UsageError("tokens must be PROMPT/COMPLETION (mean tokens per request)", where=f"--tokens {task}=",
                         got=text, fix=f"e.g. --tokens {task}=94/80")
    return prompt, completion


def suite_mix(cases: dict[str, int], monthly_requests: int) -> dict[str, int]:
    """``monthly_requests`` split in proportion to the suite's cases per task (largest remainder,
    so the parts add up to the whole)."""
    total = sum(cases.values())
    if not total:
        return {}
    exact = {t: Decimal(monthly_requests) * n / total for t, n in cases.items()}
    parts = {t: int(v) for t, v in exact.items()}
    rest = monthly_requests - sum(parts.values())
    for t in sorted(exact, key=lambda t: exact[t] - parts[t], reverse=True)[:rest]:
        parts[t] += 1
    return parts


def build_profiles(*, traffic: dict[str, Any] | None, run_info: dict[str, dict[str, Any]] | None,
                   requests: dict[str, str], tokens: dict[str, str], models: dict[str, str],
                   monthly_requests: int) -> tuple[list[Any], list[str]]:
    """Task profiles from flags, a traffic file and a run (explicit beats derived), and notes."""
    from evalkit.cost import TaskProfile

    notes: list[str] = []
    file_tasks = (traffic or {}).get("tasks", {})
    # The traffic (file or --requests) decides which tasks are projected; without one, the run's tasks.
    traffic_tasks = list(dict.fromkeys([*file_tasks, *requests]))
    tasks = traffic_tasks or list((run_info or {}).keys()) or list(dict.fromkeys([*tokens, *models]))
    if not tasks:
        raise UsageError("nothing to project: no tasks given", where="evalkit cost",
                         fix="give --traffic FILE, --run RUN, or --requests/--tokens/--model per task "
                             "(see `evalkit cost --help` and docs/cost.md)")
    mix = suite_mix({k: v["cases"] for k, v in (run_info or {}).items()}, monthly_requests)
    profiles = []
    for task in tasks:
        f = file_tasks.get(task, {})
        r = (run_info or {}).get(task, {})
        sources = []
        if task in requests:
            n_req = _count(requests[task], "--requests", task)
            sources.append("requests: --requests")
        elif f.get("requests") is not None:
            n_req = int(f["requests"])
            sources.append("requests: traffic file")
        elif task in mix:
            n_req = mix[task]
            sources.append(f"requests: run's suite mix at {monthly_requests:,} a month")
        else:
            raise UsageError(f"no requests a month for task '{task}'", where="evalkit cost",
                             fix=f"give --requests {task}=N or requests in the traffic file")
        if task in tokens:
            prompt, completion = _tokens(tokens[task], task)
            reasoning = None
            sources.append("tokens: --tokens")
        elif f.get("prompt_tokens") is not None and f.get("completion_tokens") is not None:
            prompt, completion, reasoning = f["prompt_tokens"], f["completion_tokens"], f.get("reasoning_tokens")
            sources.append("tokens: traffic file")
        elif r and r.get("prompt_tokens") is not None:
            prompt, completion, reasoning = r["prompt_tokens"], r["completion_tokens"], r.get("reasoning_tokens")
            sources.append(f"tokens: run ({r['basis']})")
        else:
            raise UsageError(f"no token profile for task '{task}'", where="evalkit cost",
                             fix=f"give --tokens {task}=PROMPT/COMPLETION, prompt_tokens and completion_tokens "
                                 "in the traffic file, or --run RUN")
        model = models.get(task) or f.get("model") or (r.get("model") if r else None)
        if not model:
            raise UsageError(f"no model for task '{task}'", where="evalkit cost",
                             fix=f"give --model {task}=SLUG, model in the traffic file, or --run RUN")
        sources.append("model: " + ("--model" if task in models else "traffic file" if f.get("model") else "run"))
        profiles.append(TaskProfile(task=task, requests=n_req, prompt_tokens=prompt, completion_tokens=completion,
                                    model=model, reasoning_tokens=reasoning, source="; ".join(sources)))
    return profiles, notes


def cost(
    traffic: Optional[Path] = typer.Option(None, "--traffic", metavar="FILE", help="Traffic file (YAML): per task requests a month, prompt_tokens, completion_tokens, model; optional compare list."),
    run_dir: Optional[Path] = typer.Option(None, "--run", metavar="RUN", help="A run directory: token profiles and served models per task, its suite mix, and its misroute cost matrix."),
    requests: Optional[list[str]] = typer.Option(None, "--requests", metavar="TASK=N", help="TASK=N requests a month (repeatable)."),
    tokens: Optional[list[str]] = typer.Option(None, "--tokens", metavar="TASK=IN/OUT", help="TASK=PROMPT/COMPLETION mean tokens per request (repeatable)."),
    model: Optional[list[str]] = typer.Option(None, "--model", metavar="TASK=SLUG", help="TASK=SLUG the model serving the task (repeatable)."),
    compare: Optional[list[str]] = typer.Option(None, "--compare", metavar="SLUG", help="Model slug to compare against as the only model for every task (repeatable; default: the traffic file's list, else every priced model)."),
    monthly_requests: int = typer.Option(1_000_000, "--monthly-requests", metavar="N", help="Monthly volume for a run's suite mix when no requests are given."),
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
    from evalkit.cost import ROUTE_ONLY_NOTE, load_prices, load_traffic, misroute_matrix, price_record, project, run_profiles
    from evalkit.latency import router_overhead
    from evalkit.store import load_run

    if monthly_requests < 0:
        raise UsageError("--monthly-requests must be positive", where="--monthly-requests", got=str(monthly_requests),
                         fix="e.g. --monthly-requests 1000000")
    catalog = load_prices(prices)
    traffic_data = load_traffic(traffic) if traffic else None
    flags = (_pairs(requests, "--requests", "classify=700000"), _pairs(tokens, "--tokens", "classify=94/80"),
             _pairs(model, "--model", "classify=openai-gpt-oss-20b"))
    result: dict[str, Any] = {"prices": {}, "notes": []}
    run = None
    run_info = None
    if run_dir is not None:
        run = load_run(run_dir)
        labels = [*run.manifest.router.tasks, "fallback"]
        run_info = run_profiles(run.results, labels=labels)
    wants_projection = traffic_data is not None or run is not None or any(flags)
    if not wants_projection and overhead is None:
        raise UsageError("nothing to do", where="evalkit cost",
                         fix="give --traffic FILE, --run RUN, --requests/--tokens/--model per task, or --overhead "
                             "RUN_ROUTER RUN_DIRECT (e.g. evalkit cost --traffic examples/tutorial-traffic.yaml)")
    if wants_projection:
        profiles, notes = build_profiles(traffic=traffic_data, run_info=run_info, requests=flags[0], tokens=flags[1],
                                         models=flags[2], monthly_requests=monthly_requests)
        slugs = list(compare or (traffic_data or {}).get("compare") or catalog.keys())
        projection = project(profiles, catalog, compare=slugs)
        result.update(projection)
        result["notes"].extend(notes)
        used = dict.fromkeys([*(p.model for p in profiles), *slugs])
        result["prices"] = {slug: price_record(catalog.get(slug)) for slug in used}
        if run is not None and bool(run.results) and all(r.route_only for r in run.results if r.status != "error"):
            result["notes"].append(ROUTE_ONLY_NOTE)
        if projection["unpriced_models"]:
            result["notes"].append("unknown cost (no price in the catalog): " + ", ".join(projection["unpriced_models"])
                                   + "; add them with --prices FILE")
        if run is not None:
            labels = [*run.manifest.router.tasks, "fallback"]
            explicit = bool(traffic_data) or bool(flags[0])
            mix = {p.task: p.requests for p in profiles} if explicit else None
            result["misroute"] = misroute_matrix(run.results, labels=labels, prices=catalog, traffic=mix,
                                                 monthly_requests=monthly_requests)
            result["run"] = str(run.path)
    if overhead is not None:
        router_run, direct_run = load_run(overhead[0]), load_run(overhead[1])
        result["overhead"] = router_overhead(router_run.results, direct_run.results)
        result["overhead"].update(router_run=str(router_run.path), direct_run=str(direct_run.path))
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

    lines: list[str] = []
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
        lines += ["Hard-coding one model for every task", "",
                  *_table(["model", "per month", "routing saves"], rows, {1, 2}), ""]
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
