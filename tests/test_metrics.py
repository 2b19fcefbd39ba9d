"""metrics: hand-computed figures on small result sets."""

from __future__ import annotations

import math

import pytest

from evalkit.metrics import routing_metrics, wilson_interval
from evalkit.records import CaseResult

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]


def r(i, expected, route, status="ok", tags=()):
    if status == "missing_route":
        route = None
    return CaseResult(id=str(i), expected_route=expected, route=route, status=status, tags=list(tags))


def sample():
    return [
        r(1, "classify", "classify"),
        r(2, "classify", "customer-qa"),
        r(3, "customer-qa", "customer-qa"),
        r(4, "customer-qa", "fallback"),
        r(5, "reasoning", "reasoning"),
        r(6, "fallback", "fallback"),
        r(7, "fallback", "classify"),
        r(8, "reasoning", None, status="missing_route"),
        r(9, "classify", None, status="error"),
    ]


def test_confusion_rows_expected_columns_routes_plus_missing():
    m = routing_metrics(sample(), labels=LABELS)
    conf = m["confusion"]
    assert conf["labels"] == LABELS
    assert conf["columns"] == LABELS + ["(missing)"]
    assert conf["matrix"] == [
        [1, 1, 0, 0, 0],
        [0, 1, 0, 1, 0],
        [0, 0, 1, 0, 1],
        [1, 0, 0, 1, 0],
    ]


def test_errors_are_counted_apart_and_not_misroutes():
    m = routing_metrics(sample(), labels=LABELS)
    assert (m["n_cases"], m["n_scored"], m["n_errors"], m["n_missing_route"]) == (9, 8, 1, 1)
    assert m["error_rate"] == pytest.approx(1 / 9)
    assert m["accuracy"] == pytest.approx(4 / 8)


def test_rates_by_their_definitions():
    m = routing_metrics(sample(), labels=LABELS)
    # routed to a named task: cases 1,2,3,5,7 -> 5 of 8
    assert m["match_rate"] == pytest.approx(5 / 8)
    assert m["fallback_rate"] == pytest.approx(2 / 8)
    assert m["missing_rate"] == pytest.approx(1 / 8)
    # expected a task (6 scored): one went to fallback (case 4)
    assert m["false_fallback_rate"] == pytest.approx(1 / 6)
    # expected fallback (2): one went to a task (case 7)
    assert m["false_match_rate"] == pytest.approx(1 / 2)


def test_per_task_precision_recall_by_hand():
    per = routing_metrics(sample(), labels=LABELS)["per_task"]
    assert per["classify"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert per["customer-qa"]["precision"] == pytest.approx(1 / 2)
    assert per["reasoning"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2})
    assert per["fallback"]["recall"] == pytest.approx(1 / 2)


def test_macro_f1_over_present_labels():
    m = routing_metrics(sample(), labels=LABELS)
    f1s = [1 / 2, 1 / 2, 2 / 3, 1 / 2]
    assert m["macro_f1"] == pytest.approx(sum(f1s) / 4)


def test_cohen_kappa_by_hand():
    results = [r(1, "classify", "classify"), r(2, "classify", "fallback"),
               r(3, "fallback", "fallback"), r(4, "fallback", "fallback")]
    m = routing_metrics(results, labels=LABELS)
    po = 3 / 4
    pe = (2 / 4) * (1 / 4) + (2 / 4) * (3 / 4)
    assert m["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson_interval(8, 10)
    z = 1.959963984540054
    p, n = 0.8, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 0) == [0.0, 0.0]


def test_matrix_keeps_its_shape_when_a_task_has_no_cases():
    m = routing_metrics([r(1, "classify", "classify")], labels=LABELS)
    assert len(m["confusion"]["matrix"]) == 4
    assert m["per_task"]["reasoning"]["support"] == 0


def test_unknown_route_gets_its_own_column():
    m = routing_metrics([r(1, "classify", "summarize")], labels=LABELS)
    assert m["confusion"]["columns"] == LABELS + ["summarize", "(missing)"]
    assert m["confusion"]["matrix"][0][4] == 1


def test_all_errors_gives_no_accuracy_not_zero():
    m = routing_metrics([r(1, "classify", None, status="error")], labels=LABELS)
    assert m["accuracy"] is None and m["error_rate"] == 1.0


def test_label_review_counts_unreviewed_prelabels_and_scores_only_reviewed_cases():
    from evalkit.metrics import label_review, review_warning

    def res(cid, expected, route, *, reviewed, source):
        return CaseResult(id=cid, expected_route=expected, route=route, status="ok", reviewed=reviewed,
                          label_source=source)

    results = [res("a", "classify", "classify", reviewed=False, source="router"),
               res("b", "classify", "reasoning", reviewed=False, source="labeler"),
               res("c", "reasoning", "reasoning", reviewed=True, source="human"),
               res("d", "fallback", "classify", reviewed=True, source="human"),
               CaseResult(id="e", expected_route="classify", route=None, status="error", reviewed=True)]
    review = label_review(results)
    assert review["n_unreviewed"] == 2 and review["n_unreviewed_router"] == 1 and review["circular"] is True
    assert review["n_reviewed_scored"] == 2 and review["accuracy_reviewed"] == 0.5
    text = review_warning(review, suite_path="suites/x")
    assert text.startswith("2 of 5 cases have unreviewed pre-labels (1 taken from the router's own routes)")
    assert "Accuracy on the 2 reviewed cases: 50.0%" in text and text.endswith("evalkit suite review suites/x")


def test_label_review_of_a_hand_written_suite_has_no_warning():
    from evalkit.metrics import label_review, review_warning

    results = [CaseResult(id="a", expected_route="classify", route="classify", status="ok")]
    review = label_review(results)
    assert review["n_unreviewed"] == 0 and review["circular"] is False and review["accuracy_reviewed"] == 1.0
    assert review_warning(review) is None


@pytest.mark.parametrize("seed", range(6))
def test_figures_equal_scikit_learn_on_random_results(seed: int) -> None:
    # metrics.py computes everything from counts (no scikit-learn import in a run); cross-check it
    import random

    from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)

    rng = random.Random(seed)
    routes = [*LABELS, "summarize", None]  # an unknown route and a missing header too
    results = [r(i, rng.choice(LABELS[: 1 + seed % 4]), route := rng.choice(routes),
                 status="missing_route" if route is None else "ok") for i in range(rng.randint(1, 60))]
    m = routing_metrics(results, labels=LABELS)
    y_true = [x.expected_route for x in results]
    y_pred = [x.route_label for x in results]
    assert m["confusion"]["matrix"] == confusion_matrix(y_true, y_pred, labels=m["confusion"]["columns"])[:4].tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    present = [lab for lab in LABELS if lab in set(y_true) | set(y_pred)]
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    if len(set(y_true) | set(y_pred)) > 1:
        kappa = cohen_kappa_score(y_true, y_pred)
        assert (m["cohen_kappa"] is None and math.isnan(kappa)) or m["cohen_kappa"] == pytest.approx(kappa)
    p, rc, f, s = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    for i, lab in enumerate(LABELS):
        assert m["per_task"][lab] == pytest.approx({"precision": p[i], "recall": rc[i], "f1": f[i], "support": s[i]})
