"""``summary.json``: the typed ``Summary`` model and ``build_summary``, which assembles it (pure).

Each analysis module contributes its section; this module only assembles them, so a figure is
computed once and every renderer (terminal, HTML, markdown, JUnit) reads the same numbers. The
same ``Summary`` model writes ``summary.json`` and reads it back (``store.RunDir``), so the file and
its readers cannot drift apart. Sections are typed as deep as a reader uses them; evidence that is
only passed through (overlap evidence, the router config diff) stays a plain mapping.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import Field

from evalkit import SCHEMA_VERSION
from evalkit.gates import GateResult
from evalkit.judge.records import JudgeSummary
from evalkit.overlap import KEPT_BELOW_MEDIUM, OverlapPair, WeakTask, bound_pairs
from evalkit.records import CLASSIFIER_ERROR_CODES, CaseResult, Document, Manifest, RouterInfo, TargetInfo


class Confusion(Document):
    """Rows are expected tasks (``labels``), columns are routes (``columns``, ending in ``(missing)``)."""

    labels: list[str]
    columns: list[str]
    matrix: list[list[int]]


class TaskMetrics(Document):
    precision: float
    recall: float
    f1: float
    support: int


class TagMetrics(Document):
    """The headline figures of one tag's slice of the cases."""

    n_cases: int
    n_scored: int
    n_errors: int
    accuracy: float | None = None
    accuracy_ci95: list[float] = Field(default_factory=list)
    macro_f1: float | None = None
    match_rate: float | None = None
    fallback_rate: float | None = None
    false_fallback_rate: float | None = None
    false_match_rate: float | None = None
    error_rate: float | None = None
    per_task_recall: dict[str, float] = Field(default_factory=dict)


class LatencyStats(Document):
    """Percentiles in milliseconds (None for each figure when there is no value)."""

    n: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None


class PathLatency(LatencyStats):
    ttft: LatencyStats | None = None


class LatencySummary(LatencyStats):
    """End-to-end latency of the answered cases, overall and per path; time to first token when streamed."""

    streamed: bool = False
    ttft: LatencyStats | None = None
    per_path: dict[str, PathLatency] = Field(default_factory=dict)


class Tokens(Document):
    prompt: int = 0
    completion: int = 0
    hidden_reasoning: int = 0
    visible_completion: int = 0
    n_reasoning_reported: int = 0


class PathTokens(Document):
    prompt: int = 0
    completion: int = 0
    hidden_reasoning: int = 0
    visible_completion: int = 0
    n_with_usage: int = 0
    n_reasoning_reported: int = 0
    mean_prompt: float | None = None
    mean_completion: float | None = None
    mean_hidden_reasoning: float | None = None


class PathCost(Document):
    """Cost of one path's requests (unknown totals are None; ``known_usd`` is the priced part)."""

    n: int
    models: dict[str, int] = Field(default_factory=dict)
    total_usd: float | None = None
    known_usd: float | None = None
    n_unknown_cost: int = 0
    unpriced_models: list[str] = Field(default_factory=list)
    mean_usd: float | None = None
    share: float | None = None
    tokens: PathTokens = Field(default_factory=PathTokens)


class MisrouteCell(Document):
    route: str
    count: int
    rate: float | None = None
    model: str | None = None
    basis: str
    cost_usd: float | None = None
    delta_usd: float | None = None
    monthly_delta_usd: float | None = None
    text: str | None = None


class MisrouteRow(Document):
    expected: str
    n: int
    correct_usd: float | None = None
    model: str | None = None
    monthly_requests: float | None = None
    monthly_misroute_usd: float | None = None
    cells: list[MisrouteCell] = Field(default_factory=list)


class MisrouteMatrix(Document):
    """What each misroute costs a request against correct routing, and its monthly effect."""

    labels: list[str]
    columns: list[str]
    basis: str
    monthly_requests: int = 0
    monthly_misroute_usd: float | None = None
    rows: list[MisrouteRow] = Field(default_factory=list)


class CostSummary(Document):
    """The router's requests only (the judge's cost is in the judge section)."""

    scope: str = "router"
    note: str = ""
    total_usd: float | None = None
    known_usd: float | None = None
    n_priced: int = 0
    n_unknown_cost: int = 0
    unpriced_models: list[str] = Field(default_factory=list)
    mean_usd: float | None = None
    route_only: bool = False
    route_only_note: str | None = None
    tokens: Tokens = Field(default_factory=Tokens)
    per_path: dict[str, PathCost] = Field(default_factory=dict)
    misroute: MisrouteMatrix | None = None


