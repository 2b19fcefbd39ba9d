"""Routing metrics: confusion matrix and friends (pure; scikit-learn underneath).

Rows of the confusion matrix are expected tasks (the router's labels, in config order, then
``fallback``); columns are routes: the same labels, then any route the router reported that is
not a label, then ``(missing)`` for a missing route header. Errors are not misroutes: they are
counted in ``n_errors`` / ``error_rate`` and left out of every other figure.

Definitions (shares of scored cases unless said otherwise):

- accuracy: route == expected route; 95% Wilson score interval.
- macro_f1: unweighted mean F1 over the labels that occur (expected or routed).
- cohen_kappa: scikit-learn's ``cohen_kappa_score`` over expected vs route labels.
- match_rate: routed to a named task; fallback_rate: routed to ``fallback``;
  missing_rate: no route header.
- false_fallback_rate: among cases that expect a task, the share routed to ``fallback``.
- false_match_rate: among cases that expect ``fallback``, the share routed to a task.
- error_rate: errors / all cases.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Sequence

from evalkit.latency import latency_summary  # noqa: F401  (latency lives in its own module)
from evalkit.records import FALLBACK, MISSING, CaseResult

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> list[float]:
    """The Wilson score interval of a proportion; [0, 0] for n == 0."""
    if n == 0:
        return [0.0, 0.0]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def confusion_columns(labels: Sequence[str], routes: Iterable[str]) -> list[str]:
    """Labels, then unexpected route names (sorted), then ``(missing)``."""
    extra = sorted({r for r in routes if r not in labels and r != MISSING})
    return [*labels, *extra, MISSING]


def confusion(y_true: Sequence[str], y_pred: Sequence[str], *, labels: Sequence[str]) -> dict[str, Any]:
    """Confusion matrix with rows ``labels`` and columns ``confusion_columns``."""
    from sklearn.metrics import confusion_matrix

    columns = confusion_columns(labels, y_pred)
    if not y_true:
        return {"labels": list(labels), "columns": columns, "matrix": [[0] * len(columns) for _ in labels]}
    full = confusion_matrix(list(y_true), list(y_pred), labels=columns)
    # Expected routes are always labels, so the extra rows are all zero.
    matrix = [[int(v) for v in full[i]] for i in range(len(labels))]
    return {"labels": list(labels), "columns": columns, "matrix": matrix}


def routing_metrics(results: Sequence[CaseResult], *, labels: Sequence[str]) -> dict[str, Any]:
    """Every routing figure of ``summary.json`` for ``results`` over the router's ``labels``."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_recall_fscore_support

    labels = list(labels)
    tasks = [label for label in labels if label != FALLBACK]
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
    correct = sum(1 for t, p in zip(y_true, y_pred) if t == p)
    present = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    kappa = float(cohen_kappa_score(y_true, y_pred)) if len(set(y_true) | set(y_pred)) > 1 else 1.0
    expect_task = [p for t, p in zip(y_true, y_pred) if t != FALLBACK]
    expect_fb = [p for t, p in zip(y_true, y_pred) if t == FALLBACK]
    pred_counts = Counter(y_pred)
    out.update(
        accuracy=float(accuracy_score(y_true, y_pred)),
        accuracy_ci95=wilson_interval(correct, n),
        macro_f1=float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        cohen_kappa=kappa if not math.isnan(kappa) else None,
        per_task={lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i, lab in enumerate(labels)},
        match_rate=sum(pred_counts[t] for t in tasks) / n,
        fallback_rate=pred_counts[FALLBACK] / n,
        missing_rate=pred_counts[MISSING] / n,
        false_fallback_rate=(sum(1 for p in expect_task if p == FALLBACK) / len(expect_task)) if expect_task else None,
        false_match_rate=(sum(1 for p in expect_fb if p in tasks) / len(expect_fb)) if expect_fb else None,
        error_rate=n_errors / n_cases,
    )
    return out


def recall_interval(results: Sequence[CaseResult], task: str) -> tuple[int, list[float]]:
    """n and Wilson interval of one task's recall (for gate messages)."""
    rows = [r for r in results if r.scored and r.expected_route == task]
    hits = sum(1 for r in rows if r.route == task)
    return len(rows), wilson_interval(hits, len(rows))


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
