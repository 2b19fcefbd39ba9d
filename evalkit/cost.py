"""Price catalog, per-request cost, cost per path, monthly projections and the misroute cost matrix.

Pure apart from reading a catalog file. Money is computed with ``decimal.Decimal`` from the
catalog's literal prices (USD per million tokens), so a projection rounds to the cent exactly
as a hand calculation does; JSON documents carry the exact values as numbers and rounded text
beside them.

A model slug with no price is *unknown cost*: its requests cost ``None``, totals that include
them are ``None`` (with the priced part given separately as ``known_usd``), and nothing
unpriced is ever counted as zero.

Only the router's own requests are costed here; the judge's calls are accounted in the judge
section of ``summary.json``, never mixed into these figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from evalkit.errors import InputError, PriceError
from evalkit.safe_yaml import load_yaml

MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
DEFAULT_MONTHLY_REQUESTS = 1_000_000
ROUTE_ONLY_NOTE = ("route-only: no model generated text, so completion tokens are zero and prompt tokens "
                   "are the local router's estimate; these costs are far below what the real models "
                   "would cost. Use --upstream SLUG=URL, a real router, or a token profile "
                   "(`evalkit cost --tokens` / --traffic) for real figures.")
JUDGE_NOTE = "router requests only; the judge's cost is kept apart (summary.json: judge)"


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens, with where the figure came from."""

    input: float
    output: float
    source: str = ""
    date: str = ""

    @property
    def input_exact(self) -> Decimal:
        # repr() of a float read from YAML is its shortest literal ("0.05"), so this is exact.
        return Decimal(repr(self.input))

    @property
    def output_exact(self) -> Decimal:
        return Decimal(repr(self.output))


# --- the catalog ---------------------------------------------------------------------------

def default_catalog_text() -> str:
    return resources.files("evalkit.data").joinpath("prices.yaml").read_text(encoding="utf-8")


def load_prices(path: str | Path | None = None) -> dict[str, Price]:
    """The price catalog: the packaged one, or ``path`` when given."""
    if path is None:
        return parse_prices(default_catalog_text(), source="evalkit/data/prices.yaml")
    text = read_yaml_text(path, PriceError, "price file", "evalkit/data/prices.yaml")
    return parse_prices(text, source=str(Path(path)))


def read_yaml_text(path: str | Path, error: type[InputError], kind: str, example: str) -> str:
    """The text of a user's YAML file, or ``error`` saying it is missing or not UTF-8."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{kind} not found", where=str(p), fix=f"give a YAML file like {example}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{kind} is not UTF-8 text", where=str(p), fix="save it as UTF-8 YAML") from None


def parse_prices(text: str, *, source: str) -> dict[str, Price]:
    try:
        data, _ = load_yaml(text, error=PriceError, where=source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PriceError(f"invalid YAML: {getattr(exc, 'problem', exc)}",
                         where=f"{source}:{mark.line + 1}" if mark else source, fix="fix the YAML syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceError("a price catalog needs a 'models' mapping", where=source,
                         fix="write models: {<slug>: {input: <USD/M>, output: <USD/M>}}")
    prices: dict[str, Price] = {}
    for slug, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise PriceError("a price entry must be a mapping", where=f"{source} at models.{slug}",
                             fix="write {input: 0.05, output: 0.45}")
        for key in ("input", "output"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PriceError(f"price '{key}' must be a non-negative number (USD per million tokens)",
                                 where=f"{source} at models.{slug}.{key}", got=repr(value),
                                 fix=f"e.g. {key}: 0.45")
        prices[str(slug)] = Price(float(entry["input"]), float(entry["output"]),
                                  str(entry.get("source", "")), str(entry.get("date", "")))
    return prices


def price_record(price: Price | None) -> dict[str, Any] | None:
    """A catalog entry as plain JSON (``None`` for an unpriced model)."""
    if price is None:
        return None
    return {"input": price.input, "output": price.output, "source": price.source, "date": price.date}


def prices_from_records(records: Mapping[str, Any]) -> dict[str, Price]:
    """Catalog entries recorded in a run's manifest; ``null`` entries stay unpriced."""
    out: dict[str, Price] = {}
    for slug, rec in records.items():
        if isinstance(rec, dict) and isinstance(rec.get("input"), (int, float)) and isinstance(rec.get("output"), (int, float)):
            out[str(slug)] = Price(float(rec["input"]), float(rec["output"]), str(rec.get("source", "")),
                                   str(rec.get("date", "")))
    return out