class RunSection(Document):
    """How the run went: planned and stored cases, retries, cache hits, classifier errors, stops."""

    n_planned: int = 0
    n_not_run: int = 0
    stopped: str | None = None
    n_retried: int = 0
    n_cached: int = 0
    n_classifier_errors: int = 0
    resumes: int = 0


class ReviewSection(Document):
    """How far the expected routes can be trusted (see ``metrics.label_review``)."""

    n_cases: int = 0
    n_unreviewed: int = 0
    n_unreviewed_router: int = 0
    circular: bool = False
    n_reviewed_scored: int = 0
    accuracy_reviewed: float | None = None
    accuracy_reviewed_ci95: list[float] = Field(default_factory=list)
    warning: str | None = None


class Summary(Document):
    """``summary.json``: every figure the reports show, machine-readable.

    The routing figures are defined in ``evalkit.metrics``; errors are counted in ``n_errors`` and
    ``error_rate`` and left out of every other figure. A section that does not apply to a run is
    None (``judge`` when nobody asked for a judge) or empty.
    """

    schema_version: int = SCHEMA_VERSION
    suite: str
    run_id: str
    target: TargetInfo
    router: RouterInfo | None = None
    n_cases: int
    n_scored: int
    n_errors: int
    n_missing_route: int = 0
    labels: list[str]
    confusion: Confusion
    accuracy: float | None = None
    accuracy_ci95: list[float] = Field(default_factory=lambda: [0.0, 0.0])
    macro_f1: float | None = None
    cohen_kappa: float | None = None
    per_task: dict[str, TaskMetrics] = Field(default_factory=dict)
    match_rate: float | None = None
    fallback_rate: float | None = None
    missing_rate: float | None = None
    false_fallback_rate: float | None = None
    false_match_rate: float | None = None
    error_rate: float | None = None
    per_tag: dict[str, TagMetrics] = Field(default_factory=dict)
    route_only: bool = False
    # Every flagged pair (medium, high) and the strongest KEPT_BELOW_MEDIUM others. How many pairs
    # (all low or none) were left out is the extra key ``overlap_omitted``, written only when some
    # were (a run with every pair listed writes summary.json as before it existed).
    overlap: list[OverlapPair] = Field(default_factory=list)
    overlap_weak: list[WeakTask] = Field(default_factory=list)
    judge: JudgeSummary | None = None
    cost: CostSummary = Field(default_factory=CostSummary)
    latency: LatencySummary = Field(default_factory=LatencySummary)
    gates: list[GateResult] = Field(default_factory=list)
    run: RunSection = Field(default_factory=RunSection)
    review: ReviewSection = Field(default_factory=ReviewSection)

    @property
    def gates_passed(self) -> bool:
        """True when every gate passed (and when there is none)."""
        return all(g.passed for g in self.gates)


def build_summary(manifest: Manifest, results: Sequence[CaseResult], *,
                  judgement: Any = None, overlap: dict[str, Any] | None = None) -> Summary:
    """Every figure the reports show (``judgement``: the run's judge files, ``judge.Judgement``).

    ``overlap``: ``OverlapReport.to_dict()`` of the run's router (``evalkit.overlap``); its pairs
    become ``overlap`` (every medium and high pair, then the strongest ``KEPT_BELOW_MEDIUM`` others;
    ``overlap_omitted``, only when any, counts the rest) and its weak descriptions ``overlap_weak``.
    """
    from evalkit.cost import cost_summary, run_prices
    from evalkit.judge import judge_block
    from evalkit.latency import latency_summary
    from evalkit.metrics import label_review, per_tag_metrics, review_warning, routing_metrics

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
    summary["overlap"], omitted = bound_pairs(list((overlap or {}).get("pairs", [])), KEPT_BELOW_MEDIUM)
    if omitted:
        summary["overlap_omitted"] = omitted
    summary["overlap_weak"] = list((overlap or {}).get("weak", []))
    summary["judge"] = judge_block(manifest.judge, results, judgement,
                                   baseline_model=manifest.options.get("baseline_model"))
    # Router requests only: the judge's cost is its own section. Prices are those the run was
    # priced with (recorded in the manifest); the misroute matrix uses the suite's own mix.
    summary["cost"] = cost_summary(list(results), labels=labels, prices=run_prices(manifest.options))
    summary["latency"] = latency_summary(results)
    summary["gates"] = []
    summary["run"] = run_section(manifest, results)
    review = label_review(results)
    review["warning"] = review_warning(review, suite_path=manifest.suite.path)
    summary["review"] = review
    return Summary.model_validate(summary)


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
