"""The report context: every number and label a template prints, computed here (pure)."""

from __future__ import annotations

from typing import Any, Sequence

from evalkit.records import FALLBACK, CaseResult, Manifest
from evalkit.report.sections import SECTIONS

MAX_LISTED = 300  # rows per page of a case list in the HTML report (misrouted cases, errors)
MAX_PAGES = 10    # pages listed; past MAX_LISTED * MAX_PAGES rows the report says so and results.jsonl has them all
CELL = 64
HEADER_W = 130
HEADER_H = 110


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.6f}" if value < 0.01 else f"${value:,.4f}"


def pages(rows: list[dict[str, Any]], *, size: int = MAX_LISTED, limit: int = MAX_PAGES) -> list[dict[str, Any]]:
    """A long case list cut into pages of ``size`` rows (at most ``limit`` pages): the first is shown,
    the others fold away, so a 100,000-case run still gives a report a browser opens quickly."""
    out = []
    for start in range(0, min(len(rows), size * limit), size):
        chunk = rows[start:start + size]
        out.append({"label": f"{start + 1}-{start + len(chunk)}", "rows": chunk})
    return out


def heatmap(confusion: dict[str, Any]) -> dict[str, Any]:
    """Inline-SVG geometry of the confusion heatmap: counts and row percentages per cell."""
    rows, cols, matrix = confusion["labels"], confusion["columns"], confusion["matrix"]
    cells = []
    for i, row_label in enumerate(rows):
        total = sum(matrix[i])
        for j, col_label in enumerate(cols):
            count = matrix[i][j]
            share = count / total if total else 0.0
            diagonal = row_label == col_label
            if count == 0:
                fill = "#f6f7f9"
            elif diagonal:
                fill = f"rgba(22, 163, 74, {0.15 + 0.85 * share:.3f})"
            else:
                fill = f"rgba(220, 38, 38, {0.15 + 0.85 * share:.3f})"
            cells.append({
                "x": HEADER_W + j * CELL, "y": HEADER_H + i * CELL, "w": CELL - 2, "h": CELL - 2,
                "fill": fill, "count": count, "pct": f"{share * 100:.0f}%" if total else "",
                "dark": share > 0.55 and count > 0,
                "title": f"expected {row_label}, routed {col_label}: {count} of {total} ({share * 100:.1f}%)",
            })
    return {
        "width": HEADER_W + len(cols) * CELL + 10,
        "height": HEADER_H + len(rows) * CELL + 10,
        "cells": cells,
        "row_labels": [{"x": HEADER_W - 8, "y": HEADER_H + i * CELL + CELL / 2, "text": r} for i, r in enumerate(rows)],
        "col_labels": [{"x": HEADER_W + j * CELL + CELL / 2, "y": HEADER_H - 8, "text": c} for j, c in enumerate(cols)],
        "axis_y": {"x": 12, "y": HEADER_H + len(rows) * CELL / 2},
        "axis_x": {"x": HEADER_W + len(cols) * CELL / 2, "y": 16},
    }


