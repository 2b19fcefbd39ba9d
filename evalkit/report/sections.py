"""Optional report sections, each a pure function of (summary, results, manifest) -> dict.

``build_context`` stores each under its key; the template includes ``sections/<key>.html.jinja2``
when the dict is non-empty. Sections: overlap, judge, cost, compare (filled by their modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from evalkit.records import CaseResult, Manifest

if TYPE_CHECKING:
    from evalkit.judge.records import BaselineComparison, BaselinePath, JudgeSummary, QualityDelta, ScoreStats
    from evalkit.summary import Summary

Section = Callable[["Summary", Sequence[CaseResult], Manifest], dict[str, Any]]


OVERLAP_EXAMPLES = 5


def overlap_section(summary: Summary, results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    """Task pairs by severity with their evidence, misrouted prompts and suggested edits."""
    pairs = summary.overlap
    weak = summary.overlap_weak
    if not pairs and not weak:
        return {}
    rows = []
    for p in pairs:
        ev = p.evidence  # the evidence is passed through as overlap.py found it
        run = ev.get("run") or {}
        misrouted = run.get("misrouted") or []
        embed = ev.get("embedding_cosine")
        rows.append({
            "a": p.tasks[0], "b": p.tasks[1], "severity": p.severity, "reason": p.reason,
            "embed": "n/a" if embed is None else f"{embed:.2f}",
            "tfidf": f"{ev.get('tfidf_cosine', 0.0):.2f}",
            "shared": ", ".join(ev.get("shared_terms", [])),
            "confusion": (f"{run['a_to_b'] + run['b_to_a']} ({run['confusion_rate'] * 100:.1f}%)" if run else "n/a"),
            "a_to_b": run.get("a_to_b", 0), "b_to_a": run.get("b_to_a", 0),
            "flagged": p.severity in ("high", "medium"),
            "misrouted": [{"id": m["id"], "expected": m["expected_route"], "route": m["route"], "prompt": m["prompt"]}
                          for m in misrouted[:OVERLAP_EXAMPLES]],
            "n_misrouted": len(misrouted),
            "suggestions": list(p.suggestions),
        })
    return {
        "pairs": rows,
        "flagged": [r for r in rows if r["flagged"]],
        "has_embedding": any(p.evidence.get("embedding_cosine") is not None for p in pairs),
        "weak": [{"task": w.task, "problems": [{"kind": k, "detail": w.details.get(k, "")} for k in w.problems]}
                 for w in weak],
        "max_examples": OVERLAP_EXAMPLES,
        "omitted": int(summary.get("overlap_omitted") or 0),
    }


def _score(stats: ScoreStats | None) -> dict[str, str]:
    """Mean, interval and n of one judge figure, as text."""
    if stats is None or stats.mean is None:
        return {"mean": "n/a", "ci": "", "n": str(stats.n if stats else 0)}
    ci = stats.ci95
    return {"mean": f"{stats.mean:.2f}", "ci": f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "", "n": str(stats.n)}


def _signed(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:+.2f}"
    return f"{text} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else text


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.6f}"


def _signed_usd(value: float | None) -> str:
    return "unknown" if value is None else f"{'-' if value < 0 else '+'}${abs(value):,.6f}"


def judge_section(summary: Summary, results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    """The judge's figures for the report: per path, per cell, per tag, misroute harm, baseline
    comparison, calibration; or why judging was skipped and how to turn it on."""
    block = summary.judge
    if not block:
        if summary.route_only or not any((r.content or "").strip() for r in results):
            return {}
        return {"status": "not_requested", "model": "", "criteria": [], "baseline": None,
                "message": "Answers were not judged. To judge them without calling the router again: "
                           "evalkit judge <run directory> --judge MODEL (key in MODEL_ACCESS_KEY)."}
    section: dict[str, Any] = {"status": block.status, "model": block.model or "", "criteria": []}
    if not block.done:
        from evalkit.judge import ROUTE_ONLY_REASON

        then = "to get answers" if block.reason == ROUTE_ONLY_REASON else "to turn it on"
        section["message"] = (f"Judging skipped: {block.reason}; {then}: {block.fix}"
                              if block.status == "skipped" else "Answers were not judged.")
        section["baseline"] = _baseline_rows(block.baseline, [])
        return section
    criteria = block.criteria
    overall = block.overall
    counts = {"n": sum(overall[c].n for c in criteria), "n_unscored": sum(overall[c].n_unscored for c in criteria),
              "n_no_answer": sum(overall[c].n_no_answer for c in criteria),
              "n_error": sum(overall[c].n_error for c in criteria)}
    section.update(
        criteria=criteria,
        samples=block.samples,
        prompt_version=block.prompt_version,
        counts=counts,
        not_judged=block.not_judged,
        cost=_judge_cost(block),
        overall=[_score(overall[c]) for c in criteria],
        per_path=[{"path": path, "scores": [_score(v[c]) for c in criteria],
                   "unscored": sum(v[c].n_unscored + v[c].n_error for c in criteria),
                   "no_answer": sum(v[c].n_no_answer for c in criteria)}
                  for path, v in block.per_path.items()],
        per_cell=[{"expected": exp, "route": route, "correct": exp == route,
                   "scores": [_score(v[c]) for c in criteria]}
                  for exp, routes in block.per_cell.items() for route, v in routes.items()],
        per_tag=[{"tag": tag, "scores": [_score(v[c]) for c in criteria]} for tag, v in block.per_tag.items()],
        harm=[{"task": task, "criterion": c, "correct": _score(h.correct), "misrouted": _score(h.misrouted),
               "difference": _signed(h.difference, h.difference_ci95),
               "hurts": bool(h.difference_ci95 and h.difference_ci95[1] < 0),
               "by_route": ", ".join(f"{r}: {_score(st)['mean']} (n={st.n})" for r, st in h.by_route.items())}
              for task, entry in block.misroute_harm.items() for c, h in entry.items()],
        calibration=[{"criterion": c, "n": cal.n,
                      "kappa": "n/a" if cal.kappa_quadratic is None else f"{cal.kappa_quadratic:.3f}",
                      "exact": f"{cal.exact_agreement * 100:.1f}%", "within_one": f"{cal.within_one * 100:.1f}%",
                      "bias": f"{cal.mean_difference:+.2f}", "labels": cal.confusion.labels,
                      "rows": [{"human": lab, "cells": row} for lab, row in
                               zip(cal.confusion.labels, cal.confusion.matrix)]}
                     for c, cal in block.calibration.items()],
        agreement=[{"criterion": c, "n": a.n, "mean": "n/a" if a.mean is None else f"{a.mean * 100:.1f}%",
                    "unanimous": "n/a" if a.unanimous_share is None else f"{a.unanimous_share * 100:.1f}%"}
                   for c, a in block.agreement.items()] if block.samples > 1 else [],
        attention=[{**a.to_json(), "score": f"{a.score:g}"} for a in block.attention],
        problems=[p.to_json() for p in block.problems],
        n_problems=block.n_problems,
        baseline=_baseline_rows(block.baseline, criteria),
    )
    return section


def _judge_cost(block: JudgeSummary) -> dict[str, Any]:
    """The judge's own tokens and cost, in total and per kind of call that cost anything."""
    from evalkit.judge.records import JudgeCostSummary

    cost = block.cost or JudgeCostSummary()
    parts = (("router's answers", cost.router_answers), ("baseline's answers", cost.baseline_answers),
             ("pairwise", cost.pairwise))
    return {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
            "total": _usd(cost.total_usd), "unknown": cost.n_unknown_cost, "cached": cost.n_cached_samples,
            "parts": [{"name": name, "total": _usd(part.total_usd)} for name, part in parts
                      if part and (part.prompt_tokens or part.n_cached_samples)]}


