"""Judge figures for ``summary.json`` (pure): per path, per cell of the confusion matrix,
per tag, misroute harm, the baseline comparison and calibration against human grades.

Intervals are percentile bootstrap intervals with a fixed seed (``evalkit.stats``, the one
resampler), so the same records always give the same figures. The convention (documented in docs/judge.md and followed by the tests):

- a group's scores are reduced to their distinct values ``v`` (ascending) and counts ``c``
  (n = sum of c); ``rng = numpy.random.default_rng(BOOTSTRAP_SEED)`` draws
  ``rng.multinomial(n, c / n, size=BOOTSTRAP_RESAMPLES)``, one row of counts per resample (the
  same distribution as resampling n scores with replacement); each resample's mean is
  ``row @ v / n``; the interval is ``numpy.percentile(means, [2.5, 97.5])`` (linear interpolation);
- every group starts from a fresh generator with the same seed (so a group's interval does not
  depend on which other groups exist or on the order of the records);
- a difference between two independent groups (misroute harm) draws the first group's counts,
  then the second's, from one fresh generator, and takes percentiles of the mean differences;
- a paired difference (router minus baseline on the same cases) is the plain interval of the
  per-case differences;
- n = 0 gives mean and interval None; n = 1 gives an interval of zero width.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from evalkit.judge.prompts import CRITERIA
from evalkit.judge.records import JudgeRecord, PairRecord
from evalkit.records import CaseResult
from evalkit.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci, bootstrap_diff_ci  # noqa: F401  (re-exported)

GRADES = [1, 2, 3, 4, 5]
ATTENTION_LISTED = 30


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_stats(records: Iterable[JudgeRecord]) -> dict[str, Any]:
    """Mean, 95% interval and n of the scored records, plus counts of the others."""
    records = list(records)
    scores = [float(r.score) for r in records if r.status == "scored" and r.score is not None]
    return {"mean": _mean(scores), "ci95": bootstrap_ci(scores), "n": len(scores),
            "n_unscored": sum(r.status == "unscored" for r in records),
            "n_no_answer": sum(r.status == "no_answer" for r in records),
            "n_error": sum(r.status == "error" for r in records)}


def _by_criterion(records: Sequence[JudgeRecord], criteria: Sequence[str]) -> dict[str, dict[str, Any]]:
    split = _group(records, lambda r: r.criterion)
    return {c: score_stats(split.get(c, [])) for c in criteria}


def _group(items: Iterable[Any], key: Any) -> dict[Any, list[Any]]:
    """Items grouped by ``key(item)`` in one pass, groups in first-seen order."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _scores(records: Iterable[JudgeRecord]) -> list[float]:
    return [float(r.score) for r in records if r.status == "scored" and r.score is not None]


