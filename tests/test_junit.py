"""junit.xml: one test case per gate, one per misrouted case grouped by expected task, read back
by a real JUnit consumer (junitparser)."""

from __future__ import annotations

from pathlib import Path

from junitparser import Failure, JUnitXml

from tests.run_helpers import make_run, result


def suites_by_name(path: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(path))
    return {s.name: s for s in xml}


def test_gates_and_misroutes_become_test_cases(tmp_path: Path):
    rows = [
        result("c1", "classify", "classify"), result("c2", "classify", "fallback"),
        result("c3", "classify", "customer-qa"), result("c4", "classify", None),  # no route header: misrouted
        result("q1", "customer-qa", "customer-qa"),
        result("r1", "reasoning", "customer-qa"), result("r2", "reasoning", "reasoning"),
        result("f1", "fallback", "fallback"),
        result("e1", "reasoning", None, status="error"),  # errors are not misroutes
    ]
    run = make_run(tmp_path / "run", rows, gates=["accuracy >= 0.5", "recall[classify] >= 0.5"], suite="demo")
    xml = JUnitXml.fromfile(str(run / "junit.xml"))
    suites = {s.name: s for s in xml}
    assert list(suites) == ["gates", "misrouted: expected classify", "misrouted: expected reasoning"]
    # 8 scored cases, 4 right: accuracy 0.5 passes; classify recall 1/4 fails.
    gates = {case.name: case for case in suites["gates"]}
    assert set(gates) == {"accuracy >= 0.5", "recall[classify] >= 0.5"}
    assert gates["accuracy >= 0.5"].is_passed
    (failure,) = gates["recall[classify] >= 0.5"].result
    assert isinstance(failure, Failure)
    assert failure.message.startswith("Gate 'recall[classify] >= 0.5' failed: 0.250 (n=4, 95% CI")
    classify = {case.name: case.result[0].message for case in suites["misrouted: expected classify"]}
    assert classify == {"c2": "expected classify, routed fallback", "c3": "expected classify, routed customer-qa",
                        "c4": "expected classify, routed (missing)"}
    assert [case.name for case in suites["misrouted: expected reasoning"]] == ["r1"]
    xml.update_statistics()
    assert (xml.tests, xml.failures, xml.errors) == (6, 5, 0)
    assert (suites["misrouted: expected classify"].tests, suites["misrouted: expected classify"].failures) == (3, 3)


def test_prompts_with_markup_and_control_characters_stay_valid_xml(tmp_path: Path):
    prompt = 'why does <b>&amp;</b> "break" \x1b[31m here\x00?'
    run = make_run(tmp_path / "run", [result("x<1>", "classify", "fallback", prompt=prompt)])
    suites = suites_by_name(run / "junit.xml")
    (case,) = list(suites["misrouted: expected classify"])
    assert case.name == "x<1>"
    text = case.result[0].text
    assert 'why does <b>&amp;</b> "break" \ufffd[31m here\ufffd?' in text


def test_a_clean_run_without_gates_has_no_test_cases(tmp_path: Path):
    run = make_run(tmp_path / "run", [result("c1", "classify", "classify")])
    xml = JUnitXml.fromfile(str(run / "junit.xml"))
    xml.update_statistics()
    assert (xml.tests, xml.failures) == (0, 0)
