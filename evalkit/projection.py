"""What ``evalkit cost`` computes: monthly projections of a task mix (routed against hard-coding one
model), a run's misroute cost, the router's overhead against a direct run.

Where each figure of a task comes from, explicit beats derived: ``--requests/--tokens/--model``
flags, then the ``--traffic`` file, then the ``--run`` (its token profiles, its served models and
its suite mix scaled to ``--monthly-requests``). The arithmetic is ``evalkit.cost``'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from evalkit.errors import UsageError


def cost_report(*, traffic: str | Path | None = None, run_dir: str | Path | None = None,
                requests: dict[str, str] | None = None, tokens: dict[str, str] | None = None,
                models: dict[str, str] | None = None, compare: Sequence[str] | None = None,
                monthly_requests: int = 1_000_000, prices: str | Path | None = None,
                overhead: tuple[str | Path, str | Path] | None = None) -> dict[str, Any]:
    """The document ``evalkit cost --json`` prints: ``tasks``/``routed``/``single_model`` (the
    projection), ``misroute`` (with a run), ``overhead`` (with two runs), ``prices``, ``warnings``
    (the route-only warning, printed first), ``savings_withheld`` (why the savings figures are
    ``None``, when a task's completion tokens are a run's zeros) and ``notes``.
    ``requests``/``tokens``/``models`` map a task to the flag's text (``700000``, ``94/80``, a slug)."""
    from evalkit.cost import ROUTE_ONLY_NOTE, load_prices, load_traffic, misroute_matrix, price_record, project, run_profiles
    from evalkit.latency import router_overhead
    from evalkit.store import load_run

    if monthly_requests < 0:
        raise UsageError("--monthly-requests must be positive", where="--monthly-requests", got=str(monthly_requests),
                         fix="e.g. --monthly-requests 1000000")
    catalog = load_prices(prices)
    traffic_data = load_traffic(traffic) if traffic else None
    flags = (requests or {}, tokens or {}, models or {})
    result: dict[str, Any] = {"prices": {}, "notes": []}
    run = load_run(run_dir) if run_dir is not None else None
    run_info = run_profiles(run.results, labels=[*run.manifest.router.tasks, "fallback"]) if run is not None else None
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
        result["warnings"] = []
        if run is not None and bool(run.results) and all(r.route_only for r in run.results if r.status != "error"):
            result["warnings"].append(ROUTE_ONLY_NOTE)
        # A run's zero completion tokens (route-only: nothing generated) make every savings figure
        # meaningless (the routed cost counts prompts only): withhold them rather than print them.
        zero = [p.task for p in profiles if "tokens: run" in p.source and not p.completion_tokens]
        result["savings_withheld"] = None
        if zero:
            result["savings_withheld"] = (
                "no savings figures: the completion tokens of " + ", ".join(zero) + " come from the run, "
                "where they are zero (nothing was generated); give --tokens TASK=PROMPT/COMPLETION or a "
                "--traffic file with token counts")
            for single in result["single_model"]:
                single.update(savings_usd=None, savings_pct=None, savings_text="n/a")
        if projection["unpriced_models"]:
            result["notes"].append("unknown cost (no price in the catalog): " + ", ".join(projection["unpriced_models"])
                                   + "; add them with --prices FILE")
        if run is not None:
            explicit = bool(traffic_data) or bool(flags[0])
            mix = {p.task: p.requests for p in profiles} if explicit else None
            result["misroute"] = misroute_matrix(run.results, labels=[*run.manifest.router.tasks, "fallback"],
                                                 prices=catalog, traffic=mix, monthly_requests=monthly_requests)
            result["run"] = str(run.path)
    if overhead is not None:
        router_run, direct_run = load_run(overhead[0]), load_run(overhead[1])
        result["overhead"] = router_overhead(router_run.results, direct_run.results)
        result["overhead"].update(router_run=str(router_run.path), direct_run=str(direct_run.path))
    return result


def _count(text: str, option: str, task: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError("requests must be a whole number of requests a month, 0 or more", where=f"{option} {task}=",
                         got=text, fix=f"e.g. {option} {task}=700000")
    return value


def _tokens(text: str, task: str) -> tuple[float, float]:
    left, sep, right = text.partition("/")
    try:
        prompt, completion = float(left.replace(",", "")), float(right.replace(",", ""))
    except ValueError:
        prompt = completion = -1.0
    if not sep or not (math.isfinite(prompt) and math.isfinite(completion)) or prompt < 0 or completion < 0:
        raise UsageError("tokens must be PROMPT/COMPLETION (mean tokens per request), two finite numbers, 0 or more",
                         where=f"--tokens {task}=",
                         got=text, fix=f"e.g. --tokens {task}=94/80")
    return prompt, completion


def build_profiles(*, traffic: dict[str, Any] | None, run_info: dict[str, dict[str, Any]] | None,
                   requests: dict[str, str], tokens: dict[str, str], models: dict[str, str],
                   monthly_requests: int) -> tuple[list[Any], list[str]]:
    """Task profiles from flags, a traffic file and a run (explicit beats derived), and notes."""
    from evalkit.cost import TaskProfile, suite_mix

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