def run_prices(options: Mapping[str, Any] | None) -> dict[str, Price]:
    """The prices a run was priced with (recorded in ``manifest.options.prices``), or the packaged
    catalog for a run directory written before prices were recorded."""
    recorded = (options or {}).get("prices")
    if isinstance(recorded, dict):
        return prices_from_records(recorded)
    return load_prices()


# --- one request -----------------------------------------------------------------------------

def exact_request_cost(price: Price | None, prompt_tokens: float | int | Decimal | None,
                       completion_tokens: float | int | Decimal | None) -> Decimal | None:
    """USD for one request, exactly; ``None`` (unknown) when the model has no price or usage is missing."""
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (_dec(prompt_tokens) * price.input_exact + _dec(completion_tokens) * price.output_exact) / MILLION


def request_cost(price: Price | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """USD for one request (the ``cost_usd`` of ``results.jsonl``); ``None`` when unknown."""
    exact = exact_request_cost(price, prompt_tokens, completion_tokens)
    return None if exact is None else float(exact)


def _dec(value: float | int | Decimal) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(float(value)))


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def usd_text(value: Decimal | float | None, *, places: int | None = None) -> str:
    """``$2,850.30`` (cents, the default for amounts of a cent or more), ``$0.00004070``
    (``places`` decimals), or ``unknown``."""
    if value is None:
        return "unknown"
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    sign = "-" if d < 0 else ""
    d = abs(d)
    if places is None:
        places = 2 if d >= CENT or d == 0 else 6
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{sign}${q:,.{places}f}"


def pct_text(value: Decimal | None) -> str:
    if value is None:
        return "unknown"
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


# --- per path ---------------------------------------------------------------------------------

def _path_of(result: Any) -> str:
    return result.route if result.route is not None else "(missing)"


def result_cost(result: Any) -> Decimal | None:
    """The recorded cost of one stored result (its ``cost_usd``), as a Decimal; ``None`` if unknown."""
    return None if result.cost_usd is None else Decimal(repr(float(result.cost_usd)))


