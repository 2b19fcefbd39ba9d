"""Paired comparison of two runs (pure): is router version B better than A, or just different?

Cases are matched by id, so every figure is paired: the same prompts went through both
routers. For each metric the delta B - A comes with a paired percentile bootstrap interval
(cases resampled with replacement, the same resample for both runs, seeded so a comparison is
reproducible). McNemar's exact test on per-case route correctness says whether the cases that
flipped lean one way more than chance allows: with ``b`` cases right in A and wrong in B
(regressed) and ``c`` wrong in A and right in B (fixed), ``p = min(1, 2 * P[X <= min(b, c)])``
for ``X ~ Binomial(b + c, 1/2)``, as statsmodels' ``mcnemar(exact=True)`` computes it. Cases
that errored in either run are left out of the test (errors are not misroutes).

Judge scores are compared per path, paired by case, over the cases that took the same path in
both runs (plus all matched cases together); cost deltas are paired the same way. Both are read
defensively: a run without a judge or cost leaves its section ``None``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import Field

from evalkit import SCHEMA_VERSION
from evalkit.errors import UsageError
from evalkit.gates import missing_cases
from evalkit.records import FALLBACK, CaseResult, Document
from evalkit.metrics import rates_from_counts
from evalkit.router_config import RouterConfig, diff_configs
from evalkit.stats import bootstrap_ci, mcnemar_exact, percentile_interval, resampled_sums

DEFAULT_SEED = 0
DEFAULT_N_BOOT = 2000
DEFAULT_ALPHA = 0.05
MAX_DROP_FORM = "METRIC=DROP, e.g. --max-drop accuracy=0.02 or --max-drop recall[reasoning]=5%"
MAX_DROP_API_FORM = 'a mapping METRIC: DROP, e.g. max_drop={"accuracy": 0.02, "recall[reasoning]": "5%"}'

# +1: higher is better; -1: lower is better; 0: neither (reported, not gateable).
DIRECTIONS = {"accuracy": 1, "macro_f1": 1, "match_rate": 0, "fallback_rate": 0,
              "false_fallback_rate": -1, "false_match_rate": -1, "error_rate": -1}
TASK_DIRECTIONS = {"recall": 1, "precision": 1}


@dataclass
class RunSide:
    """What compare needs of one run (the command reads it from the run directory)."""

    run_id: str
    results: list[CaseResult]
    labels: list[str]
    suite: str = ""
    suite_hash: str = ""
    router_hash: str = ""
    target: str = ""
    path: str = ""
    summary: dict[str, Any] | None = None
    router: RouterConfig | None = None
    judge: list[dict[str, Any]] | None = None


# How the checks name each setting: the command line's options, or the Python API's arguments.
CLI_NAMES = {"alpha": "--alpha", "seed": "--seed", "n_boot": "--bootstrap", "max_drop": "--max-drop",
             "allow_incomplete": "--allow-incomplete"}
API_NAMES = {"alpha": "evalkit.compare(alpha=...)", "seed": "evalkit.compare(seed=...)",
             "n_boot": "evalkit.compare(n_boot=...)", "max_drop": "evalkit.compare(max_drop=...)",
             "allow_incomplete": "allow_incomplete=True"}
_EXAMPLES = {"alpha": "0.05", "seed": "0", "n_boot": "2000"}


def _shown(value: Any) -> str:
    """A value as the user would have typed it: ``2`` rather than ``2.0``."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def check_settings(*, alpha: Any, seed: Any, n_boot: Any, names: dict[str, str] = CLI_NAMES) -> None:
    """Refuse settings of a comparison outside their range (``UsageError``, exit 2), naming the
    option (``names``: the command line's, or the Python API's arguments) and the fix. The one
    check of ``evalkit compare`` and ``evalkit.compare()``."""
    def fail(key: str, noun: str, allowed: str, value: Any) -> None:
        where = names[key]
        fix = f"e.g. {where} {_EXAMPLES[key]}" if where.startswith("--") else \
            f"e.g. evalkit.compare(A, B, {key}={_EXAMPLES[key]})"
        raise UsageError(f"{noun} must be {allowed}", where=where, got=_shown(value), fix=fix)

    if not _is_number(alpha) or not 0 < alpha < 1:
        fail("alpha", "the significance level", "between 0 and 1 (> 0, < 1)", alpha)
    if not _is_int(seed) or seed < 0:
        fail("seed", "the seed", "zero or more (a whole number)", seed)
    if not _is_int(n_boot) or n_boot < 1:
        fail("n_boot", "the number of bootstrap resamples", "at least 1 (a whole number)", n_boot)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def parse_max_drop(values: Sequence[str] | None, *, labels: Sequence[str] | None = None) -> dict[str, float]:
    """``accuracy=0.02`` pairs (``--max-drop``), checked by ``check_max_drop``."""
    pairs: dict[str, str] = {}
    for value in values or []:
        metric, sep, amount = value.partition("=")
        metric = metric.strip()
        if not sep or not metric or not amount.strip():
            raise UsageError("malformed value", where="--max-drop", got=repr(value), fix=f"write {MAX_DROP_FORM}")
        pairs[metric] = amount.strip()
    return check_max_drop(pairs, labels=labels)


