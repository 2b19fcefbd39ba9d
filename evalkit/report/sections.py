"""Optional report sections, each a pure function of (summary, results, manifest) -> dict.

``build_context`` stores each under its key; the template includes ``sections/<key>.html.jinja2``
when the dict is non-empty. Sections: overlap, judge, cost, compare (filled by their modules).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from evalkit.records import CaseResult, Manifest

Section = Callable[[dict[str, Any], Sequence[CaseResult], Manifest], dict[str, Any]]


def overlap_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


def judge_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


def cost_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    """Cost, tokens and latency per path, and the misroute cost matrix beside the confusion matrix."""
    from decimal import Decimal

    from evalkit.cost import usd_text

    cost = summary.get("cost") or {}
    if not cost.get("per_path"):
        return {}
    latency = (summary.get("latency") or {}).get("per_path") or {}

    def money(value: float | None) -> str:
        if value is None:
            return "unknown"
        return usd_text(value, places=2 if abs(value) >= 0.01 else 6)

    def tok(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f}"

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    notes = []
    if cost.get("route_only_note"):
        notes.append(cost["route_only_note"])
    if cost.get("n_unknown_cost"):
        models = ", ".join(cost.get("unpriced_models") or []) or "missing usage"
        notes.append(f"{cost['n_unknown_cost']} cases have unknown cost ({models}): totals that include them are "
                     f"shown as unknown; the priced part is {money(cost.get('known_usd'))}. Add prices with --prices FILE.")
    paths = []
    for path, v in cost["per_path"].items():
        t = v["tokens"]
        lat = latency.get(path) or {}
        ttft = lat.get("ttft") or {}
        reasoning = (tok(t["mean_hidden_reasoning"]) + f" ({t['n_reasoning_reported']} of {t['n_with_usage']})"
                     if t["n_reasoning_reported"] else "not reported")
        paths.append({
            "path": path, "n": v["n"], "models": ", ".join(f"{m} ({c})" for m, c in v["models"].items()),
            "total": money(v["total_usd"]) if v["total_usd"] is not None or not v["n_unknown_cost"]
            else f"unknown (priced part {money(v['known_usd'])})",
            "mean": money(v["mean_usd"]), "share": "n/a" if v["share"] is None else f"{v['share'] * 100:.1f}%",
            "unknown": v["n_unknown_cost"], "prompt": tok(t["mean_prompt"]), "completion": tok(t["mean_completion"]),
            "reasoning": reasoning,
            "visible": tok((t["visible_completion"] / t["n_with_usage"]) if t["n_with_usage"] else None),
            "p50": ms(lat.get("p50_ms")), "p95": ms(lat.get("p95_ms")), "p99": ms(lat.get("p99_ms")),
            "ttft": ms(ttft.get("p50_ms")) if ttft else "",
        })
    out: dict[str, Any] = {"notes": notes, "judge_note": cost.get("note", ""), "paths": paths,
                           "streamed": bool((summary.get("latency") or {}).get("streamed")),
                           "total": money(cost.get("total_usd")) if cost.get("total_usd") is not None
                           else f"unknown (priced part {money(cost.get('known_usd'))})"}
    m = cost.get("misroute")
    if m:
        grid = []
        sentences = []
        for row in m["rows"]:
            cells = []
            for c in row["cells"]:
                diagonal = c["route"] == row["expected"]
                delta = c["delta_usd"]
                if diagonal:
                    tone, text = "diag", money(c["cost_usd"])
                elif delta is None:
                    tone, text = "unknown", "unknown" if c["count"] else "–"
                else:
                    tone = "dearer" if delta > 0 else "cheaper" if delta < 0 else "same"
                    text = ("+" if delta > 0 else "") + money(delta)
                cells.append({"text": text, "count": c["count"], "tone": tone, "estimated": c["basis"] == "estimated",
                              "monthly": money(c["monthly_delta_usd"]) if c["count"] and not diagonal else "",
                              "title": (f"expected {row['expected']}, routed {c['route']} ({c['model'] or 'no model'}): "
                                        f"{money(c['cost_usd'])} a request ({c['basis']}), "
                                        f"{c['count']} of {row['n']} cases")})
                if c["text"]:
                    sentences.append((abs(Decimal(repr(c["monthly_delta_usd"] or 0.0))), c["text"]))
            grid.append({"expected": row["expected"], "correct": money(row["correct_usd"]), "model": row["model"] or "",
                         "monthly": money(row["monthly_misroute_usd"]), "cells": cells})
        sentences.sort(key=lambda x: x[0], reverse=True)
        basis = ("the given traffic" if m["basis"] == "traffic"
                 else f"the suite's mix scaled to {m['monthly_requests']:,} requests a month")
        out["misroute"] = {"columns": m["columns"], "rows": grid, "basis": basis,
                           "monthly": money(m["monthly_misroute_usd"]),
                           "sentences": [text for _, text in sentences[:12]], "n_sentences": len(sentences)}
    return out


SECTIONS: dict[str, Section] = {
    "overlap": overlap_section,
    "judge": judge_section,
    "cost_detail": cost_section,
}