def cost_summary(results: Sequence[Any], *, labels: Sequence[str] | None = None,
                 prices: Mapping[str, Price] | None = None, traffic: Mapping[str, int] | None = None,
                 monthly_requests: int = DEFAULT_MONTHLY_REQUESTS) -> dict[str, Any]:
    """The ``cost`` section of ``summary.json``: totals, per-path totals, means, shares and token
    detail of the router's requests, plus the misroute cost matrix when ``labels`` are given.

    Per-request costs are the ``cost_usd`` of each result (priced when the case ran); ``prices``
    only prices the misroute matrix's estimated cells. Errors are left out (no usage). A case whose served model has no price (or whose usage is
    missing) has unknown cost: a total that includes one is ``None`` and ``known_usd`` holds the
    priced part; ``mean_usd`` is the mean over priced cases; ``share`` is a share of the priced cost.
    """
    scored = [r for r in results if r.status != "error"]
    per_path: dict[str, dict[str, Any]] = {}
    known_total = Decimal(0)
    unknown = 0
    unpriced: set[str] = set()
    for r in scored:
        path = _path_of(r)
        e = per_path.setdefault(path, {"n": 0, "known": Decimal(0), "n_unknown_cost": 0, "models": Counter(),
                                       "prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0,
                                       "n_reasoning_reported": 0, "n_usage": 0, "unpriced": set()})
        e["n"] += 1
        e["models"][r.served_model or "(unknown)"] += 1
        if r.prompt_tokens is not None and r.completion_tokens is not None:
            e["n_usage"] += 1
            e["prompt_tokens"] += r.prompt_tokens
            e["completion_tokens"] += r.completion_tokens
        if r.reasoning_tokens is not None:
            e["reasoning_tokens"] += r.reasoning_tokens
            e["n_reasoning_reported"] += 1
        cost = result_cost(r)
        if cost is None:
            e["n_unknown_cost"] += 1
            unknown += 1
            if r.served_model and r.prompt_tokens is not None and r.completion_tokens is not None:
                e["unpriced"].add(r.served_model)
        else:
            e["known"] += cost
            known_total += cost
    out_paths: dict[str, dict[str, Any]] = {}
    for path, e in per_path.items():
        known_n = e["n"] - e["n_unknown_cost"]
        unpriced |= e["unpriced"]
        n_usage = e["n_usage"]
        out_paths[path] = {
            "n": e["n"],
            "models": dict(e["models"].most_common()),
            "total_usd": _num(e["known"]) if e["n_unknown_cost"] == 0 else None,
            "known_usd": _num(e["known"]),
            "n_unknown_cost": e["n_unknown_cost"],
            "unpriced_models": sorted(e["unpriced"]),
            "mean_usd": _num(e["known"] / known_n) if known_n else None,
            "share": _num(e["known"] / known_total) if known_total else None,
            "tokens": {
                "prompt": e["prompt_tokens"],
                "completion": e["completion_tokens"],
                "hidden_reasoning": e["reasoning_tokens"],
                "visible_completion": e["completion_tokens"] - e["reasoning_tokens"],
                "n_with_usage": n_usage,
                "n_reasoning_reported": e["n_reasoning_reported"],
                "mean_prompt": e["prompt_tokens"] / n_usage if n_usage else None,
                "mean_completion": e["completion_tokens"] / n_usage if n_usage else None,
                "mean_hidden_reasoning": (e["reasoning_tokens"] / e["n_reasoning_reported"]
                                          if e["n_reasoning_reported"] else None),
            },
        }
    route_only = bool(scored) and all(r.route_only for r in scored)
    summary: dict[str, Any] = {
        "scope": "router",
        "note": JUDGE_NOTE,
        "total_usd": _num(known_total) if unknown == 0 else None,
        "known_usd": _num(known_total),
        "n_priced": len(scored) - unknown,
        "n_unknown_cost": unknown,
        "unpriced_models": sorted(unpriced),
        "mean_usd": _num(known_total / (len(scored) - unknown)) if len(scored) > unknown else None,
        "route_only": route_only,
        "route_only_note": ROUTE_ONLY_NOTE if route_only else None,
        "tokens": {
            "prompt": sum(p["tokens"]["prompt"] for p in out_paths.values()),
            "completion": sum(p["tokens"]["completion"] for p in out_paths.values()),
            "hidden_reasoning": sum(p["tokens"]["hidden_reasoning"] for p in out_paths.values()),
            "visible_completion": sum(p["tokens"]["visible_completion"] for p in out_paths.values()),
            "n_reasoning_reported": sum(p["tokens"]["n_reasoning_reported"] for p in out_paths.values()),
        },
        "per_path": out_paths,
    }
    if labels is not None:
        summary["misroute"] = misroute_matrix(results, labels=labels, prices=prices or {}, traffic=traffic,
                                              monthly_requests=monthly_requests)
    return summary


# --- the misroute cost matrix -------------------------------------------------------------------

def route_models(results: Iterable[Any]) -> dict[str, str]:
    """The model that served each route in a run (the most common served model of the route)."""
    counts: dict[str, Counter[str]] = {}
    for r in results:
        if r.status != "error" and r.served_model:
            counts.setdefault(_path_of(r), Counter())[r.served_model] += 1
    return {route: c.most_common(1)[0][0] for route, c in counts.items()}


def _mean_cost(rows: Sequence[Any]) -> Decimal | None:
    costs = [result_cost(r) for r in rows]
    known = [c for c in costs if c is not None]
    if not costs or len(known) < len(costs):
        return None
    return sum(known, Decimal(0)) / len(known)


def _mean_profile(rows: Sequence[Any]) -> tuple[Decimal, Decimal] | None:
    usable = [r for r in rows if r.prompt_tokens is not None and r.completion_tokens is not None]
    if not usable:
        return None
    n = Decimal(len(usable))
    return (Decimal(sum(r.prompt_tokens for r in usable)) / n,
            Decimal(sum(r.completion_tokens for r in usable)) / n)


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