def _drop_amount(amount: Any) -> float | None:
    """A drop as a number: ``0.02``, or a percentage ``"2%"``; None when it is not a number."""
    if _is_number(amount):
        return float(amount)
    if isinstance(amount, str):
        text = amount.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def check_max_drop(drops: Mapping[str, Any] | None, *, labels: Sequence[str] | None = None,
                   names: dict[str, str] = CLI_NAMES) -> dict[str, float]:
    """Each metric's largest worsening allowed (a fraction, or a percentage string ``"5%"``),
    checked: a number from 0 to 1 (every gateable metric is a rate or a score from 0 to 1, so a
    larger drop could never fail), of a metric with a better direction, of a task of the runs
    (``labels``). ``UsageError`` (exit 2) naming the option and the fix otherwise."""
    where = names["max_drop"]
    form = MAX_DROP_FORM if where.startswith("--") else MAX_DROP_API_FORM
    out: dict[str, float] = {}
    for metric, amount in (drops or {}).items():
        got = f"{metric}={amount}" if where.startswith("--") else f"{{{metric!r}: {amount!r}}}"
        drop = _drop_amount(amount)
        if not isinstance(metric, str) or not metric.strip():
            raise UsageError("a metric name is missing", where=where, got=got, fix=f"write {form}")
        if drop is None:
            raise UsageError(f"the largest drop of {metric} is not a number", where=where, got=got,
                             fix=f"write {form}")
        if drop < 0:
            raise UsageError(f"the largest drop of {metric} must be zero or positive (the largest worsening allowed)",
                             where=where, got=got, fix=f"write {form}")
        if metric_direction(metric) == 0:
            gateable = [m for m, d in DIRECTIONS.items() if d] + ["recall[TASK]", "precision[TASK]"]
            raise UsageError(f"'{metric}' has no better direction to drop from", where=where, got=got,
                             fix=f"use one of: {', '.join(gateable)}")
        task = _task_of(metric)
        if task is not None and labels is not None and task not in labels:
            raise UsageError(f"unknown task '{task}' in {metric}", where=where, got=got,
                             fix=f"the runs' tasks are: {', '.join(labels)}")
        if drop > 1:
            raise UsageError(f"a drop of {drop:g} is more than {metric} can drop: it runs from 0 to 1 (0% to 100%), "
                             "so the check could never fail", where=where, got=got,
                             fix=f"write the drop as a fraction up to 1 or a percentage up to 100%: {form}")
        out[metric] = drop
    return out


def _task_of(metric: str) -> str | None:
    if metric.endswith("]") and "[" in metric:
        return metric[metric.index("[") + 1:-1]
    return None


def metric_direction(metric: str) -> int:
    task = _task_of(metric)
    if task is not None:
        return TASK_DIRECTIONS.get(metric[: metric.index("[")], 0)
    return DIRECTIONS.get(metric, 0)


