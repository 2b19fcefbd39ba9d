"""junit.xml: one test case per gate; with a baseline, one failure per case the change broke and a
pass per case it fixed; without one, misroutes listed but not failed (``--junit-cases all`` keeps
one failure per misroute). Read back by a real JUnit consumer (junitparser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from evalkit.comparison import RunSide, compare_runs
from evalkit.report.junit import render_junit
from tests.conftest import ROOT, run_cli
from tests.run_helpers import make_run, result, slice_suite, worse_router

ROWS = [
    result("c1", "classify", "classify"), result("c2", "classify", "fallback"),
    result("c3", "classify", "customer-qa"), result("c4", "classify", None),  # no route header: misrouted
    result("q1", "customer-qa", "customer-qa"),
    result("r1", "reasoning", "customer-qa"), result("r2", "reasoning", "reasoning"),
    result("f1", "fallback", "fallback"),
    result("e1", "reasoning", None, status="error"),  # errors are not misroutes
]
GATES = ["accuracy >= 0.5", "recall[classify] >= 0.5"]


def suites_by_name(path: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(path))
    return {s.name: s for s in xml}


def failures(path: Path) -> set[tuple[str, str]]:
    """(test suite, test case) of every failed test case."""
    return {(s.name, case.name) for s in JUnitXml.fromfile(str(path)) for case in s
            if any(isinstance(r, Failure) for r in case.result)}


def properties(suite) -> dict[str, str]:
    return {p.name: p.value for p in suite.properties()}


def system_out(suite) -> str:
    return suite._elem.findtext("system-out") or ""  # junitparser has no accessor for a suite's system-out


def totals(path: Path) -> tuple[int, int, int]:
    xml = JUnitXml.fromfile(str(path))
    xml.update_statistics()
    return xml.tests, xml.failures, xml.errors


def test_without_a_baseline_misroutes_are_listed_not_failed(tmp_path: Path):
    run = make_run(tmp_path / "run", ROWS, gates=GATES, suite="demo")
    suites = suites_by_name(run / "junit.xml")
    assert list(suites) == ["gates", "routing"]
    # 8 scored cases, 4 right: accuracy 0.5 passes; classify recall 1/4 fails.
    gates = {case.name: case for case in suites["gates"]}
    assert set(gates) == {"accuracy >= 0.5", "recall[classify] >= 0.5"}
    assert gates["accuracy >= 0.5"].is_passed
    (failure,) = gates["recall[classify] >= 0.5"].result
    assert isinstance(failure, Failure)
    assert failure.message.startswith("Gate 'recall[classify] >= 0.5' failed: 0.250 (n=4, 95% CI")
    routing = suites["routing"]
    assert len(list(routing)) == 0
    props = properties(routing)
    assert props["n_misrouted"] == "4" and props["accuracy"] == "0.5" and props["junit_cases"] == "regressed"
    out = system_out(routing)
    for line in ("c2: expected classify, routed fallback", "c3: expected classify, routed customer-qa",
                 "c4: expected classify, routed (missing)", "r1: expected reasoning, routed customer-qa"):
        assert line in out
    assert "e1" not in out and "c1:" not in out
    assert totals(run / "junit.xml") == (2, 1, 0)


def test_junit_cases_all_fails_every_misroute(tmp_path: Path):
    run = make_run(tmp_path / "run", ROWS, gates=GATES, suite="demo", options={"junit_cases": "all"})
    suites = suites_by_name(run / "junit.xml")
    assert list(suites) == ["gates", "misrouted: expected classify", "misrouted: expected reasoning", "routing"]
    classify = {case.name: case.result[0].message for case in suites["misrouted: expected classify"]}
    assert classify == {"c2": "expected classify, routed fallback", "c3": "expected classify, routed customer-qa",
                        "c4": "expected classify, routed (missing)"}
    assert [case.name for case in suites["misrouted: expected reasoning"]] == ["r1"]
    assert totals(run / "junit.xml") == (6, 5, 0)


def test_prompts_with_markup_and_control_characters_stay_valid_xml(tmp_path: Path):
    prompt = 'why does <b>&amp;</b> "break" \x1b[31m here\x00?'
    rows = [result("x<1>", "classify", "fallback", prompt=prompt)]
    run = make_run(tmp_path / "run", rows, options={"junit_cases": "all"})
    (case,) = list(suites_by_name(run / "junit.xml")["misrouted: expected classify"])
    assert case.name == "x<1>"
    assert 'why does <b>&amp;</b> "break" \ufffd[31m here\ufffd?' in case.result[0].text
    listed = make_run(tmp_path / "listed", rows)
    assert "x<1>: expected classify, routed fallback" in system_out(suites_by_name(listed / "junit.xml")["routing"])


def test_a_clean_run_without_gates_has_no_test_cases(tmp_path: Path):
    run = make_run(tmp_path / "run", [result("c1", "classify", "classify")])
    assert totals(run / "junit.xml")[:2] == (0, 0)


def test_a_run_where_every_case_errored_does_not_say_no_case_was_misrouted(tmp_path: Path):
    """Nothing scored is not a clean run: the routing suite's system-out says no routing was measured."""
    rows = [result(f"e{i}", "classify", None, status="error", error="HTTP 500", http_status=500) for i in range(3)]
    run = make_run(tmp_path / "run", rows)
    routing = suites_by_name(run / "junit.xml")["routing"]
    out = system_out(routing)
    assert "no misrouted case" not in out
    assert "no case was scored (3 of 3 cases ended in an error)" in out
    assert properties(routing)["n_scored"] == "0"


