"""Optional report sections, each a pure function of (summary, results, manifest) -> dict.

``build_context`` stores each under its key; the template includes ``sections/<key>.html.jinja2``
when the dict is non-empty. Sections: overlap, judge, cost, compare (filled by their modules).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from evalkit.records import CaseResult, Manifest

Section = Callable[[dict[str, Any], Sequence[CaseResult], Manifest], dict[str, Any]]


OVERLAP_EXAMPLES = 5


def overlap_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    """Task pairs by severity with their evidence, misrouted prompts and suggested edits."""
    pairs = summary.get("overlap") or []
    weak = summary.get("overlap_weak") or []
    if not pairs and not weak:
        return {}
    rows = []
    for p in pairs:
        ev = p.get("evidence", {})
        run = ev.get("run") or {}
        misrouted = run.get("misrouted") or []
        embed = ev.get("embedding_cosine")
        rows.append({
            "a": p["tasks"][0], "b": p["tasks"][1], "severity": p["severity"], "reason": p.get("reason", ""),
            "embed": "n/a" if embed is None else f"{embed:.2f}",
            "tfidf": f"{ev.get('tfidf_cosine', 0.0):.2f}",
            "shared": ", ".join(ev.get("shared_terms", [])),
            "confusion": (f"{run['a_to_b'] + run['b_to_a']} ({run['confusion_rate'] * 100:.1f}%)" if run else "n/a"),
            "a_to_b": run.get("a_to_b", 0), "b_to_a": run.get("b_to_a", 0),
            "flagged": p["severity"] in ("high", "medium"),
            "misrouted": [{"id": m["id"], "expected": m["expected_route"], "route": m["route"], "prompt": m["prompt"]}
                          for m in misrouted[:OVERLAP_EXAMPLES]],
            "n_misrouted": len(misrouted),
            "suggestions": list(p.get("suggestions", [])),
        })
    return {
        "pairs": rows,
        "flagged": [r for r in rows if r["flagged"]],
        "has_embedding": any(p.get("evidence", {}).get("embedding_cosine") is not None for p in pairs),
        "weak": [{"task": w["task"], "problems": [{"kind": k, "detail": w.get("details", {}).get(k, "")}
                                                   for k in w["problems"]]} for w in weak],
        "max_examples": OVERLAP_EXAMPLES,
    }


def judge_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


def cost_section(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest) -> dict[str, Any]:
    return {}


SECTIONS: dict[str, Section] = {
    "overlap": overlap_section,
    "judge": judge_section,
    "cost_detail": cost_section,
}
