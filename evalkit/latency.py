"""Latency per path: percentiles of end-to-end latency and of time to first token (pure).

Percentiles are numpy's default (linear interpolation between closest ranks, the same as
``statistics.quantiles(..., method="inclusive")``). Errors are left out: a failed call's latency
says nothing about the route. Time to first token exists only for streamed runs
(``evalkit run --stream``).

``router_overhead`` pairs a run through the router with a run of the same suite sent straight
to a model (a *direct* run) by case id and reports what the router adds per request.
"""

from __future__ import annotations

from typing import Any, Sequence

PERCENTILES = (50, 95, 99)


def percentiles(values: Sequence[float]) -> dict[str, Any]:
    """n, p50/p95/p99 and mean of ``values`` (``None`` for each figure when empty)."""
    import numpy as np

    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    arr = np.asarray(values, dtype=float)
    out: dict[str, Any] = {"n": len(values)}
    for q in PERCENTILES:
        out[f"p{q}_ms"] = float(np.percentile(arr, q))
    out["mean_ms"] = float(arr.mean())
    return out


def _path(result: Any) -> str:
    return result.route if result.route is not None else "(missing)"


def latency_summary(results: Sequence[Any]) -> dict[str, Any]:
    """The ``latency`` section of ``summary.json``: overall and per-path percentiles of latency,
    and of time to first token when the run streamed."""
    answered = [r for r in results if r.status != "error" and r.latency_ms is not None]
    out = percentiles([r.latency_ms for r in answered])
    ttft = [r.ttft_ms for r in answered if r.ttft_ms is not None]
    out["streamed"] = bool(ttft)
    out["ttft"] = percentiles(ttft) if ttft else None
    per_path: dict[str, dict[str, Any]] = {}
    for path in sorted({_path(r) for r in answered}):
        rows = [r for r in answered if _path(r) == path]
        entry = percentiles([r.latency_ms for r in rows])
        path_ttft = [r.ttft_ms for r in rows if r.ttft_ms is not None]
        entry["ttft"] = percentiles(path_ttft) if path_ttft else None
        per_path[path] = entry
    out["per_path"] = per_path
    return out


def unstreamed_note(results: Sequence[Any], *, stream: bool) -> str | None:
    """Why a run that asked to stream (``--stream``) has no time to first token for some or all of
    its answers: the router answered route-only (no model generated text; the local router without
    an upstream answers with one JSON body, not a stream). None when nothing is missing."""
    if not stream:
        return None
    answered = [r for r in results if r.status != "error" and r.latency_ms is not None]
    plain = [r for r in answered if r.route_only and r.ttft_ms is None]
    if not plain:
        return None
    if len(plain) == len(answered):
        return ("--stream measured no time to first token: the router answered route-only (no upstream, no "
                "model generated text) without streaming, so TTFT is absent; give the router an upstream "
                "(--upstream SLUG=URL) to measure it")
    return (f"--stream: {len(plain)} of {len(answered)} answers were route-only (no model generated text) and "
            f"not streamed, so they have no time to first token; TTFT covers the other {len(answered) - len(plain)}")


def router_overhead(router: Sequence[Any], direct: Sequence[Any]) -> dict[str, Any]:
    """What the router adds per request, from two runs of the same cases: one through the router,
    one sent straight to a model.

    Cases are paired by id; pairs where either side failed or has no latency are left out and
    counted. ``latency`` holds percentiles of (router - direct) per pair; ``router`` and
    ``direct`` the percentiles of each side over the same pairs; ``ttft`` the same for time to
    first token when both runs streamed; ``cost`` the router's and the direct run's total
    ``cost_usd`` over the pairs (``None`` when any pair has unknown cost on that side).
    """
    direct_by_id = {r.id: r for r in direct}
    pairs = []
    unpaired = 0
    for r in router:
        d = direct_by_id.get(r.id)
        if (d is None or r.status == "error" or d.status == "error"
                or r.latency_ms is None or d.latency_ms is None):
            unpaired += 1
            continue
        pairs.append((r, d))
    unpaired += sum(1 for d in direct if d.id not in {r.id for r in router})
    diffs = [r.latency_ms - d.latency_ms for r, d in pairs]
    ttft_pairs = [(r.ttft_ms, d.ttft_ms) for r, d in pairs if r.ttft_ms is not None and d.ttft_ms is not None]

    def total(side: list[Any]) -> float | None:
        costs = [x.cost_usd for x in side]
        return None if any(c is None for c in costs) else float(sum(costs))

    router_cost = total([r for r, _ in pairs])
    direct_cost = total([d for _, d in pairs])
    return {
        "n_pairs": len(pairs),
        "n_unpaired": unpaired,
        "latency": percentiles(diffs),
        "router": percentiles([r.latency_ms for r, _ in pairs]),
        "direct": percentiles([d.latency_ms for _, d in pairs]),
        "ttft": percentiles([a - b for a, b in ttft_pairs]) if ttft_pairs else None,
        "cost": {"router_usd": router_cost, "direct_usd": direct_cost,
                 "difference_usd": (router_cost - direct_cost
                                    if router_cost is not None and direct_cost is not None else None)},
    }