def _columns(results: Sequence[CaseResult], labels: Sequence[str]) -> tuple[dict[str, int], np.ndarray]:
    """Per-case indicator columns of one run (cases x columns) and their names: the counts of
    ``metrics.rates_from_counts``, one per case.

    Every metric is a ratio of sums of these columns, so the sums of a bootstrap resample turn
    into all metrics at once.
    """
    exp = np.array([r.expected_route for r in results], dtype=object)
    route = np.array([r.route_label for r in results], dtype=object)
    scored = np.array([r.scored for r in results], dtype=bool)
    tasks = [lab for lab in labels if lab != FALLBACK]
    correct = scored & (exp == route)
    to_task = scored & np.isin(route, tasks)
    to_fb = scored & (route == FALLBACK)
    cols: dict[str, np.ndarray] = {
        "all": np.ones(len(results), dtype=bool), "scored": scored, "error": ~scored, "correct": correct,
        "to_task": to_task, "to_fb": to_fb,
        "expect_task": scored & (exp != FALLBACK), "false_fb": to_fb & (exp != FALLBACK),
        "expect_fb": scored & (exp == FALLBACK), "false_match": to_task & (exp == FALLBACK),
    }
    for lab in labels:
        cols[f"tp:{lab}"] = correct & (exp == lab)
        cols[f"support:{lab}"] = scored & (exp == lab)
        cols[f"predicted:{lab}"] = scored & (route == lab)
    names = {name: i for i, name in enumerate(cols)}
    return names, np.column_stack([c.astype(float) for c in cols.values()])