def misroute_harm(records: Sequence[JudgeRecord], results: Sequence[CaseResult], *,
                  criteria: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """For each expected task: misrouted cases' quality against correctly routed ones.

    ``difference`` is mean(misrouted) - mean(correct): negative means the misroutes hurt.
    ``by_route`` splits the misrouted cases by where they went.
    """
    by_id = {r.id: r for r in results}
    groups = _group((rec for rec in records if rec.id in by_id),
                    lambda rec: (by_id[rec.id].expected_route, rec.criterion))
    out: dict[str, Any] = {}
    for task in sorted({task for task, _ in groups}):
        entry: dict[str, Any] = {}
        for c in criteria:
            mine = groups.get((task, c), [])
            good = [rec for rec in mine if by_id[rec.id].route == task]
            bad = [rec for rec in mine if by_id[rec.id].route != task]
            if not bad:
                continue
            sg, sb = _scores(good), _scores(bad)
            by_route = _group(bad, lambda rec: by_id[rec.id].route_label)
            entry[c] = {
                "correct": score_stats(good), "misrouted": score_stats(bad),
                "difference": (_mean(sb) - _mean(sg)) if sg and sb else None,  # type: ignore[operator]
                "difference_ci95": bootstrap_diff_ci(sb, sg),
                "by_route": {route: score_stats(by_route[route]) for route in sorted(by_route)},
            }
        if entry:
            out[task] = entry
    return out


def calibration(records: Sequence[JudgeRecord], results: Sequence[CaseResult], *,
                criteria: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """The judge against human grades: quadratic-weighted kappa, exact agreement, confusion table.

    A median that ends in .5 (an even number of samples) is rounded half up before comparing.
    Rows of the table are human grades, columns the judge's, both 1 to 5.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    human: dict[str, dict[str, int]] = {r.id: r.human for r in results if r.human}
    out: dict[str, Any] = {}
    for c in criteria:
        pairs = [(int(human[rec.id][c]), int(math.floor(float(rec.score) + 0.5)))
                 for rec in records if rec.criterion == c and rec.status == "scored" and rec.score is not None
                 and rec.id in human and c in human[rec.id]]
        if not pairs:
            continue
        h = [p[0] for p in pairs]
        j = [p[1] for p in pairs]
        kappa = float(cohen_kappa_score(h, j, labels=GRADES, weights="quadratic")) if len(set(h) | set(j)) > 1 else None
        out[c] = {
            "n": len(pairs),
            "kappa_quadratic": None if kappa is None or math.isnan(kappa) else kappa,
            "exact_agreement": sum(a == b for a, b in pairs) / len(pairs),
            "within_one": sum(abs(a - b) <= 1 for a, b in pairs) / len(pairs),
            "mean_difference": sum(b - a for a, b in pairs) / len(pairs),
            "confusion": {"labels": GRADES,
                          "matrix": [[int(v) for v in row] for row in confusion_matrix(h, j, labels=GRADES)]},
        }
    return out


def agreement(records: Sequence[JudgeRecord], *, criteria: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """How far repeated samples agreed (only meaningful with --judge-samples > 1)."""
    out: dict[str, Any] = {}
    for c in criteria:
        values = [r.agreement for r in records if r.criterion == c and r.agreement is not None]
        out[c] = {"n": len(values), "mean": _mean(values),
                  "unanimous_share": (sum(v == 1.0 for v in values) / len(values)) if values else None}
    return out


def _cost_totals(items: Sequence[Any]) -> dict[str, Any]:
    total = 0.0
    unknown = 0
    for r in items:
        if r.cost_usd is None:
            unknown += 1
        else:
            total += r.cost_usd
    return {"prompt_tokens": sum(r.prompt_tokens for r in items),
            "completion_tokens": sum(r.completion_tokens for r in items),
            "total_usd": total if not unknown else None, "known_usd": total, "n_unknown_cost": unknown,
            "n_cached_samples": sum(r.n_cached for r in items)}


def _case_cost(results: Iterable[CaseResult]) -> dict[str, Any]:
    results = list(results)
    known = [r.cost_usd for r in results if r.cost_usd is not None]
    unknown = len(results) - len(known)
    return {"n": len(results), "total_usd": sum(known) if not unknown else None, "known_usd": sum(known),
            "n_unknown_cost": unknown}


def baseline_comparison(results: Sequence[CaseResult], records: Sequence[JudgeRecord],
                        baseline: Sequence[CaseResult], baseline_records: Sequence[JudgeRecord],
                        pairs: Sequence[PairRecord], *, model: str | None,
                        criteria: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """Router against one fixed model, per path (the router's route of each case).

    Quality: mean of each side over the cases both sides got scored, and the paired difference
    router - baseline with its interval. Cost: both sides' totals over the path's cases
    (unknown when any case's cost is unknown). Pairwise: wins, losses and ties.
    """
    by_path: dict[str, list[CaseResult]] = {}
    for r in results:
        if r.status != "error":
            by_path.setdefault(r.route_label, []).append(r)
    base_by_id = {b.id: b for b in baseline}
    router_score = {(r.id, r.criterion): float(r.score) for r in records if r.status == "scored" and r.score is not None}
    base_score = {(r.id, r.criterion): float(r.score) for r in baseline_records
                  if r.status == "scored" and r.score is not None}
    pair_by_id = {p.id: p for p in pairs}

    def quality(ids: list[str]) -> dict[str, Any]:
        q: dict[str, Any] = {}
        for c in criteria:
            both = [(router_score[(i, c)], base_score[(i, c)]) for i in ids
                    if (i, c) in router_score and (i, c) in base_score]
            diffs = [a - b for a, b in both]
            q[c] = {"n_pairs": len(both), "router_mean": _mean([a for a, _ in both]),
                    "baseline_mean": _mean([b for _, b in both]), "difference": _mean(diffs),
                    "difference_ci95": bootstrap_ci(diffs)}
        return q

    def cost(cases: list[CaseResult]) -> dict[str, Any]:
        mine = _case_cost(cases)
        theirs = _case_cost(base_by_id[r.id] for r in cases if r.id in base_by_id)
        diff = (mine["total_usd"] - theirs["total_usd"]
                if mine["total_usd"] is not None and theirs["total_usd"] is not None else None)
        return {"router_usd": mine["total_usd"], "baseline_usd": theirs["total_usd"], "difference_usd": diff,
                "router_unknown": mine["n_unknown_cost"], "baseline_unknown": theirs["n_unknown_cost"],
                "n_baseline": theirs["n"]}

    def pairwise(ids: list[str]) -> dict[str, int] | None:
        mine = [pair_by_id[i] for i in ids if i in pair_by_id]
        if not mine:
            return None
        return {"router_wins": sum(p.winner == "router" for p in mine),
                "baseline_wins": sum(p.winner == "baseline" for p in mine),
                "ties": sum(p.winner == "tie" for p in mine),
                "unscored": sum(p.status != "scored" for p in mine), "n": len(mine)}

    per_path = {}
    for path, cases in sorted(by_path.items()):
        ids = [r.id for r in cases]
        per_path[path] = {"n": len(cases), "quality": quality(ids), "cost": cost(cases), "pairwise": pairwise(ids)}
    all_cases = [r for cases in by_path.values() for r in cases]
    all_ids = [r.id for r in all_cases]
    return {"model": model, "n_cases": len(baseline),
            "n_errors": sum(b.status == "error" for b in baseline),
            "overall": {"n": len(all_cases), "quality": quality(all_ids), "cost": cost(all_cases),
                        "pairwise": pairwise(all_ids)},
            "per_path": per_path,
            "baseline_stats": _by_criterion(list(baseline_records), criteria)}


def not_judged(results: Sequence[CaseResult]) -> dict[str, int]:
    from evalkit.judge.job import eligibility

    counts = {"route_only": 0, "router_error": 0, "empty": 0}
    for r in results:
        e = eligibility(r)
        if e in counts:
            counts[e] += 1
    return counts


def judge_summary(results: Sequence[CaseResult], records: Sequence[JudgeRecord], *,
                  settings: Any = None, baseline: Sequence[CaseResult] = (),
                  baseline_records: Sequence[JudgeRecord] = (), pairs: Sequence[PairRecord] = (),
                  baseline_model: str | None = None, criteria: Sequence[str] = CRITERIA) -> dict[str, Any]:
    """The ``judge`` section of ``summary.json``."""
    by_id = {r.id: r for r in results}
    records = [r for r in records if r.id in by_id]
    paths = _group(records, lambda r: by_id[r.id].route_label)
    per_path = {p: _by_criterion(paths[p], criteria) for p in sorted(paths)}
    cells = _group(records, lambda r: (by_id[r.id].expected_route, by_id[r.id].route_label))
    per_cell: dict[str, dict[str, Any]] = {}
    for expected, route in sorted(cells):
        per_cell.setdefault(expected, {})[route] = _by_criterion(cells[(expected, route)], criteria)
    tagged: dict[str, list[JudgeRecord]] = {}
    for r in records:
        for t in dict.fromkeys(by_id[r.id].tags):
            tagged.setdefault(t, []).append(r)
    per_tag = {t: _by_criterion(tagged[t], criteria) for t in sorted(tagged)}
    scored = sorted((r for r in records if r.status == "scored" and r.score is not None),
                    key=lambda r: (r.score, r.id, r.criterion))
    attention = [{"id": r.id, "criterion": r.criterion, "score": r.score, "rationale": r.rationale,
                  "expected": by_id[r.id].expected_route, "route": by_id[r.id].route_label}
                 for r in scored if r.score is not None and r.score <= 2][:ATTENTION_LISTED]
    problems = [{"id": r.id, "criterion": r.criterion, "status": r.status, "problem": r.problem or r.rationale,
                 "route": by_id[r.id].route_label}
                for r in records if r.status != "scored"][:ATTENTION_LISTED]
    settings = settings or {}
    out: dict[str, Any] = {
        "status": "done",
        "model": settings.get("model"),
        "samples": settings.get("samples", 1),
        "prompt_version": settings.get("prompt_version"),
        "criteria": list(criteria),
        "overall": _by_criterion(records, criteria),
        "per_path": per_path,
        "per_cell": per_cell,
        "per_tag": per_tag,
        "misroute_harm": misroute_harm(records, results, criteria=criteria),
        "agreement": agreement(records, criteria=criteria),
        "calibration": calibration(records, results, criteria=criteria),
        "not_judged": not_judged(results),
        "cost": {**_cost_totals([*records, *baseline_records, *pairs]),
                 "router_answers": _cost_totals(records), "baseline_answers": _cost_totals(baseline_records),
                 "pairwise": _cost_totals(pairs)},
        "attention": attention,
        "problems": problems,
        "n_problems": sum(r.status != "scored" for r in records),
        "baseline": None,
    }
    if baseline:
        out["baseline"] = baseline_comparison(results, records, baseline, baseline_records, pairs,
                                              model=baseline_model, criteria=criteria)
    return out
