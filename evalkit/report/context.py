"""The report context: every number and label a template prints, computed here (pure)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from evalkit.finish import finish_hint
from evalkit.records import FALLBACK, CaseResult, Manifest
from evalkit.report.sections import SECTIONS

if TYPE_CHECKING:
    from pathlib import Path

    from evalkit.comparison import Comparison
    from evalkit.summary import Confusion, Summary

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


# Past this many cells (a 20-task router) the heatmap draws the empty cells as one tiled pattern and
# only the cells with cases one by one: a 200-task router has 40,400 cells, nearly all empty.
HEATMAP_MAX_CELLS = 21 * 22


def heatmap(confusion: Confusion) -> dict[str, Any]:
    """Inline-SVG geometry of the confusion heatmap: counts and row percentages per cell."""
    rows, cols, matrix = confusion.labels, confusion.columns, confusion.matrix
    cells = []
    sparse = len(rows) * len(cols) > HEATMAP_MAX_CELLS
    for i, row_label in enumerate(rows):
        total = sum(matrix[i])
        for j, col_label in enumerate(cols):
            count = matrix[i][j]
            if sparse and not count:
                continue
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
        "sparse": {"x": HEADER_W, "y": HEADER_H, "cell": CELL, "w": len(cols) * CELL, "h": len(rows) * CELL,
                   "n_empty": len(rows) * len(cols) - len(cells)} if sparse else None,
        "row_labels": [{"x": HEADER_W - 8, "y": HEADER_H + i * CELL + CELL / 2, "text": r} for i, r in enumerate(rows)],
        "col_labels": [{"x": HEADER_W + j * CELL + CELL / 2, "y": HEADER_H - 8, "text": c} for j, c in enumerate(cols)],
        "axis_y": {"x": 12, "y": HEADER_H + len(rows) * CELL / 2},
        "axis_x": {"x": HEADER_W + len(cols) * CELL / 2, "y": 16},
    }


def interval(ci: Sequence[float] | None, n: int, *, sep: str = " to ") -> str:
    """A 95% interval as text; "n/a" when nothing was measured (n == 0: the stored [0, 0] is no interval)."""
    if not n or not ci or len(ci) != 2:
        return "n/a"
    return f"{pct(ci[0])}{sep}{pct(ci[1])}"


def _predicted(confusion: Confusion) -> dict[str, int]:
    """How many scored cases were routed to each column of the confusion matrix (its column sums)."""
    return {col: sum(row[j] for row in confusion.matrix if j < len(row)) for j, col in enumerate(confusion.columns)}


def task_rows(summary: Summary) -> list[dict[str, Any]]:
    """Precision, recall and F1 per task as text, "n/a" where the figure is undefined.

    summary.json stores 0.0 where a denominator is 0 (scikit-learn's convention); a report must not
    print that as a measured 0.000. Precision is undefined when no case was routed to the task (the
    confusion matrix's column sum), recall when the task has no support, F1 when both are 0. A task
    missing from the matrix's columns keeps its stored figures (its count of predictions is unknown).
    """
    predicted = _predicted(summary.confusion) if summary.n_scored else {}
    rows = []
    for lab, v in summary.per_task.items():
        n_pred = predicted.get(lab, 0 if not summary.n_scored else None)
        rows.append({
            "task": lab, "support": v.support, "is_fallback": lab == FALLBACK, "predicted": n_pred,
            "precision": "n/a" if n_pred == 0 else num(v.precision),
            "recall": "n/a" if v.support == 0 else num(v.recall),
            "f1": "n/a" if v.support == 0 and n_pred == 0 else num(v.f1),
        })
    return rows


def shard_scope(manifest: Manifest) -> str | None:
    """What a shard run covers, e.g. "shard 2/4 of suite saas-support (88 of its 252 cases)"; None
    for a run of the whole suite (``manifest.options["shard"]`` is set by ``evalkit run --shard``,
    ``manifest.counts["planned"]`` is the shard's share of the cases)."""
    shard = manifest.options.get("shard")
    if not shard:
        return None
    planned = manifest.counts.get("planned")
    share = "a share" if planned is None else str(planned)
    return f"shard {shard} of suite {manifest.suite.name} ({share} of its {manifest.suite.n_cases} cases)"


def nothing_scored(summary: Summary, results: Sequence[CaseResult]) -> str | None:
    """Why every routing figure is empty when no case was scored (every case an error, or no
    result at all), with the commonest errors; None when some case was scored."""
    if summary.n_scored:
        return None
    if not summary.n_cases:
        return "no case has a result, so no routing figure (accuracy, macro-F1, kappa, per-task figures) could be computed"
    kinds = Counter(f"HTTP {r.http_status}" if r.http_status else " ".join((r.error or "error").split())[:80]
                    for r in results if r.status == "error")
    common = "; ".join(f"{n}× {kind}" for kind, n in kinds.most_common(3))
    every = "the only case" if summary.n_cases == 1 else f"all {summary.n_cases} cases"
    return (f"{every} ended in an error{f' ({common})' if common else ''}, so no routing figure (accuracy, "
            "macro-F1, kappa, per-task figures, confusion matrix) could be computed")


def gate_rows(summary: Summary) -> list[dict[str, Any]]:
    """Gate verdicts for the templates: the expression, the figure, the verdict and its message."""
    return [{"expr": g.expr, "value": "n/a" if g.value is None else f"{g.value:.4g}",
             "threshold": "n/a" if g.threshold is None else f"{g.threshold:.4g}",
             "passed": g.passed, "message": g.message}
            for g in summary.gates]


COMPARISON_LISTED = 25  # regressed / fixed cases listed in summary.md (all of them are in compare.html)


def comparison_block(diff: Comparison | None) -> dict[str, Any] | None:
    """The comparison with the baseline run, as summary.md prints it (None without a baseline)."""
    if not diff:
        return None

    def signed(value: float, *, as_pct: bool) -> str:
        return f"{value * 100:+.1f}" if as_pct else f"{value:+.3f}"

    rows = []
    for name in ("accuracy", "macro_f1", "fallback_rate", "false_fallback_rate", "false_match_rate", "error_rate"):
        m = diff.metric(name)
        if m is None:
            continue
        as_pct = name != "macro_f1"
        rows.append({"metric": name, "a": (pct if as_pct else num)(m.a), "b": (pct if as_pct else num)(m.b),
                     "delta": "n/a" if m.delta is None else signed(m.delta, as_pct=as_pct) + (" pts" if as_pct else ""),
                     "ci": f"{signed(m.ci95[0], as_pct=as_pct)} to {signed(m.ci95[1], as_pct=as_pct)}" if m.ci95 else ""})
    verdict = diff.verdict

    def flips(cases: list[Any]) -> list[dict[str, Any]]:
        return [{"id": f.id, "expected": f.expected_route, "a": f.route_a, "b": f.route_b, "prompt": f.prompt or ""}
                for f in cases[:COMPARISON_LISTED]]

    return {
        "baseline_run": diff.a.run_id,
        "n_matched": diff.n_matched,
        "failed": verdict.failed,
        "trend": ("routing significantly worse" if verdict.significant_regression else
                  "routing significantly better" if verdict.significant_improvement else
                  "no significant change in routing"),
        "p": f"{diff.mcnemar_p:.4g}",
        "metrics": rows,
        "checks": [{"check": c.check, "passed": c.passed, "message": c.message} for c in diff.checks],
        "regressed": flips(diff.regressed_cases), "n_regressed": len(diff.regressed_cases),
        "fixed": flips(diff.fixed_cases), "n_fixed": len(diff.fixed_cases),
        "max_listed": COMPARISON_LISTED,
        "warnings": list(diff.warnings),
    }


def _headline(summary: Summary) -> list[dict[str, str]]:
    """The figures at the top of the report, each with a note saying what it means."""
    n_classifier = summary.run.n_classifier_errors
    accuracy_note = (f"95% CI {interval(summary.accuracy_ci95, summary.n_scored)}" if summary.n_scored
                     else "no case was scored")
    headline = [
        ("Accuracy", pct(summary.accuracy), accuracy_note),
        ("Macro-F1", num(summary.macro_f1), "mean F1 over tasks"),
        ("Cohen's kappa", num(summary.cohen_kappa), "agreement beyond chance"),
        ("Fallback rate", pct(summary.fallback_rate), f"false fallback {pct(summary.false_fallback_rate)}"),
        ("False match", pct(summary.false_match_rate), "fallback cases sent to a task"),
        ("Errors", f"{summary.n_errors}", f"error rate {pct(summary.error_rate)}, not counted as misroutes"
         + (f"; {n_classifier} from the local router's classifier" if n_classifier else "")),
    ]
    return [{"name": a, "value": b, "note": c} for a, b, c in headline]


def _finish_parts(manifest: Manifest, run_path: str | Path | None) -> list[tuple[str, bool, bool]]:
    """``finish_hint`` as (text, is code, a space before it) spans, for each template to mark up
    its own way (the spans are stripped; the space flag keeps the words apart, not the comma).
    ``run_path``: the run directory as the reports are written into it (the command then works as
    printed, as the terminal's does); the placeholder RUN_DIR only when no directory is known."""
    raw = finish_hint(manifest, "RUN_DIR" if run_path is None else run_path).split("`")
    parts: list[tuple[str, bool, bool]] = []
    for i, part in enumerate(raw):
        if part.strip():
            space = bool(parts) and (part[:1].isspace() or raw[i - 1][-1:].isspace())
            parts.append((part.strip(), bool(i % 2), space))
    return parts


def _case_lists(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The misrouted and the failed cases, in pages."""
    wrong = [r for r in results if r.scored and r.route != r.expected_route]
    misrouted_all = [
        {"id": r.id, "prompt": r.prompt, "expected": r.expected_route, "route": r.route_label,
         "served_model": r.served_model or "", "tags": ", ".join(r.tags), "session": r.session or "",
         "turn": r.turn or ""}
        for r in wrong[:MAX_LISTED * MAX_PAGES]
    ]
    failed = [r for r in results if r.status == "error"]
    errors_all = [{"id": r.id, "error": r.error or "", "http_status": r.http_status or "", "attempts": r.attempts}
                  for r in failed[:MAX_LISTED * MAX_PAGES]]
    return {
        "misrouted": misrouted_all[:MAX_LISTED],
        "n_misrouted": len(wrong),
        "misrouted_capped": len(wrong) > MAX_LISTED * MAX_PAGES,
        "misrouted_pages": pages(misrouted_all),
        "max_listed": MAX_LISTED * MAX_PAGES,
        "errors": errors_all[:MAX_LISTED],
        "error_pages": pages(errors_all),
        "errors_capped": len(failed) > MAX_LISTED * MAX_PAGES,
    }


def build_context(summary: Summary, results: Sequence[CaseResult], manifest: Manifest, *,
                  diff: Comparison | None = None, run_path: str | Path | None = None) -> dict[str, Any]:
    """A plain dict for the templates; ``diff`` is the comparison with the run's baseline, if any
    (each also accepted as the mapping its JSON file holds); ``run_path`` the run directory the
    reports go into, which the resume command of an incomplete run names."""
    from evalkit.comparison import Comparison
    from evalkit.latency import unstreamed_note
    from evalkit.metrics import route_header_notice
    from evalkit.summary import Summary

    summary = Summary.coerce(summary)
    diff = Comparison.coerce(diff) if diff is not None else None
    run_info = summary.run
    n_planned = run_info.n_planned if "run" in summary.model_fields_set else summary.n_cases
    tags = [
        {"tag": tag, "n": v.n_scored, "accuracy": pct(v.accuracy),
         "ci": interval(v.accuracy_ci95, v.n_scored, sep="-"),
         "fallback_rate": pct(v.fallback_rate)}
        for tag, v in summary.per_tag.items()
    ]
    cost = summary.cost
    cost_rows = [
        {"path": path, "n": v.n, "total": usd(v.total_usd), "mean": usd(v.mean_usd),
         "share": pct(v.share), "unknown": v.n_unknown_cost}
        for path, v in sorted(cost.per_path.items())
    ]
    lat = summary.latency
    shard = shard_scope(manifest)
    header_notice = route_header_notice(results, header=manifest.target.route_header)
    return {
        "title": f"evalkit: {manifest.suite.name}" + (f" (shard {manifest.options['shard']})" if shard else ""),
        "shard": shard,
        "nothing_scored": nothing_scored(summary, results),
        "suite": manifest.suite.model_dump(),
        "router": manifest.router.model_dump(),
        "target": manifest.target.model_dump(),
        "run_id": manifest.run_id,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at or "",
        "evalkit_version": manifest.evalkit_version,
        "n_cases": summary.n_cases,
        "n_scored": summary.n_scored,
        "n_errors": summary.n_errors,
        "n_missing": summary.n_missing_route,
        "headline": _headline(summary),
        "heatmap": heatmap(summary.confusion),
        "per_task": task_rows(summary),
        **_case_lists(results),
        "n_planned": n_planned,
        "n_not_run": run_info.n_not_run,
        "stopped": run_info.stopped,
        "finish": _finish_parts(manifest, run_path) if run_info.n_not_run else [],
        "n_retried": run_info.n_retried,
        "n_classifier_errors": run_info.n_classifier_errors,
        "n_cached": run_info.n_cached,
        "tags": tags,
        # summary.route_only is vacuously true when every case is an error: no answer, no claim.
        "route_only": summary.route_only and summary.n_scored > 0,
        # Routing was measured when some scored case carried a route header and most did (no notice).
        "routing_measured": summary.n_scored > summary.n_missing_route and header_notice is None,
        "review_warning": summary.review.warning,
        "route_header_notice": header_notice,
        "cost_rows": cost_rows,
        "cost_total": usd(cost.known_usd if "known_usd" in cost.model_fields_set else cost.total_usd),
        "cost_unknown": cost.n_unknown_cost,
        "latency": {"p50_ms": num(lat.p50_ms, 1), "p95_ms": num(lat.p95_ms, 1), "p99_ms": num(lat.p99_ms, 1),
                    "mean_ms": num(lat.mean_ms, 1)},
        "unstreamed_note": unstreamed_note(results, stream=bool(manifest.options.get("stream"))),
        "gates": gate_rows(summary),
        "comparison": comparison_block(diff),
        "labels": summary.labels,
        **{key: section(summary, results, manifest) for key, section in SECTIONS.items()},
    }
