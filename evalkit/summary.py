"""Build ``summary.json`` from a run's records (pure).

Each analysis module contributes its section; this module only assembles them, so a figure is
computed once and every renderer (terminal, HTML, markdown, JUnit) reads the same numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

from evalkit import SCHEMA_VERSION
from evalkit.cost import cost_summary, run_prices
from evalkit.judge import Judgement, judge_block
from evalkit.latency import latency_summary
from evalkit.metrics import label_review, per_tag_metrics, review_warning, routing_metrics
from evalkit.records import CLASSIFIER_ERROR_CODES, CaseResult, Manifest


def build_summary(manifest: Manifest, results: Sequence[CaseResult], *,
                  judgement: Judgement | None = None,
                  overlap: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every figure the reports show, machine-readable (``judgement``: the run's judge files).

    ``overlap``: ``OverlapReport.to_dict()`` of the run's router (``evalkit.overlap``); its pairs
    become ``overlap`` and its weak descriptions ``overlap_weak``.
    """
    labels = [*manifest.router.tasks, "fallback"]
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "suite": manifest.suite.name,
        "run_id": manifest.run_id,
        "target": manifest.target.model_dump(),
        "router": manifest.router.model_dump(),
    }
    summary.update(routing_metrics(results, labels=labels))
    summary["per_tag"] = per_tag_metrics(results, labels=labels)
    summary["route_only"] = bool(results) and all(r.route_only for r in results if r.status != "error")
    summary["overlap"] = list((overlap or {}).get("pairs", []))
    summary["overlap_weak"] = list((overlap or {}).get("weak", []))
    summary["judge"] = judge_block(manifest.judge, results, judgement,
                                   baseline_model=manifest.options.get("baseline_model"))
    # Router requests only: the judge's cost is its own section. Prices are those the run was
    # priced with (recorded in the manifest); the misroute matrix uses the suite's own mix.
    summary["cost"] = cost_summary(list(results), labels=labels, prices=run_prices(manifest.options))
    summary["latency"] = latency_summary(results)
    summary["gates"] = []
    summary["run"] = run_section(manifest, results)
    summary["review"] = label_review(results)
    summary["review"]["warning"] = review_warning(summary["review"], suite_path=manifest.suite.path)
    return summary


def run_section(manifest: Manifest, results: Sequence[CaseResult]) -> dict[str, Any]:
    """How the run went: planned vs. stored cases, retries, cache hits, classifier errors (of the
    local router's classifier model, already in ``n_errors``), and why it stopped early."""
    planned = manifest.counts.get("planned", manifest.suite.n_cases)  # a shard plans only its share
    return {
        "n_planned": planned,
        "n_not_run": max(0, planned - len(results)),
        "stopped": manifest.stopped,
        "n_retried": sum(1 for r in results if r.attempts > 1),
        "n_cached": sum(1 for r in results if r.cached),
        "n_classifier_errors": sum(1 for r in results
                                   if r.status == "error" and r.error_code in CLASSIFIER_ERROR_CODES),
        "resumes": len(manifest.options.get("resumes", [])),
    }