def _baseline_rows(baseline: BaselineComparison | None, criteria: list[str]) -> dict[str, Any] | None:
    """Router against the fixed baseline model, per path: quality and cost differences."""
    if not baseline:
        return None

    def row(path: str, entry: BaselinePath) -> dict[str, Any]:
        q = entry.quality
        pw = entry.pairwise

        def worse(delta: QualityDelta) -> bool:
            """The router's answers are worse than the baseline's beyond doubt (the interval is below 0)."""
            return delta.difference_ci95 is not None and delta.difference_ci95[1] < 0

        return {
            "path": path, "n": entry.n,
            "quality": [{"router": "n/a" if q[c].router_mean is None else f"{q[c].router_mean:.2f}",
                         "baseline": "n/a" if q[c].baseline_mean is None else f"{q[c].baseline_mean:.2f}",
                         "difference": _signed(q[c].difference, q[c].difference_ci95),
                         "worse": worse(q[c]),
                         "n": q[c].n_pairs} for c in criteria],
            "router_cost": _usd(entry.cost.router_usd), "baseline_cost": _usd(entry.cost.baseline_usd),
            "cost_difference": _signed_usd(entry.cost.difference_usd),
            "pairwise": (f"{pw.router_wins} / {pw.ties} / {pw.baseline_wins}"
                         + (f" ({pw.unscored} unscored)" if pw.unscored else "")) if pw else "",
        }

    return {"model": baseline.model or "", "n_errors": baseline.n_errors,
            "rows": [row(p, e) for p, e in baseline.per_path.items()],
            "overall": row("all", baseline.overall),
            "has_pairwise": baseline.overall.pairwise is not None}


