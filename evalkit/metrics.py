"""Routing metrics: confusion matrix and friends (pure).

Rows of the confusion matrix are expected tasks (the router's labels, in config order, then
``fallback``); columns are routes: the same labels, then any route the router reported that is
not a label, then ``(missing)`` for a missing route header. Errors are not misroutes: they are
counted in ``n_errors`` / ``error_rate`` and left out of every other figure.

Every figure is computed from the confusion counts in plain Python: they equal scikit-learn's
(``tests/test_run_e2e.py`` checks them against it), and a run never pays scikit-learn's import
(about 1.6 s with scipy and pandas, more than the rest of a 30-case run).

Definitions (shares of scored cases unless said otherwise):

- accuracy: route == expected route; 95% Wilson score interval.
- precision, recall, F1 per task (scikit-learn's ``precision_recall_fscore_support`` with
  ``zero_division=0``): a figure whose denominator is zero is 0.
- macro_f1: unweighted mean F1 over the labels that occur (expected or routed).
- cohen_kappa: (p_o - p_e) / (1 - p_e) over expected vs route labels, as scikit-learn's
  ``cohen_kappa_score``.
- match_rate: routed to a named task; fallback_rate: routed to ``fallback``;
  missing_rate: no route header.
- false_fallback_rate: among cases that expect a task, the share routed to ``fallback``.
- false_match_rate: among cases that expect ``fallback``, the share routed to a task.
- error_rate: errors / all cases.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from evalkit.latency import latency_summary  # noqa: F401  (latency lives in its own module)
from evalkit.records import FALLBACK, MISSING, CaseResult
from evalkit.stats import Z95, wilson_interval  # noqa: F401  (the statistics live in evalkit.stats)

# The counts every rate is a ratio of (``rates_from_counts``), and, per label, tp / support / predicted.
COUNTS = ("all", "scored", "error", "correct", "to_task", "to_fb", "expect_task", "false_fb", "expect_fb",
          "false_match")


def rates_from_counts(counts: Mapping[str, Any], labels: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """Every rate of the routing figures as ``(value, denominator)``, from counts (``COUNTS`` and
    ``tp:LABEL``, ``support:LABEL``, ``predicted:LABEL``).

    The counts are numbers (one run: ``routing_metrics``) or numpy arrays (one value per
    bootstrap resample: ``evalkit.comparison``); a value whose denominator is 0 is 0, and the
    caller says what an undefined rate is (scikit-learn's 0 for per-task figures, None or NaN).
    Order: accuracy, macro_f1, match_rate, fallback_rate, false_fallback_rate, false_match_rate,
    error_rate, then recall[LABEL] and precision[LABEL] for each label.
    """
    def rate(num: Any, den: Any) -> tuple[Any, Any]:
        return num / (den + (den == 0)), den  # works alike on numbers and arrays

    per_label: dict[str, tuple[Any, Any]] = {}
    f1_sum: Any = 0.0
    present: Any = 0
    for lab in labels:
        tp, support, predicted = counts[f"tp:{lab}"], counts[f"support:{lab}"], counts[f"predicted:{lab}"]
        per_label[f"recall[{lab}]"] = rate(tp, support)
        per_label[f"precision[{lab}]"] = rate(tp, predicted)
        # F1 = 2TP / (2TP + FP + FN) = 2TP / (support + predicted); labels absent on both sides are
        # left out of the macro average, as scikit-learn does with the labels present.
        f1_sum = f1_sum + rate(2 * tp, support + predicted)[0]
        present = present + ((support + predicted) > 0)
    c = counts
    return {
        "accuracy": rate(c["correct"], c["scored"]),
        "macro_f1": rate(f1_sum, present),
        "match_rate": rate(c["to_task"], c["scored"]),
        "fallback_rate": rate(c["to_fb"], c["scored"]),
        "false_fallback_rate": rate(c["false_fb"], c["expect_task"]),
        "false_match_rate": rate(c["false_match"], c["expect_fb"]),
        "error_rate": rate(c["error"], c["all"]),
        **per_label,
    }


def _counts(results: Sequence[CaseResult], labels: Sequence[str]) -> dict[str, int]:
    """The counts of ``rates_from_counts`` for one run."""
    tasks = set(labels) - {FALLBACK}
    counts = dict.fromkeys(COUNTS, 0)
    for lab in labels:
        counts[f"tp:{lab}"] = counts[f"support:{lab}"] = counts[f"predicted:{lab}"] = 0
    for r in results:
        counts["all"] += 1
        if not r.scored:
            counts["error"] += 1
            continue
        exp, route = r.expected_route, r.route_label
        counts["scored"] += 1
        counts["correct"] += exp == route
        counts["to_task"] += route in tasks
        counts["to_fb"] += route == FALLBACK
        counts["expect_task"] += exp != FALLBACK
        counts["false_fb"] += route == FALLBACK and exp != FALLBACK
        counts["expect_fb"] += exp == FALLBACK
        counts["false_match"] += route in tasks and exp == FALLBACK
        if f"support:{exp}" in counts:
            counts[f"support:{exp}"] += 1
            counts[f"tp:{exp}"] += exp == route
        if f"predicted:{route}" in counts:
            counts[f"predicted:{route}"] += 1
    return counts


def confusion_columns(labels: Sequence[str], routes: Iterable[str]) -> list[str]:
    """Labels, then unexpected route names (sorted), then ``(missing)``."""
    extra = sorted({r for r in routes if r not in labels and r != MISSING})
    return [*labels, *extra, MISSING]


def confusion(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix with rows ``labels`` and columns ``confusion_columns``."""
    columns = confusion_columns(labels, y_pred)
    col = {c: j for j, c in enumerate(columns)}
    row = {lab: i for i, lab in enumerate(labels)}
    matrix = [[0] * len(columns) for _ in labels]
    for t, p in zip(y_true, y_pred):
        if t in row:  # expected routes are always labels; anything else has no row to count in
            matrix[row[t]][col[p]] += 1
    return {"labels": list(labels), "columns": columns, "matrix": matrix}


def precision_recall_f1(y_true: Sequence[str], y_pred: Sequence[str], *,
                        labels: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Per label: precision, recall, F1 and support (0 where a denominator is 0)."""
    pairs = Counter(zip(y_true, y_pred))
    true_counts, pred_counts = Counter(y_true), Counter(y_pred)
    out: dict[str, dict[str, float | int]] = {}
    for lab in labels:
        tp, support, predicted = pairs[(lab, lab)], true_counts[lab], pred_counts[lab]
        denom = support + predicted  # 2tp + fp + fn
        out[lab] = {"precision": tp / predicted if predicted else 0.0, "recall": tp / support if support else 0.0,
                    "f1": 2 * tp / denom if denom else 0.0, "support": support}
    return out


def cohen_kappa(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Cohen's kappa of two labellings; NaN when chance agreement is total (one label only)."""
    n = len(y_true)
    if n == 0:
        return math.nan
    observed = sum(1 for t, p in zip(y_true, y_pred) if t == p) / n
    true_counts, pred_counts = Counter(y_true), Counter(y_pred)
    expected = sum(true_counts[k] * pred_counts[k] for k in true_counts) / (n * n)
    return (observed - expected) / (1 - expected) if expected != 1 else math.nan


def routing_metrics(results: Sequence[CaseResult], *, labels: Sequence[str]) -> dict[str, Any]:
    """Every routing figure of ``summary.json`` for ``results`` over the router's ``labels``."""
    labels = list(labels)
    n_cases = len(results)
    scored = [r for r in results if r.scored]
    n_errors = n_cases - len(scored)
    y_true = [r.expected_route for r in scored]
    y_pred = [r.route_label for r in scored]
    n = len(scored)
    out: dict[str, Any] = {
        "n_cases": n_cases,
        "n_scored": n,
        "n_errors": n_errors,
        "n_missing_route": sum(1 for r in scored if r.route is None),
        "labels": labels,
        "confusion": confusion(y_true, y_pred, labels=labels),
    }
    if n == 0:
        out.update(accuracy=None, accuracy_ci95=[0.0, 0.0], macro_f1=None, cohen_kappa=None,
                   per_task={lab: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for lab in labels},
                   match_rate=None, fallback_rate=None, missing_rate=None, false_fallback_rate=None,
                   false_match_rate=None, error_rate=n_errors / n_cases if n_cases else None)
        return out
    counts = _counts(results, labels)
    rates = rates_from_counts(counts, labels)
    seen = set(y_true) | set(y_pred)
    kappa = cohen_kappa(y_true, y_pred) if len(seen) > 1 else 1.0
    out.update(
        accuracy=rates["accuracy"][0],
        accuracy_ci95=wilson_interval(counts["correct"], n),
        macro_f1=rates["macro_f1"][0],
        cohen_kappa=kappa if not math.isnan(kappa) else None,
        per_task=precision_recall_f1(y_true, y_pred, labels=labels),
        match_rate=rates["match_rate"][0],
        fallback_rate=rates["fallback_rate"][0],
        missing_rate=sum(1 for p in y_pred if p == MISSING) / n,
        false_fallback_rate=_defined(rates["false_fallback_rate"]),
        false_match_rate=_defined(rates["false_match_rate"]),
        error_rate=rates["error_rate"][0],
    )
    return out


def _defined(rate: tuple[Any, Any]) -> Any:
    """A rate's value, None when its denominator is 0."""
    value, den = rate
    return value if den else None


def per_tag_metrics(results: Sequence[CaseResult], *, labels: Sequence[str]) -> dict[str, Any]:
    """Headline figures of each tag's slice of the results."""
    tags = sorted({t for r in results for t in r.tags})
    out: dict[str, Any] = {}
    for tag in tags:
        subset = [r for r in results if tag in r.tags]
        m = routing_metrics(subset, labels=labels)
        out[tag] = {k: m[k] for k in ("n_cases", "n_scored", "n_errors", "accuracy", "accuracy_ci95",
                                      "macro_f1", "match_rate", "fallback_rate", "false_fallback_rate",
                                      "false_match_rate", "error_rate")}
        out[tag]["per_task_recall"] = {lab: v["recall"] for lab, v in m["per_task"].items() if v["support"]}
    return out


def misrouted(results: Sequence[CaseResult]) -> list[CaseResult]:
    """Scored cases whose route differs from the expected task, in run order."""
    return [r for r in results if r.scored and r.route != r.expected_route]


def label_review(results: Sequence[CaseResult]) -> dict[str, Any]:
    """How far a run's expected routes can be trusted: pre-labels that nobody reviewed yet.

    A suite built from traffic starts with each case's expected route set to the route the
    router returned (``label_source: router``, ``reviewed: false``): grading the router against
    its own answers is circular, so the figures say so until a person reviews the cases.
    Cases without a ``reviewed`` field (hand-written suites) count as reviewed.

    - n_unreviewed: cases with ``reviewed: false``; n_unreviewed_router: those whose label is
      the router's own route (``label_source: router``).
    - accuracy_reviewed: accuracy over the scored cases that are reviewed (None when none are),
      with its 95% Wilson interval.
    """
    unreviewed = [r for r in results if r.reviewed is False]
    from_router = sum(1 for r in unreviewed if r.label_source == "router")
    reviewed_scored = [r for r in results if r.reviewed is not False and r.scored]
    correct = sum(1 for r in reviewed_scored if r.correct)
    n = len(reviewed_scored)
    return {
        "n_cases": len(results),
        "n_unreviewed": len(unreviewed),
        "n_unreviewed_router": from_router,
        "circular": from_router > 0,
        "n_reviewed_scored": n,
        "accuracy_reviewed": correct / n if n else None,
        "accuracy_reviewed_ci95": wilson_interval(correct, n),
    }


def review_warning(review: dict[str, Any], *, suite_path: str | None = None) -> str | None:
    """The sentence every renderer prints while a suite has unreviewed pre-labels (None otherwise)."""
    n_un = review.get("n_unreviewed", 0)
    if not n_un:
        return None
    total = review.get("n_cases", 0)
    router = review.get("n_unreviewed_router", 0)
    where = suite_path or "SUITE"
    text = f"{n_un} of {total} cases have unreviewed pre-labels"
    if router:
        text += (f" ({router} taken from the router's own routes): accuracy against the router's own labels is "
                 "circular, the router is graded against itself")
    else:
        text += ": their expected routes come from a model, not a person"
    acc = review.get("accuracy_reviewed")
    if acc is not None and review.get("n_reviewed_scored"):
        text += f". Accuracy on the {review['n_reviewed_scored']} reviewed cases: {acc * 100:.1f}%"
    return text + f". Review them: evalkit suite review {where}"


def route_header_notice(results: Sequence[CaseResult], *, header: str) -> dict[str, Any] | None:
    """Why most answers have no route: the router did not send the expected route header.

    None unless more than half of the answered cases (errors aside) carried no ``header``.
    Otherwise: the header that was expected, how many answers lacked it, ``all`` (none carried it:
    the run measured no routing), the header names that did come back (names only, from the
    results' ``header_names``), and a ``message`` saying what to do (``--route-header``).
    """
    answered = [r for r in results if r.status != "error"]
    missing = [r for r in answered if r.status == "missing_route"]
    if not answered or len(missing) * 2 <= len(answered):
        return None
    names = sorted({n for r in missing for n in (r.header_names or [])})[:40]
    every = len(missing) == len(answered)
    effect = ("so the run measured no routing" if every
              else "so their route is unknown and each counts as a misroute")
    message = (f"{len(missing)} of {len(answered)} answered cases carried no route header '{header}', {effect}. "
               f"Headers that came back: {', '.join(names) if names else 'none recorded'}. "
               "If the router reports its route in another header, name it with --route-header NAME "
               "(presets: do, vllm-sr, litellm)")
    return {"header": header, "n_answered": len(answered), "n_missing": len(missing), "all": every,
            "names": names, "message": message}