def side(run_id: str, rows) -> RunSide:
    return RunSide(run_id=run_id, results=list(rows), labels=["classify", "customer-qa", "reasoning", "fallback"],
                   suite="demo")


def test_with_a_baseline_the_broken_cases_fail_and_the_fixed_pass():
    before = [result("a", "classify", "classify"), result("b", "classify", "classify"),
              result("c", "reasoning", "fallback"), result("d", "reasoning", "customer-qa"),
              result("e", "fallback", "fallback"), result("f", "classify", "classify"),
              result("g", "classify", None, status="error")]
    after = [result("a", "classify", "customer-qa"),  # broke
             result("b", "classify", "classify"),
             result("c", "reasoning", "reasoning"),  # fixed
             result("d", "reasoning", "fallback"),  # wrong in both: listed, not a test case
             result("e", "fallback", "classify"),  # broke
             result("f", "classify", None, status="error"),  # an error is not a regression
             result("g", "classify", "fallback")]  # errored in the baseline: not comparable
    diff = compare_runs(side("base", before), side("new", after))
    # summary.json as evalkit writes it needs these; junit.xml reads the suite, labels and gates.
    summary = {"suite": "demo", "run_id": "new", "n_cases": 7, "n_scored": 6, "n_errors": 1,
               "target": {"kind": "local", "base_url": "http://127.0.0.1:1/v1", "model": "router:demo",
                          "route_header": "x-model-router-selected-route"},
               "labels": ["classify", "customer-qa", "reasoning", "fallback"],
               "confusion": {"labels": [], "columns": [], "matrix": []},
               "gates": [{"expr": "accuracy >= 0.1", "metric": "accuracy", "value": 0.5, "threshold": 0.1,
                          "passed": True, "message": "ok"}]}
    doc = render_junit(summary, after, diff=diff)
    xml = JUnitXml.fromstring(doc)
    suites = {s.name: s for s in xml}
    assert list(suites) == ["gates", "regressed", "fixed", "routing"]
    regressed = {c.name: c.result[0].message for c in suites["regressed"]}
    assert regressed == {"a": "expected classify, routed customer-qa (routed classify in the baseline run base)",
                         "e": "expected fallback, routed classify (routed fallback in the baseline run base)"}
    assert [(c.name, c.is_passed) for c in suites["fixed"]] == [("c", True)]
    gate_names = [c.name for c in suites["gates"]]
    assert gate_names == ["accuracy >= 0.1", "no significant regression (vs baseline base)"]
    assert all(c.is_passed for c in suites["gates"])  # 2 regressed vs 1 fixed is not significant
    props = properties(suites["routing"])
    assert (props["baseline_run"], props["regressed"], props["fixed"]) == ("base", "2", "1")
    assert "d: expected reasoning, routed fallback (also misrouted in the baseline)" in system_out(suites["routing"])
    xml.update_statistics()
    assert (xml.tests, xml.failures) == (5, 2)