def misroute_matrix(results: Sequence[Any], *, labels: Sequence[str], prices: Mapping[str, Price],
                    traffic: Mapping[str, int] | None = None,
                    monthly_requests: int = DEFAULT_MONTHLY_REQUESTS) -> dict[str, Any]:
    """Cost per request of every (expected task x route) cell against correct routing, and its
    monthly effect.

    - A cell with cases (*observed*) costs the mean of its own cases' ``cost_usd``: each case's
      tokens at the price of the model that served it.
    - An empty cell (*estimated*) prices the expected task's token profile (the mean tokens of its
      correctly routed cases, or of all its cases when none was) at the model that served the
      route in this run.
    - ``delta_usd`` is the cell's cost minus the cost of routing the task correctly (the
      diagonal cell); negative means the misroute is cheaper (and usually worse).
    - ``monthly_delta_usd`` = delta x the task's monthly requests x the cell's share of the row
      in this run, i.e. what this misroute adds to (or takes off) the monthly bill at the
      observed misroute rate. Monthly requests per task come from ``traffic``, or from the
      suite's own mix scaled to ``monthly_requests`` in whole requests (``suite_mix``).
    """
    from evalkit.metrics import confusion_columns

    scored = [r for r in results if r.status != "error"]
    labels = list(labels)
    columns = confusion_columns(labels, [_path_of(r) for r in scored])
    models = route_models(scored)
    by_cell: dict[tuple[str, str], list[Any]] = {}
    by_row: dict[str, list[Any]] = {}
    for r in scored:
        by_cell.setdefault((r.expected_route, _path_of(r)), []).append(r)
        by_row.setdefault(r.expected_route, []).append(r)
    basis = "traffic" if traffic is not None else "suite mix"
    mix = suite_mix({e: len(row) for e, row in by_row.items()}, monthly_requests)
    rows_out = []
    total_effect: Decimal | None = Decimal(0)
    for e in labels:
        row = by_row.get(e, [])
        row_n = len(row)
        diagonal = by_cell.get((e, e), [])
        correct = _mean_cost(diagonal) if diagonal else None
        profile = _mean_profile(diagonal) or _mean_profile(row)
        if correct is None and not diagonal and profile is not None and e in models:
            correct = exact_request_cost(prices.get(models[e]), *profile)
        # whole requests a month, as `evalkit cost` tables them (the suite's mix by largest remainder)
        monthly = Decimal((traffic if traffic is not None else mix).get(e, 0))
        cells = []
        row_effect: Decimal | None = Decimal(0)
        for col in columns:
            members = by_cell.get((e, col), [])
            count = len(members)
            model = models.get(col)
            if count:
                cost = _mean_cost(members)
                kind = "observed"
                cell_models = Counter(r.served_model or "(unknown)" for r in members)
                model = cell_models.most_common(1)[0][0]
            elif profile is not None and model is not None:
                cost = exact_request_cost(prices.get(model), *profile)
                kind = "estimated"
            else:
                cost, kind = None, "unknown"
            delta = cost - correct if cost is not None and correct is not None else None
            if col == e:
                delta = Decimal(0) if cost is not None else None
            rate = Decimal(count) / row_n if row_n else Decimal(0)
            effect = None if delta is None else delta * monthly * rate
            if col != e and count:
                if effect is None:
                    row_effect = None
                elif row_effect is not None:
                    row_effect += effect
            cells.append({
                "route": col, "count": count, "rate": _num(rate), "model": model, "basis": kind,
                "cost_usd": _num(cost), "delta_usd": _num(delta), "monthly_delta_usd": _num(effect),
                "text": _cell_text(e, col, count, row_n, model, models.get(e), delta, effect, monthly)
                if col != e and count else None,
            })
        if row_effect is None or total_effect is None:
            total_effect = None
        else:
            total_effect += row_effect
        rows_out.append({"expected": e, "n": row_n, "correct_usd": _num(correct), "model": models.get(e),
                         "monthly_requests": _num(monthly), "monthly_misroute_usd": _num(row_effect),
                         "cells": cells})
    return {
        "labels": labels,
        "columns": columns,
        "basis": basis,
        "monthly_requests": (sum(int(v) for v in traffic.values()) if traffic is not None else monthly_requests),
        "monthly_misroute_usd": _num(total_effect),
        "rows": rows_out,
    }