def _metrics_from_sums(sums: np.ndarray, names: dict[str, int], labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Every metric (``metrics.rates_from_counts``), one value per row of ``sums`` (resamples x
    columns), NaN where undefined."""
    rates = rates_from_counts({name: sums[:, i] for name, i in names.items()}, labels)
    return {name: np.where(den > 0, value, np.nan) for name, (value, den) in rates.items()}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def metric_deltas(a: Sequence[CaseResult], b: Sequence[CaseResult], *, labels: Sequence[str],
                  seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_N_BOOT) -> list[dict[str, Any]]:
    """Each metric on A and B over the same (matched, same-order) cases, with the delta's paired
    bootstrap 95% interval (the same resampled cases for both runs)."""
    names, ma = _columns(a, labels)
    _, mb = _columns(b, labels)
    point_a = _metrics_from_sums(ma.sum(axis=0, keepdims=True), names, labels)
    point_b = _metrics_from_sums(mb.sum(axis=0, keepdims=True), names, labels)
    diffs: dict[str, np.ndarray] = {}
    if n_boot > 0 and len(a):
        # Both runs' columns side by side: each resample draws the same cases for A and B.
        sums = resampled_sums(np.random.default_rng(seed), np.hstack([ma, mb]), n_boot)
        ra = _metrics_from_sums(sums[:, : ma.shape[1]], names, labels)
        rb = _metrics_from_sums(sums[:, ma.shape[1]:], names, labels)
        diffs = {name: rb[name] - ra[name] for name in ra}
    rows = []
    for name in point_a:
        va, vb = float(point_a[name][0]), float(point_b[name][0])
        if math.isnan(va) and math.isnan(vb):
            continue  # e.g. recall of a task with no cases in either run
        delta = None if (math.isnan(va) or math.isnan(vb)) else vb - va
        ci = percentile_interval(diffs[name]) if delta is not None and name in diffs else None
        rows.append({"metric": name, "a": _num(va), "b": _num(vb), "delta": delta, "ci95": ci,
                     "direction": metric_direction(name)})
    return rows


def _paired_mean_delta(pairs: Sequence[tuple[float, float]], *, seed: int, n_boot: int) -> dict[str, Any]:
    arr = np.asarray(pairs, dtype=float)
    diffs = arr[:, 1] - arr[:, 0]
    ci = bootstrap_ci(diffs, seed=seed, resamples=n_boot) if n_boot > 0 and len(diffs) > 1 else None
    return {"n": len(diffs), "a_mean": float(arr[:, 0].mean()), "b_mean": float(arr[:, 1].mean()),
            "delta": float(diffs.mean()), "ci95": ci}


def judge_deltas(a: RunSide, b: RunSide, ids: Sequence[str], routes: dict[str, tuple[str, str]], *,
                 seed: int, n_boot: int) -> dict[str, Any] | None:
    """Per-path judge score deltas, paired by case (judge.jsonl of both runs), else unpaired from
    the summaries' ``judge`` sections; ``None`` when neither run was judged."""
    if a.judge and b.judge:
        def scores(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
            out = {}
            for rec in records:
                score = rec.get("score")
                if isinstance(score, (int, float)) and not isinstance(score, bool) and rec.get("id") is not None:
                    out[(str(rec["id"]), str(rec.get("criterion")))] = float(score)
            return out

        sa, sb = scores(a.judge), scores(b.judge)
        criteria = sorted({c for _, c in sa} & {c for _, c in sb})
        per_path: dict[str, dict[str, Any]] = {}
        overall: dict[str, Any] = {}
        for crit in criteria:
            groups: dict[str, list[tuple[float, float]]] = {}
            everything: list[tuple[float, float]] = []
            for cid in ids:
                if (cid, crit) in sa and (cid, crit) in sb:
                    pair = (sa[(cid, crit)], sb[(cid, crit)])
                    everything.append(pair)
                    ra, rb = routes[cid]
                    if ra == rb:
                        groups.setdefault(ra, []).append(pair)
            if everything:
                overall[crit] = _paired_mean_delta(everything, seed=seed, n_boot=n_boot)
            for path, pairs in groups.items():
                per_path.setdefault(path, {})[crit] = _paired_mean_delta(pairs, seed=seed, n_boot=n_boot)
        if overall:
            return {"paired": True, "overall": overall, "per_path": dict(sorted(per_path.items()))}
    ja = (a.summary or {}).get("judge") or {}
    jb = (b.summary or {}).get("judge") or {}
    pa, pb = ja.get("per_path") or {}, jb.get("per_path") or {}
    if not (pa or pb):
        return None
    per_path = {}
    for path in sorted(set(pa) | set(pb)):
        for crit in sorted(set(pa.get(path, {})) | set(pb.get(path, {}))):
            ea, eb = (pa.get(path) or {}).get(crit) or {}, (pb.get(path) or {}).get(crit) or {}
            ma, mb = _num(ea.get("mean")), _num(eb.get("mean"))
            per_path.setdefault(path, {})[crit] = {
                "n": None, "a_n": ea.get("n"), "b_n": eb.get("n"), "a_mean": ma, "b_mean": mb,
                "delta": (mb - ma) if ma is not None and mb is not None else None, "ci95": None}
    return {"paired": False, "overall": {}, "per_path": per_path}


def cost_deltas(a_results: Sequence[CaseResult], b_results: Sequence[CaseResult], *, seed: int,
                n_boot: int) -> dict[str, Any] | None:
    """Paired cost per case (both costs known), in total and per path (same path in both runs)."""
    pairs: list[tuple[float, float]] = []
    per_path: dict[str, list[tuple[float, float]]] = {}
    for ra, rb in zip(a_results, b_results):
        if ra.cost_usd is None or rb.cost_usd is None:
            continue
        pairs.append((ra.cost_usd, rb.cost_usd))
        path_a, path_b = ra.route_label if ra.scored else None, rb.route_label if rb.scored else None
        if path_a is not None and path_a == path_b:
            per_path.setdefault(path_a, []).append((ra.cost_usd, rb.cost_usd))
    if not pairs:
        return None
    total = _paired_mean_delta(pairs, seed=seed, n_boot=n_boot)
    total.update(a_total_usd=float(sum(p[0] for p in pairs)), b_total_usd=float(sum(p[1] for p in pairs)))
    total["delta_total_usd"] = total["b_total_usd"] - total["a_total_usd"]
    paths = {}
    for path, pp in sorted(per_path.items()):
        entry = _paired_mean_delta(pp, seed=seed, n_boot=n_boot)
        entry.update(a_total_usd=float(sum(p[0] for p in pp)), b_total_usd=float(sum(p[1] for p in pp)))
        paths[path] = entry
    return {"overall": total, "per_path": paths}


def _flip(ra: CaseResult, rb: CaseResult) -> dict[str, Any]:
    return {"id": rb.id, "prompt": rb.prompt or ra.prompt, "expected_route": rb.expected_route,
            "route_a": ra.route_label, "route_b": rb.route_label, "tags": list(rb.tags),
            "session": rb.session, "turn": rb.turn}


def compare_runs(a: RunSide, b: RunSide, *, seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_N_BOOT,
                 alpha: float = DEFAULT_ALPHA, max_drop: dict[str, float] | None = None,
                 fail_on_significant_regression: bool = True, allow_incomplete: bool = False) -> dict[str, Any]:
    """The paired comparison of run A (before) and run B (after), as diff.json holds it.

    An incomplete run (cases planned without a result) fails the comparison's checks, saying which
    run and how many cases are missing, unless ``allow_incomplete``: deltas over part of a suite
    do not stand for it (as ``evalkit gate`` fails every gate of an incomplete run)."""
    by_a = {r.id: r for r in a.results}
    by_b = {r.id: r for r in b.results}
    ids = [cid for cid in by_a if cid in by_b]
    if not ids:
        _nothing_to_compare(a, b)
    only_a = [cid for cid in by_a if cid not in by_b]
    only_b = [cid for cid in by_b if cid not in by_a]
    warnings = []
    if a.suite != b.suite:
        warnings.append(f"the runs are of different suites (A: {a.suite}, B: {b.suite}); "
                        f"only the {len(ids)} cases with the same id are compared")
    warnings.extend(_coverage_warnings(a, b, only_a, only_b, len(ids), allow_incomplete=allow_incomplete))
    reworded = [cid for cid in ids if by_a[cid].prompt != by_b[cid].prompt]
    if reworded:
        warnings.append(f"the suites differ: {len(reworded)} matched cases have a different prompt in A and B "
                        f"(e.g. {reworded[0]})")
    relabelled = [cid for cid in ids if by_a[cid].expected_route != by_b[cid].expected_route]
    if relabelled:
        warnings.append(f"{len(relabelled)} matched cases have a different expected route in A and B "
                        f"(e.g. {relabelled[0]}); each run is scored against its own label")
    ra = [by_a[cid] for cid in ids]
    rb = [by_b[cid] for cid in ids]
    labels = list(dict.fromkeys([*[x for x in a.labels if x != FALLBACK], *[x for x in b.labels if x != FALLBACK], FALLBACK]))

    metrics = metric_deltas(ra, rb, labels=labels, seed=seed, n_boot=n_boot)

    both = [(x, y) for x, y in zip(ra, rb) if x.scored and y.scored]
    regressed, fixed, changed = _flips(both, labels)
    both_correct = sum(1 for x, y in both if x.correct and y.correct)
    both_wrong = sum(1 for x, y in both if not x.correct and not y.correct)
    p = mcnemar_exact(len(regressed), len(fixed))
    mcnemar = {
        "table": [[both_correct, len(regressed)], [len(fixed), both_wrong]],
        "regressed": len(regressed), "fixed": len(fixed), "both_correct": both_correct, "both_wrong": both_wrong,
        "n": len(both), "excluded_errors": len(ids) - len(both), "p_value": p, "alpha": alpha,
        "significant": p < alpha,
    }
    significant_regression = p < alpha and len(regressed) > len(fixed)
    significant_improvement = p < alpha and len(fixed) > len(regressed)

    routes = {cid: (x.route_label, y.route_label) for cid, x, y in zip(ids, ra, rb)}
    judge = judge_deltas(a, b, ids, routes, seed=seed, n_boot=n_boot)
    cost = cost_deltas(ra, rb, seed=seed, n_boot=n_boot)
    config = diff_configs(a.router, b.router) if a.router is not None and b.router is not None else None

    by_metric = {m["metric"]: m for m in metrics}
    checks = _drop_checks(max_drop or {}, by_metric)
    if not allow_incomplete:
        checks.extend(_completeness_checks(a, b))
    if fail_on_significant_regression:
        checks.append({"check": "no significant regression", "metric": "mcnemar", "max_drop": None, "delta": None,
                       "passed": not significant_regression,
                       "message": (f"Significant regression {'found' if significant_regression else 'not found'}: "
                                   f"{len(regressed)} regressed vs {len(fixed)} fixed, McNemar exact p={p:.4g} "
                                   f"(alpha {alpha:g})")})
    failed = any(not c["passed"] for c in checks)
    return {
        "schema_version": SCHEMA_VERSION,
        "a": _side_info(a), "b": _side_info(b),
        "warnings": warnings,
        "n_matched": len(ids), "only_in_a": only_a, "only_in_b": only_b,
        "labels": labels,
        "metrics": metrics,
        "mcnemar": mcnemar,
        "fixed": fixed, "regressed": regressed, "changed": changed,
        "judge": judge, "cost": cost, "config": config,
        "checks": checks,
        "verdict": {"significant_regression": significant_regression,
                    "significant_improvement": significant_improvement,
                    "failed": failed},
        "settings": {"seed": seed, "n_boot": n_boot, "alpha": alpha, "bootstrap": "paired percentile",
                     "allow_incomplete": allow_incomplete},
    }


def _drop_checks(max_drop: dict[str, float], by_metric: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A check per ``max_drop`` metric: passed when its point delta worsens by no more than the drop."""
    checks = []
    for metric, drop in (max_drop or {}).items():
        row = by_metric.get(metric)
        direction = metric_direction(metric)
        delta = row["delta"] if row else None
        worsening = None if delta is None else -delta * direction
        passed = worsening is not None and worsening <= drop + 1e-12
        word = "drop" if direction > 0 else "rise"
        shown = "no value in both runs" if delta is None else (
            f"{row['a']:.3f} -> {row['b']:.3f} ({delta:+.3f}; 95% CI {row['ci95'][0]:+.3f} to {row['ci95'][1]:+.3f})"  # type: ignore[index]
            if row["ci95"] else f"{row['a']:.3f} -> {row['b']:.3f} ({delta:+.3f})")  # type: ignore[index]
        checks.append({"check": f"max-{word} {metric}={drop:g}", "metric": metric, "max_drop": drop, "delta": delta,
                       "passed": passed,
                       "message": f"Max {word} of {metric} ({drop:g}) {'passed' if passed else 'failed'}: {shown}"})
    return checks


RESUME_FIX = ("finish it with `evalkit run SUITE --resume {path}` (or merge every shard) and compare again, "
              "or pass --allow-incomplete (allow_incomplete=True in Python) to compare the cases both runs have")


def _missing(side: RunSide) -> tuple[int, int]:
    """(cases without a result, cases planned) of one run: its summary's run section; a run with
    no result at all is missing every planned case, whatever its summary says."""
    missing, planned = missing_cases(side.summary or {})
    if not side.results and planned:
        missing = planned
    return missing, planned


def _completeness_checks(a: RunSide, b: RunSide) -> list[dict[str, Any]]:
    """A failed check per incomplete run: which run, how many of its planned cases have no result,
    how to finish it."""
    checks = []
    for name, side in (("A", a), ("B", b)):
        missing, planned = _missing(side)
        if missing:
            checks.append({"check": f"run {name} complete", "metric": "completeness", "max_drop": None,
                           "delta": None, "passed": False,
                           "message": (f"Run {name} ({side.run_id}) is incomplete: {missing} of {planned} planned cases "
                                       f"have no result, so the comparison covers part of the suite; "
                                       + RESUME_FIX.format(path=side.path or "RUN_DIR"))})
    return checks


def _nothing_to_compare(a: RunSide, b: RunSide) -> None:
    """No case id in both runs: nothing to compare (exit 2, no check can say anything). Runs of
    the same suite share no case because one of them has no result (an unreachable router), so
    that run is named, incomplete, with how to finish it; otherwise the suites differ."""
    same_suite = (bool(a.suite_hash) and a.suite_hash == b.suite_hash) or (bool(a.suite) and a.suite == b.suite)
    empty = [(name, side) for name, side in (("A", a), ("B", b)) if not side.results or _missing(side)[0]]
    if same_suite and empty:
        name, side = empty[-1]
        missing, planned = _missing(side)
        has = f"no result (0 of {planned} planned cases)" if not side.results else \
            f"results for none of the other run's cases ({missing} of {planned} planned cases have no result)"
        raise UsageError(f"run {name} is incomplete: it has {has}, so the two runs of suite '{side.suite}' "
                         "have no case to compare", where=side.path or f"run {name}",
                         got=f"{len(a.results)} results in A ({a.run_id}), {len(b.results)} in B ({b.run_id})",
                         fix=f"finish it with `evalkit run SUITE --resume {side.path or 'RUN_DIR'}` once the router "
                             "answers (or merge every shard), then compare again")
    raise UsageError("the two runs share no case id: nothing to compare", where=f"{a.path} vs {b.path}",
                     got=f"{len(a.results)} cases in A ({a.suite}), {len(b.results)} in B ({b.suite})",
                     fix="compare two runs of the same suite (cases are matched by id)")


def _coverage_warnings(a: RunSide, b: RunSide, only_a: Sequence[str], only_b: Sequence[str], n_matched: int, *,
                       allow_incomplete: bool = False) -> list[str]:
    """Why cases are left out: a run of the same suite without a result for some of them (stopped
    early, cut short) is incomplete; runs of different suites have different cases."""
    same_suite = bool(a.suite_hash) and a.suite_hash == b.suite_hash
    warnings = []
    for name, side, lacking in (("A", a, only_b), ("B", b, only_a)):
        missing, planned = _missing(side)
        if missing:
            warnings.append(f"run {name} is incomplete: {missing} of {planned} planned cases have no result; "
                            f"the comparison covers the {n_matched} cases both have"
                            + (" (compared anyway: --allow-incomplete)" if allow_incomplete else ""))
        elif same_suite and lacking:
            warnings.append(f"run {name} has no result for {len(lacking)} cases of the other run of the same suite "
                            f"(a shard?); the comparison covers the {n_matched} cases both have")
    if not same_suite and (only_a or only_b):
        warnings.append(f"the suites differ: {len(only_a)} cases only in A and {len(only_b)} only in B are left out; "
                        f"{n_matched} cases with the same id are compared")
    return warnings


def _flips(both: list[tuple[CaseResult, CaseResult]], labels: Sequence[str]) -> tuple[list[dict[str, Any]], ...]:
    """The regressed, fixed and "still wrong, different route" cases of the pairs scored in both
    runs, each by expected task (in the routers' order, fallback last), then case id: not in the
    order the cases happened to complete."""
    order = {label: i for i, label in enumerate(labels)}

    def listed(flips: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(flips, key=lambda f: (order.get(f["expected_route"], len(order)), f["expected_route"],
                                            _natural(f["id"])))

    return (listed([_flip(x, y) for x, y in both if x.correct and not y.correct]),
            listed([_flip(x, y) for x, y in both if not x.correct and y.correct]),
            listed([_flip(x, y) for x, y in both
                    if not x.correct and not y.correct and x.route_label != y.route_label]))


def _natural(text: str) -> tuple[Any, ...]:
    """A sort key that puts ``qa-9`` before ``qa-10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def _side_info(side: RunSide) -> dict[str, Any]:
    return {"run_id": side.run_id, "path": side.path, "suite": side.suite, "suite_hash": side.suite_hash,
            "router_hash": side.router_hash, "target": side.target, "n_cases": len(side.results),
            "has_router_config": side.router is not None}


# -- diff.json, typed ------------------------------------------------------------------------------

class SideInfo(Document):
    """One of the two runs compared."""

    run_id: str
    path: str = ""
    suite: str = ""
    suite_hash: str = ""
    router_hash: str = ""
    target: str = ""
    n_cases: int = 0
    has_router_config: bool = False


class MetricDelta(Document):
    """A metric on A and B over the matched cases, the delta B - A and its paired bootstrap 95% interval."""

    metric: str
    a: float | None = None
    b: float | None = None
    delta: float | None = None
    ci95: list[float] | None = None
    direction: int = 0  # +1 higher is better, -1 lower is better, 0 neither


class McNemar(Document):
    """McNemar's exact test on per-case route correctness (cases that errored in either run left out)."""

    table: list[list[int]]
    regressed: int
    fixed: int
    both_correct: int
    both_wrong: int
    n: int
    excluded_errors: int = 0
    p_value: float
    alpha: float
    significant: bool


class Flip(Document):
    """A case whose routing changed between A and B."""

    id: str
    prompt: str = ""
    expected_route: str
    route_a: str
    route_b: str
    tags: list[str] = Field(default_factory=list)
    session: str | None = None
    turn: int | None = None


class MeanDelta(Document):
    """A paired mean difference B - A (``n`` None: unpaired, from the summaries, with ``a_n``/``b_n``)."""

    n: int | None = None
    a_n: int | None = None
    b_n: int | None = None
    a_mean: float | None = None
    b_mean: float | None = None
    delta: float | None = None
    ci95: list[float] | None = None


class JudgeDeltas(Document):
    paired: bool
    overall: dict[str, MeanDelta] = Field(default_factory=dict)
    per_path: dict[str, dict[str, MeanDelta]] = Field(default_factory=dict)


class CostDelta(MeanDelta):
    a_total_usd: float = 0.0
    b_total_usd: float = 0.0


class CostDeltas(Document):
    overall: CostDelta
    per_path: dict[str, CostDelta] = Field(default_factory=dict)


class Check(Document):
    """A regression check (``--max-drop``, McNemar's "no significant regression") and its verdict."""

    check: str
    metric: str
    max_drop: float | None = None
    delta: float | None = None
    passed: bool
    message: str


class CompareVerdict(Document):
    significant_regression: bool
    significant_improvement: bool
    failed: bool


class Comparison(Document):
    """``diff.json``: the paired comparison of run A (before) and run B (after).

    In Python, ``fixed`` and ``regressed`` are the case ids that B fixed and broke, and
    ``mcnemar_p`` the exact McNemar p-value; ``fixed_cases`` / ``regressed_cases`` hold the
    details (stored under ``fixed`` / ``regressed`` in diff.json), ``metrics`` every delta with its
    interval. ``config`` is the router config diff (``router_config.diff_configs``), when both runs
    kept their router.json.
    """

    schema_version: int = SCHEMA_VERSION
    a: SideInfo
    b: SideInfo
    warnings: list[str] = Field(default_factory=list)
    n_matched: int
    only_in_a: list[str] = Field(default_factory=list)
    only_in_b: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    metrics: list[MetricDelta] = Field(default_factory=list)
    mcnemar: McNemar
    fixed_cases: list[Flip] = Field(default_factory=list, alias="fixed")
    regressed_cases: list[Flip] = Field(default_factory=list, alias="regressed")
    changed: list[Flip] = Field(default_factory=list)
    judge: JudgeDeltas | None = None
    cost: CostDeltas | None = None
    config: dict[str, Any] | None = None
    checks: list[Check] = Field(default_factory=list)
    verdict: CompareVerdict
    settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def fixed(self) -> list[str]:
        """Ids of the cases routed wrong in A and right in B."""
        return [f.id for f in self.fixed_cases]

    @property
    def regressed(self) -> list[str]:
        """Ids of the cases routed right in A and wrong in B."""
        return [f.id for f in self.regressed_cases]

    @property
    def mcnemar_p(self) -> float:
        return self.mcnemar.p_value

    @property
    def failed(self) -> bool:
        """A check failed (``--max-drop``, or a significant regression): ``evalkit compare`` exits 1."""
        return self.verdict.failed

    def metric(self, name: str) -> MetricDelta | None:
        """The delta of one metric by its summary.json name (``accuracy``, ``recall[reasoning]``)."""
        return next((m for m in self.metrics if m.metric == name), None)


__all__ = ["Comparison", "MetricDelta", "RunSide", "compare_runs", "metric_deltas", "mcnemar_exact", "parse_max_drop",
           "check_max_drop", "check_settings", "judge_deltas", "cost_deltas", "metric_direction"]