def test_unknown_junit_cases_value_is_bad_usage(tmp_path: Path):
    suite = slice_suite(tmp_path / "s", per_task=1)
    proc = run_cli("run", suite, "--junit-cases", "some", "--out", tmp_path / "out", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--junit-cases" in proc.stderr and "regressed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bundled_suite_with_passing_gates_has_no_failure(tmp_path: Path):
    proc = run_cli("run", ROOT / "suites" / "saas-support", "--out", tmp_path, "-q", "--json",
                   "--gate", "accuracy >= 0.3", "--gate", "error_rate <= 0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    run = tmp_path / "saas-support" / summary["run_id"]
    assert totals(run / "junit.xml") == (2, 0, 0)
    misrouted = sum(1 for line in (run / "results.jsonl").read_text().splitlines()
                    if (r := json.loads(line))["status"] != "error" and r["route"] != r["expected_route"])
    assert misrouted > 50  # the local router misroutes plenty: listed, not failed
    assert properties(suites_by_name(run / "junit.xml")["routing"])["n_misrouted"] == str(misrouted)


def read_results(run: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_baseline_and_a_worse_router_fail_exactly_the_regressed_cases(tmp_path: Path):
    suite = slice_suite(tmp_path / "suite", per_task={"classify": 30, "customer-qa": 5, "reasoning": 5, "fallback": 5})
    first = run_cli("run", suite, "--out", tmp_path / "main", "-q", "--json")
    assert first.returncode == 0, first.stderr
    base = tmp_path / "main" / "suite" / json.loads(first.stdout)["run_id"]
    (suite / "router.json").write_text(json.dumps(worse_router()))
    second = run_cli("run", suite, "--out", tmp_path / "pr", "-q", "--json", "--baseline", base)
    assert second.returncode == 1, second.stderr  # significantly worse
    run = tmp_path / "pr" / "suite" / json.loads(second.stdout)["run_id"]

    # The expected sets, from the two results.jsonl files alone.
    a, b = read_results(base), read_results(run)
    ok = lambda r: r["status"] != "error" and r["route"] == r["expected_route"]  # noqa: E731
    scored = [cid for cid in a if cid in b and a[cid]["status"] != "error" and b[cid]["status"] != "error"]
    broke = {cid for cid in scored if ok(a[cid]) and not ok(b[cid])}
    fixed = {cid for cid in scored if not ok(a[cid]) and ok(b[cid])}
    assert len(broke) >= 5

    assert failures(run / "junit.xml") == {("regressed", cid) for cid in broke} | {
        ("gates", f"no significant regression (vs baseline {base.name})")}
    suites = suites_by_name(run / "junit.xml")
    assert {c.name for c in suites.get("fixed", [])} == fixed
    md = (run / "summary.md").read_text()
    assert f"### Compared with the baseline run `{base.name}`" in md and f"{len(broke)} regressed" in md

    # `evalkit report` re-renders from the stored files and keeps the comparison.
    (run / "junit.xml").unlink()
    again = run_cli("report", run)
    assert again.returncode == 0, again.stderr
    assert failures(run / "junit.xml") == {("regressed", cid) for cid in broke} | {
        ("gates", f"no significant regression (vs baseline {base.name})")}

    # `evalkit compare` writes the same judgement, and `--junit-cases all` fails every misroute of B.
    for cases, expected in (("regressed", {("regressed", cid) for cid in broke}),
                            ("all", {(f"misrouted: expected {r['expected_route']}", cid) for cid, r in b.items()
                                     if r["status"] != "error" and not ok(r)})):
        folder = tmp_path / f"compare-{cases}"
        proc = run_cli("compare", base, run, "--out", folder, "--junit-cases", cases)
        assert proc.returncode == 1, proc.stderr
        assert failures(folder / "junit.xml") == expected | {("gates", f"no significant regression (vs baseline {base.name})")}