def gate_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Gate verdicts for the templates: the expression, the figure, the verdict and its message."""
    rows = []
    for g in summary.get("gates") or []:
        value = g.get("value")
        rows.append({"expr": g.get("expr", ""), "value": "n/a" if value is None else f"{value:.4g}",
                     "threshold": "n/a" if g.get("threshold") is None else f"{g['threshold']:.4g}",
                     "passed": bool(g.get("passed")), "message": g.get("message", "")})
    return rows


COMPARISON_LISTED = 25  # regressed / fixed cases listed in summary.md (all of them are in compare.html)


def comparison_block(diff: dict[str, Any] | None) -> dict[str, Any] | None:
    """The comparison with the baseline run, as summary.md prints it (None without a baseline)."""
    if not diff:
        return None
    by_metric = {m["metric"]: m for m in diff.get("metrics") or []}

    def signed(value: float, *, as_pct: bool) -> str:
        return f"{value * 100:+.1f}" if as_pct else f"{value:+.3f}"

    rows = []
    for name in ("accuracy", "macro_f1", "fallback_rate", "false_fallback_rate", "false_match_rate", "error_rate"):
        m = by_metric.get(name)
        if m is None:
            continue
        as_pct = name != "macro_f1"
        delta, ci = m.get("delta"), m.get("ci95")
        rows.append({"metric": name, "a": (pct if as_pct else num)(m.get("a")), "b": (pct if as_pct else num)(m.get("b")),
                     "delta": "n/a" if delta is None else signed(delta, as_pct=as_pct) + (" pts" if as_pct else ""),
                     "ci": f"{signed(ci[0], as_pct=as_pct)} to {signed(ci[1], as_pct=as_pct)}" if ci else ""})
    mc = diff["mcnemar"]
    verdict = diff["verdict"]

    def flips(kind: str) -> list[dict[str, Any]]:
        return [{"id": f["id"], "expected": f["expected_route"], "a": f["route_a"], "b": f["route_b"],
                 "prompt": f.get("prompt") or ""} for f in (diff.get(kind) or [])[:COMPARISON_LISTED]]

    return {
        "baseline_run": diff["a"]["run_id"],
        "n_matched": diff["n_matched"],
        "failed": verdict["failed"],
        "trend": ("routing significantly worse" if verdict["significant_regression"] else
                  "routing significantly better" if verdict["significant_improvement"] else
                  "no significant change in routing"),
        "p": f"{mc['p_value']:.4g}",
        "metrics": rows,
        "checks": [{"check": c["check"], "passed": c["passed"], "message": c["message"]} for c in diff.get("checks") or []],
        "regressed": flips("regressed"), "n_regressed": len(diff.get("regressed") or []),
        "fixed": flips("fixed"), "n_fixed": len(diff.get("fixed") or []),
        "max_listed": COMPARISON_LISTED,
        "warnings": list(diff.get("warnings") or []),
    }


def build_context(summary: dict[str, Any], results: Sequence[CaseResult], manifest: Manifest, *,
                  diff: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plain dict for the templates; ``diff`` is the comparison with the run's baseline, if any."""
    labels = summary["labels"]
    per_task = [
        {"task": lab, "precision": num(v["precision"]), "recall": num(v["recall"]), "f1": num(v["f1"]),
         "support": v["support"], "is_fallback": lab == FALLBACK}
        for lab, v in summary["per_task"].items()
    ]
    wrong = [r for r in results if r.scored and r.route != r.expected_route]
    misrouted_all = [
        {"id": r.id, "prompt": r.prompt, "expected": r.expected_route, "route": r.route_label,
         "served_model": r.served_model or "", "tags": ", ".join(r.tags), "session": r.session or "",
         "turn": r.turn or ""}
        for r in wrong[:MAX_LISTED * MAX_PAGES]
    ]
    misrouted = misrouted_all[:MAX_LISTED]
    failed = [r for r in results if r.status == "error"]
    errors_all = [{"id": r.id, "error": r.error or "", "http_status": r.http_status or "", "attempts": r.attempts}
                  for r in failed[:MAX_LISTED * MAX_PAGES]]
    errors = errors_all[:MAX_LISTED]
    run_info = summary.get("run") or {}
    headline = [
        ("Accuracy", pct(summary["accuracy"]),
         f"95% CI {pct(summary['accuracy_ci95'][0])} to {pct(summary['accuracy_ci95'][1])}"),
        ("Macro-F1", num(summary["macro_f1"]), "mean F1 over tasks"),
        ("Cohen's kappa", num(summary["cohen_kappa"]), "agreement beyond chance"),
        ("Fallback rate", pct(summary["fallback_rate"]), f"false fallback {pct(summary['false_fallback_rate'])}"),
        ("False match", pct(summary["false_match_rate"]), "fallback cases sent to a task"),
        ("Errors", f"{summary['n_errors']}", f"error rate {pct(summary['error_rate'])}, not counted as misroutes"
         + (f"; {run_info['n_classifier_errors']} from the local router's classifier"
            if run_info.get("n_classifier_errors") else "")),
    ]
    tags = [
        {"tag": tag, "n": v["n_scored"], "accuracy": pct(v["accuracy"]),
         "ci": f"{pct(v['accuracy_ci95'][0])}-{pct(v['accuracy_ci95'][1])}",
         "fallback_rate": pct(v["fallback_rate"])}
        for tag, v in summary.get("per_tag", {}).items()
    ]
    target = manifest.target
    cost = summary.get("cost") or {}
    cost_rows = [
        {"path": path, "n": v["n"], "total": usd(v["total_usd"]), "mean": usd(v["mean_usd"]),
         "share": pct(v["share"]), "unknown": v["n_unknown_cost"]}
        for path, v in sorted(cost.get("per_path", {}).items())
    ]
    lat = summary.get("latency") or {}
    return {
        "title": f"evalkit: {manifest.suite.name}",
        "suite": manifest.suite.model_dump(),
        "router": manifest.router.model_dump(),
        "target": target.model_dump(),
        "run_id": manifest.run_id,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at or "",
        "evalkit_version": manifest.evalkit_version,
        "n_cases": summary["n_cases"],
        "n_scored": summary["n_scored"],
        "n_errors": summary["n_errors"],
        "n_missing": summary.get("n_missing_route", 0),
        "headline": [{"name": a, "value": b, "note": c} for a, b, c in headline],
        "heatmap": heatmap(summary["confusion"]),
        "per_task": per_task,
        "misrouted": misrouted,
        "n_misrouted": len(wrong),
        "misrouted_capped": len(wrong) > MAX_LISTED * MAX_PAGES,
        "misrouted_pages": pages(misrouted_all),
        "max_listed": MAX_LISTED * MAX_PAGES,
        "errors": errors,
        "error_pages": pages(errors_all),
        "errors_capped": len(failed) > MAX_LISTED * MAX_PAGES,
        "n_planned": run_info.get("n_planned", summary["n_cases"]),
        "n_not_run": run_info.get("n_not_run", 0),
        "stopped": run_info.get("stopped"),
        "n_retried": run_info.get("n_retried", 0),
        "n_classifier_errors": run_info.get("n_classifier_errors", 0),
        "n_cached": run_info.get("n_cached", 0),
        "tags": tags,
        "route_only": summary.get("route_only", False),
        "review_warning": (summary.get("review") or {}).get("warning"),
        "cost_rows": cost_rows,
        "cost_total": usd(cost.get("known_usd", cost.get("total_usd"))),
        "cost_unknown": cost.get("n_unknown_cost", 0),
        "latency": {k: num(lat.get(k), 1) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")},
        "gates": gate_rows(summary),
        "comparison": comparison_block(diff),
        "labels": labels,
        **{key: section(summary, results, manifest) for key, section in SECTIONS.items()},
    }
