"""Paired comparison of two runs: McNemar, bootstrap intervals, flips, judge/cost deltas, config diff,
and `evalkit compare` / `evalkit run --baseline` on the local router."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from evalkit.comparison import RunSide, compare_runs, mcnemar_exact, parse_max_drop
from evalkit.errors import UsageError
from evalkit.router_config import diff_configs, parse_router_config
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli
from tests.run_helpers import bundled_router, make_run, result, slice_suite, worse_router

LABELS = ["classify", "customer-qa", "reasoning", "fallback"]


def side(results, run_id="a", **kw) -> RunSide:
    return RunSide(run_id=run_id, results=list(results), labels=LABELS, suite=kw.pop("suite", "demo"), **kw)


def paired_results(pattern: list[tuple[bool, bool]]):
    """Runs A and B over the same classify cases: (A right?, B right?) per case."""
    a = [result(f"c{i}", "classify", "classify" if ra else "fallback") for i, (ra, _) in enumerate(pattern)]
    b = [result(f"c{i}", "classify", "classify" if rb else "customer-qa") for i, (_, rb) in enumerate(pattern)]
    return a, b


@pytest.mark.parametrize("table", [
    [[10, 0], [0, 5]], [[30, 7], [2, 11]], [[91, 50], [11, 100]], [[5, 1], [9, 0]], [[0, 13], [13, 0]],
    [[100, 0], [6, 3]], [[1, 21], [40, 2]],
])
def test_mcnemar_agrees_with_statsmodels(table):
    expected = mcnemar(np.array(table), exact=True).pvalue
    assert mcnemar_exact(table[0][1], table[1][0]) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_compare_counts_flips_and_runs_mcnemar_on_the_2x2_table():
    pattern = [(True, True)] * 30 + [(True, False)] * 9 + [(False, True)] * 2 + [(False, False)] * 9
    a, b = paired_results(pattern)
    diff = compare_runs(side(a), side(b, "b"))
    mc = diff["mcnemar"]
    assert mc["table"] == [[30, 9], [2, 9]]
    assert mc["p_value"] == pytest.approx(mcnemar(np.array([[30, 9], [2, 9]]), exact=True).pvalue)
    assert mc["significant"] is False  # p = 0.065
    assert [r["id"] for r in diff["regressed"]] == [f"c{i}" for i in range(30, 39)]
    assert [r["id"] for r in diff["fixed"]] == ["c39", "c40"]
    assert diff["regressed"][0] == {"id": "c30", "prompt": "prompt of c30", "expected_route": "classify",
                                    "route_a": "classify", "route_b": "customer-qa", "tags": [], "session": None, "turn": None}
    # Both wrong, with different routes (fallback in A, customer-qa in B).
    assert len(diff["changed"]) == 9
    acc = next(m for m in diff["metrics"] if m["metric"] == "accuracy")
    assert (acc["a"], acc["b"]) == (pytest.approx(39 / 50), pytest.approx(32 / 50))
    assert acc["delta"] == pytest.approx(-7 / 50)
    assert diff["verdict"] == {"significant_regression": False, "significant_improvement": False, "failed": False}


def test_significant_regression_fails_by_default_and_can_be_switched_off():
    a, b = paired_results([(True, True)] * 20 + [(True, False)] * 12 + [(False, True)] * 1)
    diff = compare_runs(side(a), side(b, "b"))
    assert diff["mcnemar"]["p_value"] == pytest.approx(mcnemar(np.array([[20, 12], [1, 0]]), exact=True).pvalue)
    assert diff["verdict"]["significant_regression"] and diff["verdict"]["failed"]
    relaxed = compare_runs(side(a), side(b, "b"), fail_on_significant_regression=False)
    assert relaxed["verdict"]["significant_regression"] and not relaxed["verdict"]["failed"]
    improved = compare_runs(side(b), side(a, "b"))
    assert improved["verdict"]["significant_improvement"] and not improved["verdict"]["failed"]


def test_bootstrap_is_seeded_and_matches_the_normal_approximation():
    rng = np.random.default_rng(7)
    pattern = [tuple(x) for x in rng.random((400, 2)) < [0.8, 0.7]]
    a, b = paired_results(pattern)
    one = compare_runs(side(a), side(b, "b"), seed=3)
    again = compare_runs(side(a), side(b, "b"), seed=3)
    other = compare_runs(side(a), side(b, "b"), seed=4)
    ci = next(m for m in one["metrics"] if m["metric"] == "accuracy")["ci95"]
    assert ci == next(m for m in again["metrics"] if m["metric"] == "accuracy")["ci95"]
    assert ci != next(m for m in other["metrics"] if m["metric"] == "accuracy")["ci95"]
    # Independent check: the paired difference of two Bernoulli columns, normal approximation.
    d = np.array([int(rb) - int(ra) for ra, rb in pattern], dtype=float)
    half = 1.959964 * d.std(ddof=1) / np.sqrt(len(d))
    assert ci[0] == pytest.approx(d.mean() - half, abs=0.012)
    assert ci[1] == pytest.approx(d.mean() + half, abs=0.012)


def test_rates_and_macro_f1_match_the_run_summaries():
    """Deltas are computed on matched cases; with identical case sets they equal the summary figures."""
    from evalkit.metrics import routing_metrics

    a = [result("1", "classify", "classify"), result("2", "classify", "fallback"), result("3", "fallback", "reasoning"),
         result("4", "reasoning", "reasoning"), result("5", "customer-qa", None), result("6", "customer-qa", None, status="error")]
    b = [result("1", "classify", "customer-qa"), result("2", "classify", "classify"), result("3", "fallback", "fallback"),
         result("4", "reasoning", "fallback"), result("5", "customer-qa", "customer-qa"), result("6", "customer-qa", "customer-qa")]
    diff = compare_runs(side(a), side(b, "b"), n_boot=200)
    got = {m["metric"]: m for m in diff["metrics"]}
    sa, sb = routing_metrics(a, labels=LABELS), routing_metrics(b, labels=LABELS)
    for name in ("accuracy", "macro_f1", "match_rate", "fallback_rate", "false_fallback_rate", "false_match_rate", "error_rate"):
        assert got[name]["a"] == pytest.approx(sa[name]), name
        assert got[name]["b"] == pytest.approx(sb[name]), name
    assert got["recall[classify]"]["a"] == pytest.approx(0.5)
    assert diff["mcnemar"]["excluded_errors"] == 1


def test_cases_are_matched_by_id_with_warnings_and_nothing_matching_is_an_error():
    a = [result("x1", "classify", "classify"), result("x2", "classify", "classify"), result("only-a", "classify", "classify")]
    b = [result("x2", "classify", "classify", prompt="reworded"), result("x1", "classify", "classify"),
         result("only-b", "classify", "classify")]
    diff = compare_runs(side(a), side(b, "b"))
    assert diff["n_matched"] == 2 and diff["only_in_a"] == ["only-a"] and diff["only_in_b"] == ["only-b"]
    assert any("1 cases only in A and 1 only in B" in w for w in diff["warnings"])
    assert any("different prompt" in w and "x2" in w for w in diff["warnings"])
    other = compare_runs(side(a), side(b, "b", suite="other"))
    assert any("different suites" in w for w in other["warnings"])
    with pytest.raises(UsageError, match="share no case id"):
        compare_runs(side(a), side([result("zzz", "classify", "classify")], "b"))


def test_judge_scores_are_paired_per_path():
    a = [result("1", "classify", "classify"), result("2", "classify", "classify"), result("3", "reasoning", "reasoning"),
         result("4", "reasoning", "customer-qa")]
    b = [result("1", "classify", "classify"), result("2", "classify", "classify"), result("3", "reasoning", "reasoning"),
         result("4", "reasoning", "reasoning")]
    ja = [{"id": "1", "criterion": "correctness", "score": 3}, {"id": "2", "criterion": "correctness", "score": 4},
          {"id": "3", "criterion": "correctness", "score": 2}, {"id": "4", "criterion": "correctness", "score": 1},
          {"id": "3", "criterion": "completeness", "score": None}]
    jb = [{"id": "1", "criterion": "correctness", "score": 5}, {"id": "2", "criterion": "correctness", "score": 4},
          {"id": "3", "criterion": "correctness", "score": 4}, {"id": "4", "criterion": "correctness", "score": 5},
          {"id": "3", "criterion": "completeness", "score": 4}]
    diff = compare_runs(side(a, judge=ja), side(b, "b", judge=jb), n_boot=300)
    judge = diff["judge"]
    assert judge["paired"] is True
    classify = judge["per_path"]["classify"]["correctness"]
    assert (classify["n"], classify["a_mean"], classify["b_mean"], classify["delta"]) == (2, 3.5, 4.5, 1.0)
    reasoning = judge["per_path"]["reasoning"]["correctness"]  # case 4 changed path: only case 3 counts
    assert (reasoning["n"], reasoning["delta"]) == (1, 2.0)
    overall = judge["overall"]["correctness"]
    assert (overall["n"], overall["delta"]) == (4, pytest.approx((2 + 0 + 2 + 4) / 4))
    assert "completeness" not in judge["overall"]  # unscored in A
    assert compare_runs(side(a), side(b, "b"))["judge"] is None


def test_judge_falls_back_to_unpaired_summary_figures():
    a = [result("1", "classify", "classify")]
    sa = {"judge": {"per_path": {"classify": {"correctness": {"mean": 3.0, "ci95": [2, 4], "n": 10}}}}}
    sb = {"judge": {"per_path": {"classify": {"correctness": {"mean": 3.5, "ci95": [3, 4], "n": 12}}}}}
    diff = compare_runs(side(a, summary=sa), side(a, "b", summary=sb))
    entry = diff["judge"]["per_path"]["classify"]["correctness"]
    assert diff["judge"]["paired"] is False and entry["delta"] == pytest.approx(0.5)


def test_cost_deltas_are_paired_and_skip_unknown_costs():
    a = [result("1", "classify", "classify", cost_usd=0.001), result("2", "reasoning", "reasoning", cost_usd=0.010),
         result("3", "classify", "classify", cost_usd=None)]
    b = [result("1", "classify", "classify", cost_usd=0.002), result("2", "reasoning", "classify", cost_usd=0.002),
         result("3", "classify", "classify", cost_usd=0.004)]
    cost = compare_runs(side(a), side(b, "b"), n_boot=100)["cost"]
    assert cost["overall"]["n"] == 2
    assert cost["overall"]["a_total_usd"] == pytest.approx(0.011)
    assert cost["overall"]["b_total_usd"] == pytest.approx(0.004)
    assert cost["overall"]["delta"] == pytest.approx((0.001 - 0.008) / 2)
    assert list(cost["per_path"]) == ["classify"]  # case 2 changed path
    assert compare_runs(side([result("1", "classify", "classify")]), side([result("1", "classify", "classify")], "b"))["cost"] is None


def test_max_drop_checks():
    a, b = paired_results([(True, True)] * 45 + [(True, False)] * 3 + [(False, True)] * 2)
    drops = parse_max_drop(["accuracy=0.01", "recall[classify]=5%", "error_rate=0"], labels=LABELS)
    assert drops == {"accuracy": 0.01, "recall[classify]": 0.05, "error_rate": 0.0}
    diff = compare_runs(side(a), side(b, "b"), max_drop=drops)
    checks = {c["metric"]: c for c in diff["checks"]}
    assert not checks["accuracy"]["passed"]  # dropped 0.02
    assert "Max drop of accuracy (0.01) failed: 0.960 -> 0.940 (-0.020" in checks["accuracy"]["message"]
    assert checks["recall[classify]"]["passed"] and checks["error_rate"]["passed"]
    assert checks["mcnemar"]["passed"] and diff["verdict"]["failed"]
    for bad, needle in (("accuracy", "METRIC=DROP"), ("accuracy=lots", "number"), ("accuracy=-1", "positive"),
                        ("fallback_rate=0.1", "no better direction"), ("recall[billing]=0.1", "unknown task")):
        with pytest.raises(UsageError, match=needle):
            parse_max_drop([bad], labels=LABELS)


def test_diff_configs_names_what_changed():
    base = json.loads(json.dumps(TUTORIAL_ROUTER))
    changed = json.loads(json.dumps(TUTORIAL_ROUTER))
    changed["policies"][0]["custom_task"]["description"] = "Classify a support ticket into billing, bug or account."
    changed["policies"][1]["models"] = ["llama3.3-70b-instruct", "openai-gpt-oss-20b"]
    changed["policies"][1]["selection_policy"] = {"prefer": "fastest"}
    del changed["policies"][2]
    changed["policies"].append({"custom_task": {"name": "code", "description": "Write or fix code."}, "models": ["openai-gpt-5"]})
    changed["fallback_models"] = ["openai-gpt-oss-20b"]
    a, b = parse_router_config(base), parse_router_config(changed)
    d = diff_configs(a, b)
    assert d["changed"] and d["a_hash"] == a.hash and d["b_hash"] == b.hash
    tasks = {t["task"]: t for t in d["tasks"]}
    assert set(tasks) == {"classify", "customer-qa"}
    desc = tasks["classify"]["description"]
    assert desc["b"] == "Classify a support ticket into billing, bug or account."
    # The word diff rebuilds both descriptions: equal + delete is A, equal + insert is B.
    assert " ".join(s["text"] for s in desc["diff"] if s["op"] != "insert") == a.task("classify").description
    assert " ".join(s["text"] for s in desc["diff"] if s["op"] != "delete") == b.task("classify").description
    assert {"op": "delete", "text": "customer"} in desc["diff"] and {"op": "insert", "text": "ticket"} in desc["diff"]
    assert tasks["classify"]["models"] is None and tasks["classify"]["prefer"] is None
    pool = tasks["customer-qa"]["models"]
    assert pool["added"] == ["openai-gpt-oss-20b"] and pool["removed"] == ["anthropic-claude-4.6-sonnet"]
    assert tasks["customer-qa"]["prefer"] == {"a": "manual ranking", "b": "fastest"}
    assert [t["task"] for t in d["tasks_added"]] == ["code"] and [t["task"] for t in d["tasks_removed"]] == ["reasoning"]
    assert d["fallback_models"]["a"] == ["llama3.3-70b-instruct"]
    same = diff_configs(a, parse_router_config(base))
    assert not same["changed"] and same["tasks"] == [] and same["fallback_models"] is None


# --- the command line on stored runs ----------------------------------------------------------------

@pytest.mark.slow
def test_compare_html_is_self_contained_and_escaped(tmp_path: Path):
    evil = '<script>alert(1)</script> & "quotes"'
    a = make_run(tmp_path / "ra", [result("1", "classify", "classify", prompt=evil), result("2", "fallback", "fallback")])
    b = make_run(tmp_path / "rb", [result("1", "classify", "fallback", prompt=evil), result("2", "fallback", "fallback")])
    step = tmp_path / "step.md"
    proc = run_cli("compare", a, b, cwd=tmp_path, env=cli_env(GITHUB_STEP_SUMMARY=str(step)))
    assert proc.returncode == 0, proc.stderr  # one regressed case is not significant
    folder = tmp_path / "reports" / "compare" / "ra-vs-rb"
    html = (folder / "compare.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    diff = json.loads((folder / "diff.json").read_text())
    assert [r["id"] for r in diff["regressed"]] == ["1"]
    assert "evalkit compare" in step.read_text() and (folder / "compare.md").is_file()


def test_compare_rejects_bad_input(tmp_path: Path):
    a = make_run(tmp_path / "ra", [result("1", "classify", "classify")])
    b = make_run(tmp_path / "rb", [result("2", "classify", "classify")])
    for args, needle in (((a, b), "share no case id"), ((a, tmp_path / "nope"), "run directory not found"),
                         ((a, a, "--max-drop", "accuracy"), "METRIC=DROP")):
        proc = run_cli("compare", *args, "--out", tmp_path / "o")
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr


# --- the local router: a description change that makes routing worse is caught ---------------------

@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """Two runs of the unchanged config and one with a worse classify description (in-process)."""
    from evalkit.cost import load_prices
    from evalkit.run import TargetSpec, run_suite
    from evalkit.suites import load_suite

    root = tmp_path_factory.mktemp("local")
    suite_dir = slice_suite(root / "slice", per_task={"classify": 30, "customer-qa": 10, "reasoning": 10, "fallback": 10})
    (root / "worse.json").write_text(json.dumps(worse_router()))
    out = root / "runs"
    runs = {}
    for name, router in (("a1", None), ("a2", None), ("worse", root / "worse.json")):
        suite = load_suite(suite_dir, router_path=router)
        runs[name] = run_suite(suite, TargetSpec(kind="local"), out=out, prices=load_prices(), concurrency=4).run_dir
    return runs


@pytest.mark.slow
def test_unchanged_config_shows_no_significant_change(local_runs, tmp_path: Path):
    proc = run_cli("compare", local_runs["a1"], local_runs["a2"], "--out", tmp_path / "same", "--max-drop", "accuracy=0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 regressed, 0 fixed" in proc.stdout and "(not significant)" in proc.stdout
    assert "router config: unchanged" in proc.stdout
    diff = json.loads((tmp_path / "same" / "diff.json").read_text())
    assert diff["mcnemar"]["p_value"] == 1.0 and not diff["verdict"]["failed"]
    assert all(m["delta"] == 0 for m in diff["metrics"])


@pytest.mark.slow
def test_worse_description_is_caught_with_its_regressed_cases(local_runs, tmp_path: Path):
    proc = run_cli("compare", local_runs["a1"], local_runs["worse"], "--out", tmp_path / "worse", "--json")
    assert proc.returncode == 1, proc.stderr
    diff = json.loads(proc.stdout)
    # The regressed cases, found independently from the two results files.
    def routes(run):
        return {json.loads(l)["id"]: json.loads(l) for l in (run / "results.jsonl").read_text().splitlines()}
    ra, rb = routes(local_runs["a1"]), routes(local_runs["worse"])
    expected = {cid for cid in ra if ra[cid]["route"] == ra[cid]["expected_route"] != rb[cid]["route"]}
    fixed = {cid for cid in ra if ra[cid]["route"] != ra[cid]["expected_route"] == rb[cid]["route"]}
    assert {r["id"] for r in diff["regressed"]} == expected and len(expected) > len(fixed)
    assert diff["mcnemar"]["p_value"] == pytest.approx(
        mcnemar(np.array([[0, len(expected)], [len(fixed), 0]]), exact=True).pvalue)
    assert diff["verdict"]["significant_regression"] and diff["verdict"]["failed"]
    assert [t["task"] for t in diff["config"]["tasks"]] == ["classify"]
    assert diff["config"]["tasks"][0]["description"] is not None
    text = run_cli("compare", local_runs["a1"], local_runs["worse"], "--out", tmp_path / "worse")
    assert text.returncode == 1
    some = sorted(expected)[0]
    assert f"regressed ({len(expected)}):" in text.stdout
    assert (f"  {some}: {ra[some]['expected_route']} case now routed to {rb[some]['route'] or 'missing'} "
            "(was correct)") in text.stdout
    assert "FAIL Significant regression found" in text.stdout
    # the config diff comes first, with the word diff of the changed description (as `run --candidate`)
    lines = text.stdout.splitlines()
    old_words, new_words = bundled_router()["policies"][0]["custom_task"]["description"].split(), \
        worse_router()["policies"][0]["custom_task"]["description"].split()
    change = next(line for line in lines if line.startswith("  description changed: "))
    assert lines.index("task classify:") < lines.index(change) < lines.index(f"regressed ({len(expected)}):")
    assert "[-" in change and "{+" in change
    kept = [w for w in re.sub(r"\[-.*?-\]|\{\+.*?\+\}", " ", change[len("  description changed: "):]).split()]
    assert kept and all(w in old_words and w in new_words for w in kept)
    # regressed cases listed by expected task (the router's order), then id
    listed = [line.split(":")[0].strip() for line in lines[lines.index(f"regressed ({len(expected)}):") + 1:]
              if line.startswith("  ") and ":" in line][:min(len(expected), 20)]
    order = ["classify", "customer-qa", "reasoning", "fallback"]
    keys = [(order.index(ra[cid]["expected_route"]), [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", cid)])
            for cid in listed]
    assert keys == sorted(keys) and set(listed) <= expected
    html = (tmp_path / "worse" / "compare.html").read_text()
    assert some in html and "<del>" in html
    assert html.index("<h2>Router config</h2>") < html.index("<h2>Regressed cases")


def test_compare_command_is_reproducible_with_its_seed(tmp_path: Path):
    rng = np.random.default_rng(11)
    routes = ["classify", "customer-qa", "reasoning", "fallback"]
    expected = rng.choice(routes, size=120)
    ra = [result(str(i), e, e if rng.random() < 0.8 else "fallback") for i, e in enumerate(expected)]
    rb = [result(str(i), e, e if rng.random() < 0.75 else "customer-qa") for i, e in enumerate(expected)]
    a, b = make_run(tmp_path / "ra", ra), make_run(tmp_path / "rb", rb)
    first = run_cli("compare", a, b, "--out", tmp_path / "one", "--no-fail-on-significant-regression")
    second = run_cli("compare", a, b, "--out", tmp_path / "two", "--no-fail-on-significant-regression")
    other = run_cli("compare", a, b, "--out", tmp_path / "three", "--seed", "5", "--no-fail-on-significant-regression")
    assert first.returncode == second.returncode == other.returncode == 0, first.stderr
    one, two = (json.loads((tmp_path / d / "diff.json").read_text()) for d in ("one", "two"))
    three = json.loads((tmp_path / "three" / "diff.json").read_text())
    assert one == two
    assert [m["ci95"] for m in one["metrics"]] != [m["ci95"] for m in three["metrics"]]
    assert one["mcnemar"] == three["mcnemar"]  # the exact test does not depend on the seed


def test_compare_lists_flips_by_expected_task_then_id_in_words(tmp_path: Path):
    """Regressed and fixed cases by expected task (the router's order, fallback last), then id, in
    plain words, whatever order the cases completed in."""
    done_order = ["q10", "c2", "f1", "q9", "c10", "r1", "c1"]
    expected = {"c": "classify", "q": "customer-qa", "r": "reasoning", "f": "fallback"}
    ra = [result(cid, expected[cid[0]], expected[cid[0]]) for cid in done_order]
    rb = [result(cid, expected[cid[0]], "fallback" if cid[0] != "f" else "classify") for cid in done_order]
    ra += [result("q1", "customer-qa", "classify"), result("c3", "classify", "reasoning")]
    rb += [result("q1", "customer-qa", "customer-qa"), result("c3", "classify", "classify")]
    a, b = make_run(tmp_path / "a", ra), make_run(tmp_path / "b", rb)
    proc = run_cli("compare", a, b, "--out", tmp_path / "o", "--no-fail-on-significant-regression")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index("regressed (7):")
    assert [line.split(":")[0].strip() for line in lines[start + 1:start + 8]] == \
        ["c1", "c2", "c10", "q9", "q10", "r1", "f1"]
    assert "  q9: customer-qa case now routed to fallback (was correct): prompt of q9" in lines
    assert "  f1: fallback case now routed to classify (was correct): prompt of f1" in lines
    fixed = lines.index("fixed (2):")
    assert lines[fixed + 1:fixed + 3] == ["  c3: classify case now routed correctly (was routed to reasoning): prompt of c3",
                                          "  q1: customer-qa case now routed correctly (was routed to classify): prompt of q1"]
    diff = json.loads((tmp_path / "o" / "diff.json").read_text())
    assert [f["id"] for f in diff["regressed"]] == ["c1", "c2", "c10", "q9", "q10", "r1", "f1"]


def test_a_run_cut_short_is_called_incomplete_not_another_suite(tmp_path: Path):
    """B is A's suite with results.jsonl cut to 60 of 100 lines: the same suite hash, so the 40
    cases only in A are B's missing results, not a difference between the suites."""
    ra = [result(f"c{i}", "classify", "classify") for i in range(100)]
    a, b = make_run(tmp_path / "ra", ra), make_run(tmp_path / "rb", ra)
    lines = (b / "results.jsonl").read_text().splitlines(keepends=True)
    (b / "results.jsonl").write_text("".join(lines[:60]))
    proc = run_cli("compare", a, b, "--out", tmp_path / "cmp")
    text = proc.stdout + proc.stderr
    assert "run B is incomplete: 40 of 100 planned cases have no result; the comparison covers the 60 cases both have" \
        in text, text
    assert "the suites differ" not in text
    diff = json.loads((tmp_path / "cmp" / "diff.json").read_text())
    assert diff["n_matched"] == 60 and not any("run A" in w for w in diff["warnings"])


def test_runs_of_the_same_suite_missing_each_others_cases_are_not_other_suites():
    a = [result("x1", "classify", "classify"), result("x2", "classify", "classify")]
    b = [result("x1", "classify", "classify"), result("x3", "classify", "classify")]
    diff = compare_runs(side(a, suite_hash="h1"), side(b, "b", suite_hash="h1"))
    assert not any("the suites differ" in w for w in diff["warnings"])
    assert any(w.startswith("run B has no result for 1 cases") for w in diff["warnings"])
    other = compare_runs(side(a, suite_hash="h1"), side(b, "b", suite_hash="h2"))
    assert any("the suites differ: 1 cases only in A and 1 only in B" in w for w in other["warnings"])


@pytest.mark.parametrize("where", ["file", "unmakeable"])
def test_compare_out_that_cannot_be_a_folder_is_a_usage_error(tmp_path: Path, where: str):
    """--out naming a file, or a folder that cannot be made, exits 2 with what and how to fix (as
    `evalkit run` and `merge` do), not a traceback and not exit 1 (a regression, to CI)."""
    ra = [result(f"c{i}", "classify", "classify") for i in range(5)]
    a, b = make_run(tmp_path / "ra", ra), make_run(tmp_path / "rb", ra)
    if where == "file":
        out = tmp_path / "taken.txt"
        out.write_text("not a folder")
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file where a folder would go")
        out = blocker / "sub" / "cmp"
    proc = run_cli("compare", a, b, "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"--out {out}" in proc.stderr and "fix: give --out a folder you can write to" in proc.stderr


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    ra = [result(f"c{i}", "classify", "classify") for i in range(6)]
    return make_run(tmp_path / "ra", ra), make_run(tmp_path / "rb", ra)


@pytest.mark.parametrize("kwargs,where,needle", [
    ({"max_drop": {"accuracy": "abc"}}, "max_drop", "the largest drop of accuracy is not a number"),
    ({"max_drop": {"accuracy": None}}, "max_drop", "not a number"),
    ({"max_drop": {"bogus": 0.1}}, "max_drop", "'bogus' has no better direction"),
    ({"max_drop": {"recall[nope]": 0.1}}, "max_drop", "unknown task 'nope' in recall[nope]"),
    ({"max_drop": {"accuracy": -1}}, "max_drop", "must be zero or positive"),
    ({"max_drop": {"accuracy": 1.5}}, "max_drop", "it runs from 0 to 1"),
    ({"max_drop": {"accuracy": "150%"}}, "max_drop", "it runs from 0 to 1"),
    ({"max_drop": ["accuracy"]}, "max_drop", "must map a metric"),
    ({"alpha": 5}, "alpha", "must be between 0 and 1"),
    ({"alpha": float("nan")}, "alpha", "must be between 0 and 1"),
    ({"seed": -1}, "seed", "must be zero or more"),
    ({"seed": 1.5}, "seed", "must be zero or more"),
    ({"n_boot": 0}, "n_boot", "must be at least 1"),
])
def test_the_python_api_checks_what_the_command_line_checks(tmp_path: Path, kwargs, where, needle):
    """evalkit.compare() refuses the settings `evalkit compare` refuses, with an InputError naming
    the argument, what was found and the fix (docs/python-api.md), not a raw TypeError/ValueError
    nor a silent acceptance."""
    import evalkit
    from evalkit.errors import InputError

    a, b = _two_runs(tmp_path)
    with pytest.raises(InputError) as info:
        evalkit.compare(a, b, **kwargs)
    message = info.value.message
    assert message.startswith(f"evalkit.compare({where}=...): ") and needle in message, message
    assert "fix: " in message


def test_the_python_api_takes_drops_as_the_command_line_writes_them(tmp_path: Path):
    import evalkit

    a, b = _two_runs(tmp_path)
    diff = evalkit.compare(a, b, max_drop={"accuracy": "2%", "recall[classify]": 0.05, "error_rate": 1})
    assert {c.metric: c.max_drop for c in diff.checks if c.metric != "mcnemar"} == \
        {"accuracy": pytest.approx(0.02), "recall[classify]": 0.05, "error_rate": 1.0}


@pytest.mark.parametrize("value,needle", [
    ("accuracy=150%", "a drop of 1.5 is more than accuracy can drop: it runs from 0 to 1"),
    ("recall[classify]=2", "a drop of 2 is more than recall[classify] can drop"),
    ("recall[nope]=0.1", "unknown task 'nope' in recall[nope]"),
    ("accuracy=lots", "the largest drop of accuracy is not a number"),
])
def test_max_drop_refuses_drops_past_the_metrics_range_and_names_the_option_once(tmp_path: Path, value, needle):
    a, b = _two_runs(tmp_path)
    proc = run_cli("compare", a, b, "--max-drop", value, "--out", tmp_path / "cmp")
    assert proc.returncode == 2, proc.stderr
    assert f"error: --max-drop: {needle}" in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[0].count("--max-drop") == 1  # the option is named once, up front
    assert f"found: {value}" in proc.stderr and not (tmp_path / "cmp").exists()


def _cut(run_dir: Path, keep: int) -> Path:
    """The run with results.jsonl cut to its first ``keep`` lines: a run stopped early (the
    manifest still plans every case)."""
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text("".join(lines[:keep]))
    return run_dir


def test_an_incomplete_run_fails_the_comparison_unless_allowed(tmp_path: Path):
    """B of the same suite with 11 of 80 results: identical routing on those 11 is no evidence
    about the other 69, so a check fails (exit 1) naming run B and the 69 missing cases, as
    `evalkit gate` fails an incomplete run; --allow-incomplete compares the 11 and says so."""
    ra = [result(f"c{i}", "classify", "classify") for i in range(80)]
    a, b = make_run(tmp_path / "ra", ra), _cut(make_run(tmp_path / "rb", ra), 11)
    proc = run_cli("compare", a, b, "--out", tmp_path / "strict")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL Run B (rb) is incomplete: 69 of 80 planned cases have no result" in proc.stdout, proc.stdout
    assert f"--resume {b}" in proc.stdout and "--allow-incomplete" in proc.stdout
    md = (tmp_path / "strict" / "compare.md").read_text()
    assert "❌ **Regression**" in md and "Run B (rb) is incomplete: 69 of 80 planned cases" in md
    assert "Run B (rb) is incomplete: 69 of 80" in (tmp_path / "strict" / "compare.html").read_text()
    diff = json.loads((tmp_path / "strict" / "diff.json").read_text())
    assert [c["check"] for c in diff["checks"] if not c["passed"]] == ["run B complete"]

    allowed = run_cli("compare", a, b, "--out", tmp_path / "allowed", "--allow-incomplete")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "run B is incomplete: 69 of 80 planned cases have no result; the comparison covers the 11 cases both " \
           "have (compared anyway: --allow-incomplete)" in allowed.stderr
    assert "compared anyway: --allow-incomplete" in (tmp_path / "allowed" / "compare.md").read_text()

    swapped = run_cli("compare", b, a, "--out", tmp_path / "swapped")  # the baseline is the incomplete one
    assert swapped.returncode == 1 and "FAIL Run A (rb) is incomplete: 69 of 80" in swapped.stdout


def test_the_python_api_fails_an_incomplete_comparison_unless_allowed(tmp_path: Path):
    import evalkit

    ra = [result(f"c{i}", "classify", "classify") for i in range(20)]
    a, b = make_run(tmp_path / "ra", ra), _cut(make_run(tmp_path / "rb", ra), 5)
    strict = evalkit.compare(a, b)
    assert strict.failed and any("15 of 20 planned cases have no result" in c.message for c in strict.checks)
    assert not evalkit.compare(a, b, allow_incomplete=True).failed


def test_an_empty_run_of_the_same_suite_is_called_incomplete_not_another_suite(tmp_path: Path):
    """B has no result at all (its router was unreachable): the runs are of the same suite, so the
    message says B has none of its planned cases and how to finish it, not that the suites
    differ; nothing can be compared, with or without --allow-incomplete (exit 2, no report)."""
    ra = [result(f"c{i}", "classify", "classify") for i in range(25)]
    a, b = make_run(tmp_path / "ra", ra, suite="saas-support"), _cut(make_run(tmp_path / "rb", ra, suite="saas-support"), 0)
    for extra in ((), ("--allow-incomplete",)):
        proc = run_cli("compare", a, b, "--out", tmp_path / "cmp", *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"error: {b}: run B is incomplete: it has no result (0 of 25 planned cases)" in proc.stderr, proc.stderr
        assert f"fix: finish it with `evalkit run SUITE --resume {b}`" in proc.stderr
        assert "share no case id" not in proc.stderr and "same suite (cases" not in proc.stderr
        assert not (tmp_path / "cmp").exists()


def test_run_with_an_incomplete_baseline_fails_unless_allowed(tmp_path: Path):
    """`evalkit run --baseline` compares as `evalkit compare` does: an incomplete baseline fails the
    comparison (exit 1), and the run's --allow-incomplete covers its comparison as its gates."""
    suite = slice_suite(tmp_path / "suite", per_task=3)
    first = run_cli("run", suite, "--out", tmp_path / "main", "-q", "--json")
    assert first.returncode == 0, first.stderr
    base = _cut(tmp_path / "main" / "suite" / json.loads(first.stdout)["run_id"], 4)
    strict = run_cli("run", suite, "--out", tmp_path / "pr", "-q", "--json", "--baseline", base)
    assert strict.returncode == 1, strict.stderr
    run = tmp_path / "pr" / "suite" / json.loads(strict.stdout)["run_id"]
    diff = json.loads((run / "diff.json").read_text())
    assert [c["check"] for c in diff["checks"] if not c["passed"]] == ["run A complete"]
    assert "is incomplete: 8 of 12 planned cases have no result" in (run / "summary.md").read_text()
    allowed = run_cli("run", suite, "--out", tmp_path / "pr2", "-q", "--json", "--baseline", base, "--allow-incomplete")
    assert allowed.returncode == 0, allowed.stderr