def _money(value: float | None) -> str:
    from evalkit.cost import usd_text

    if value is None:
        return "unknown"
    return usd_text(value, places=2 if abs(value) >= 0.01 else 6)


def _tok(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def cost_section(summary: Summary, results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    """Cost, tokens and latency per path, and the misroute cost matrix beside the confusion matrix."""
    cost = summary.cost
    if not cost.per_path:
        return {}
    latency = summary.latency.per_path
    money = _money
    notes = []
    if cost.route_only_note:
        notes.append(cost.route_only_note)
    if cost.n_unknown_cost:
        models = ", ".join(cost.unpriced_models) or "missing usage"
        notes.append(f"{cost.n_unknown_cost} cases have unknown cost ({models}): totals that include them are "
                     f"shown as unknown; the priced part is {money(cost.known_usd)}. Add prices with --prices FILE.")
    paths = []
    for path, v in cost.per_path.items():
        t = v.tokens
        lat = latency.get(path)
        ttft = lat.ttft if lat else None
        reasoning = (_tok(t.mean_hidden_reasoning) + f" ({t.n_reasoning_reported} of {t.n_with_usage})"
                     if t.n_reasoning_reported else "not reported")
        paths.append({
            "path": path, "n": v.n, "models": ", ".join(f"{m} ({c})" for m, c in v.models.items()),
            "total": money(v.total_usd) if v.total_usd is not None or not v.n_unknown_cost
            else f"unknown (priced part {money(v.known_usd)})",
            "mean": money(v.mean_usd), "share": "n/a" if v.share is None else f"{v.share * 100:.1f}%",
            "unknown": v.n_unknown_cost, "prompt": _tok(t.mean_prompt), "completion": _tok(t.mean_completion),
            "reasoning": reasoning,
            "visible": _tok((t.visible_completion / t.n_with_usage) if t.n_with_usage else None),
            "p50": _ms(lat.p50_ms if lat else None), "p95": _ms(lat.p95_ms if lat else None),
            "p99": _ms(lat.p99_ms if lat else None),
            "ttft": _ms(ttft.p50_ms) if ttft else "",
        })
    out: dict[str, Any] = {"notes": notes, "judge_note": cost.note, "paths": paths,
                           "streamed": summary.latency.streamed,
                           "total": money(cost.total_usd) if cost.total_usd is not None
                           else f"unknown (priced part {money(cost.known_usd)})"}
    if cost.misroute:
        out["misroute"] = _misroute_grid(cost.misroute)
    return out


# The misroute grid shows every cell up to this many (a 20-task router); beyond, a list of the
# cells with misrouted cases (a 200-task router has 40,200 cells, nearly all estimates).
MISROUTE_GRID_MAX_CELLS = 21 * 22
MISROUTE_LIST_MAX = 300


def _misroute_list(m: Any) -> dict[str, Any]:
    """A large misroute matrix as the cells with misrouted cases, largest monthly effect first, each
    beside its row's correct cost; and what was left out."""
    from decimal import Decimal

    money = _money
    entries = []
    for row in m.rows:
        for c in row.cells:
            if c.route == row.expected or not c.count:
                continue
            delta = c.delta_usd
            entries.append((abs(Decimal(repr(c.monthly_delta_usd or 0.0))), {
                "expected": row.expected, "model": row.model or "", "correct": money(row.correct_usd),
                "route": c.route, "route_model": c.model or "no model", "count": c.count, "n": row.n,
                "delta": "unknown" if delta is None else ("+" if delta > 0 else "") + money(delta),
                "tone": "unknown" if delta is None else "dearer" if delta > 0 else "cheaper" if delta < 0 else "same",
                "monthly": money(c.monthly_delta_usd)}))
    entries.sort(key=lambda e: e[0], reverse=True)
    n_cells = sum(len(row.cells) for row in m.rows)
    return {"entries": [e for _, e in entries[:MISROUTE_LIST_MAX]], "n_entries": len(entries),
            "n_cells": n_cells, "n_rows": len(m.rows), "n_columns": len(m.columns),
            "n_rows_with": len({e["expected"] for _, e in entries})}


def _misroute_grid(m: Any) -> dict[str, Any]:
    """The misroute cost matrix as a grid of cells (as a list of the cells with misroutes when it
    has more than MISROUTE_GRID_MAX_CELLS), and its largest monthly effects as sentences."""
    from decimal import Decimal

    money = _money
    grid = []
    sentences: list[tuple[Decimal, str]] = []
    sparse = sum(len(row.cells) for row in m.rows) > MISROUTE_GRID_MAX_CELLS
    for row in m.rows:
        if sparse:
            sentences.extend((abs(Decimal(repr(c.monthly_delta_usd or 0.0))), c.text) for c in row.cells if c.text)
            continue
        cells = []
        for c in row.cells:
            diagonal = c.route == row.expected
            delta = c.delta_usd
            if diagonal:
                tone, text = "diag", money(c.cost_usd)
            elif delta is None:
                tone, text = "unknown", "unknown" if c.count else "–"
            else:
                tone = "dearer" if delta > 0 else "cheaper" if delta < 0 else "same"
                text = ("+" if delta > 0 else "") + money(delta)
            cells.append({"text": text, "count": c.count, "tone": tone, "estimated": c.basis == "estimated",
                          "monthly": money(c.monthly_delta_usd) if c.count and not diagonal else "",
                          "title": (f"expected {row.expected}, routed {c.route} ({c.model or 'no model'}): "
                                    f"{money(c.cost_usd)} a request ({c.basis}), "
                                    f"{c.count} of {row.n} cases")})
            if c.text:
                sentences.append((abs(Decimal(repr(c.monthly_delta_usd or 0.0))), c.text))
        grid.append({"expected": row.expected, "correct": money(row.correct_usd), "model": row.model or "",
                     "monthly": money(row.monthly_misroute_usd), "cells": cells})
    sentences.sort(key=lambda x: x[0], reverse=True)
    basis = ("the given traffic" if m.basis == "traffic"
             else f"the suite's mix scaled to {m.monthly_requests:,} requests a month")
    return {"columns": m.columns, "rows": grid, "basis": basis, "monthly": money(m.monthly_misroute_usd),
            "sentences": [text for _, text in sentences[:12]], "n_sentences": len(sentences),
            "sparse": _misroute_list(m) if sparse else None}


SECTIONS: dict[str, Section] = {
    "overlap": overlap_section,
    "judge": judge_section,
    "cost_detail": cost_section,
}