def _cell_text(expected: str, route: str, count: int, row_n: int, model: str | None, correct_model: str | None,
               delta: Decimal | None, effect: Decimal | None, monthly: Decimal) -> str:
    """One sentence for an observed misroute: what it saves or costs a request, and what it means."""
    share = f"{count} of {row_n} {expected} cases ({Decimal(100 * count) / row_n:.1f}%)"
    served = f"answered by {model or 'an unknown model'}"
    if correct_model and correct_model != model:
        served += f" instead of {correct_model}"
    if delta is None:
        return f"{expected} sent to {route}: unknown cost (unpriced model or missing usage); {served}; {share}"
    month = f"{usd_text(effect)} a month at {int(monthly):,} {expected} requests" if effect is not None else ""
    if delta < 0:
        head = f"{expected} sent to {route} saves {usd_text(-delta, places=4 if -delta >= CENT else 6)} a request but is {served}"
    elif delta > 0:
        head = f"{expected} sent to {route} costs {usd_text(delta, places=4 if delta >= CENT else 6)} more a request and is {served}"
    else:
        head = f"{expected} sent to {route} costs the same a request but is {served}"
    return f"{head}; {share}" + (f"; {month}" if month else "")


# --- monthly projection ------------------------------------------------------------------------

@dataclass
class TaskProfile:
    """One task of a projection: requests a month, mean tokens per request, the model serving it."""

    task: str
    requests: int
    prompt_tokens: Decimal | float | int
    completion_tokens: Decimal | float | int
    model: str
    reasoning_tokens: Decimal | float | int | None = None
    source: str = ""


def project(profiles: Sequence[TaskProfile], prices: Mapping[str, Price], *,
            compare: Sequence[str] = ()) -> dict[str, Any]:
    """Monthly cost of a traffic mix routed (each task on its own model) versus hard-coding each
    model of ``compare`` for every task (same tokens, that model's prices), with the savings.

    ``savings_pct`` = (single-model monthly - routed monthly) / single-model monthly x 100;
    negative when routing costs more.
    """
    tasks = []
    routed: Decimal | None = Decimal(0)
    unknown: set[str] = set()
    for p in profiles:
        price = prices.get(p.model)
        per_request = exact_request_cost(price, p.prompt_tokens, p.completion_tokens)
        monthly = per_request * p.requests if per_request is not None else None
        if price is None:
            unknown.add(p.model)
        if monthly is None or routed is None:
            routed = None
        else:
            routed += monthly
        tasks.append({
            "task": p.task, "requests": p.requests, "model": p.model,
            "prompt_tokens": _num(_dec(p.prompt_tokens)), "completion_tokens": _num(_dec(p.completion_tokens)),
            "reasoning_tokens": _num(_dec(p.reasoning_tokens)) if p.reasoning_tokens is not None else None,
            "per_request_usd": _num(per_request), "monthly_usd": _num(monthly),
            "per_request_text": usd_text(per_request, places=8), "monthly_text": usd_text(monthly, places=2),
            "source": p.source,
        })
    total_requests = sum(p.requests for p in profiles)
    singles = []
    for slug in compare:
        price = prices.get(slug)
        if price is None:
            unknown.add(slug)
        per_task = {}
        total: Decimal | None = Decimal(0)
        for p in profiles:
            cost = exact_request_cost(price, p.prompt_tokens, p.completion_tokens)
            monthly = cost * p.requests if cost is not None else None
            per_task[p.task] = {"per_request_usd": _num(cost), "monthly_usd": _num(monthly)}
            total = None if monthly is None or total is None else total + monthly
        savings = None
        if total is not None and routed is not None and total != 0:
            savings = (total - routed) / total * 100
        singles.append({
            "model": slug, "monthly_usd": _num(total), "monthly_text": usd_text(total, places=2),
            "savings_usd": _num(total - routed) if total is not None and routed is not None else None,
            "savings_pct": _num(savings), "savings_text": pct_text(savings), "per_task": per_task,
        })
    return {
        "tasks": tasks,
        "requests": total_requests,
        "routed": {"monthly_usd": _num(routed), "monthly_text": usd_text(routed, places=2),
                   "per_request_usd": _num(routed / total_requests) if routed is not None and total_requests else None},
        "single_model": singles,
        "unpriced_models": sorted(unknown),
    }


# --- traffic files and token profiles ----------------------------------------------------------

def _traffic_models():  # type: ignore[no-untyped-def]
    from pydantic import BaseModel, ConfigDict, Field

    class TrafficTask(BaseModel):
        model_config = ConfigDict(extra="forbid")

        requests: int | None = Field(default=None, ge=0)
        prompt_tokens: float | None = Field(default=None, ge=0)
        completion_tokens: float | None = Field(default=None, ge=0)
        reasoning_tokens: float | None = Field(default=None, ge=0)
        model: str | None = None

    class TrafficFile(BaseModel):
        model_config = ConfigDict(extra="forbid")

        schema_version: int = 1
        name: str | None = None
        description: str | None = None
        source: str | None = None
        compare: list[str] = Field(default_factory=list)
        tasks: dict[str, TrafficTask]

    return TrafficTask, TrafficFile


def parse_traffic(text: str, *, source: str) -> dict[str, Any]:
    """A traffic file: ``tasks: {<task>: {requests, prompt_tokens, completion_tokens, model}}``
    plus optional ``compare: [<slug>, ...]``. Returns ``{"tasks": {...}, "compare": [...], "name": ...}``."""
    from pydantic import ValidationError

    from evalkit.errors import InputError

    _, TrafficFile = _traffic_models()
    try:
        data, _ = load_yaml(text, error=InputError, where=source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(exc, 'problem', exc)}",
                         where=f"{source}:{mark.line + 1}" if mark else source, fix="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise InputError("a traffic file must be a mapping with a 'tasks' key", where=source,
                         fix="write tasks: {classify: {requests: 700000, prompt_tokens: 94, completion_tokens: 80, "
                             "model: openai-gpt-oss-20b}}")
    try:
        parsed = TrafficFile.model_validate(data)
    except ValidationError as exc:
        from evalkit.validation import problems_from, raise_problems

        fix = ("fields per task: requests (a month), prompt_tokens, completion_tokens, reasoning_tokens, model; "
               "see docs/cost.md")
        kinds = {k: ("a number, 0 or more", fix) for k in ("requests", "prompt_tokens", "completion_tokens",
                                                           "reasoning_tokens")}
        kinds["tasks"] = ("a mapping of task names to {requests, prompt_tokens, completion_tokens, model}", fix)
        raise_problems(problems_from(exc, model=TrafficFile, kinds=kinds, fields_word="key",
                                     where=lambda loc, path: f"{source} at {path}" if path else source),
                       InputError, source=source)
    return {"name": parsed.name, "compare": list(parsed.compare),
            "tasks": {k: v.model_dump() for k, v in parsed.tasks.items()}}


def load_traffic(path: str | Path) -> dict[str, Any]:
    from evalkit.errors import InputError

    text = read_yaml_text(path, InputError, "traffic file", "examples/tutorial-traffic.yaml")
    return parse_traffic(text, source=str(Path(path)))


def run_profiles(results: Sequence[Any], *, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Token profile of each expected task in a run: the mean tokens of its correctly routed cases
    (all its cases when none was), the model that served it, and its case count (the suite's mix)."""
    scored = [r for r in results if r.status != "error"]
    models = route_models(scored)
    out: dict[str, dict[str, Any]] = {}
    for task in labels:
        row = [r for r in scored if r.expected_route == task]
        if not row:
            continue
        diagonal = [r for r in row if _path_of(r) == task]
        profile = _mean_profile(diagonal) or _mean_profile(row)
        served = Counter(r.served_model for r in diagonal if r.served_model)
        reasoning = [r.reasoning_tokens for r in (diagonal or row) if r.reasoning_tokens is not None]
        out[task] = {
            "cases": len(row),
            "prompt_tokens": profile[0] if profile else None,
            "completion_tokens": profile[1] if profile else None,
            "reasoning_tokens": Decimal(sum(reasoning)) / len(reasoning) if reasoning else None,
            "model": served.most_common(1)[0][0] if served else models.get(task),
            "basis": "correctly routed cases" if _mean_profile(diagonal) else "all cases",
        }
    return out
