"""``junit.xml``: a run (or a comparison) as a JUnit report, red only for what a change broke.

A pull request's check must fail for the regression it introduced, not for the hundred cases the
router already misroutes on main. So, by default (``--junit-cases regressed``):

- ``<testsuite name="gates">``: one test case per gate (suite.yaml's and ``--gate``), failed when
  the gate fails; with a baseline, one more per comparison check (``--max-drop``, McNemar's "no
  significant regression"), failed when that check fails.
- With a baseline (``evalkit run --baseline RUN``, ``evalkit merge --baseline RUN``,
  ``evalkit compare A B``): ``<testsuite name="regressed">``, one failed test case per case the
  change broke (routed right in the baseline, wrong now), and ``<testsuite name="fixed">``, one
  passed test case per case it fixed. Cases wrong in both runs are not test cases.
- ``<testsuite name="routing">`` holds no test case: its properties carry the headline figures
  and its ``system-out`` lists the misrouted cases, so they are at hand without being failures.

``--junit-cases all`` keeps the first layout instead of the regressed / fixed suites: one failed
test case per misrouted case, in one ``<testsuite name="misrouted: expected TASK">`` per
expected task. Errors are never test cases (they are not misroutes; gate them with
``error_rate``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any, Sequence

from evalkit.errors import UsageError
from evalkit.records import CaseResult

if TYPE_CHECKING:
    from evalkit.comparison import Comparison
    from evalkit.gates import GateResult
    from evalkit.summary import Summary

JUNIT_CASES = ("regressed", "all")
DEFAULT_JUNIT_CASES = "regressed"
MAX_LISTED = 1000  # misrouted cases written into system-out; the rest are in results.jsonl

# Characters XML 1.0 cannot carry at all (a prompt may hold any of them); replaced, not escaped.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def check_junit_cases(value: str, *, where: str = "--junit-cases") -> str:
    """The ``--junit-cases`` value, or a usage error naming the choices."""
    if value not in JUNIT_CASES:
        raise UsageError(f"unknown --junit-cases value '{value}'", where=where,
                         fix="use regressed (the default: with a baseline, only the cases the change broke fail) "
                             "or all (every misrouted case fails)")
    return value


def _suite(parent: ET.Element, name: str, cases: list[dict[str, Any]], timestamp: str | None, *,
           properties: dict[str, Any] | None = None, out: str | None = None) -> None:
    failures = sum(1 for c in cases if c.get("failure"))
    attrs = {"name": _x(name), "tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0",
             "time": "0"}
    if timestamp:
        attrs["timestamp"] = timestamp.rstrip("Z")
    node = ET.SubElement(parent, "testsuite", attrs)
    if properties:
        props = ET.SubElement(node, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", {"name": _x(key), "value": _x("" if value is None else value)})
    for c in cases:
        tc = ET.SubElement(node, "testcase", {"classname": _x(c["classname"]), "name": _x(c["name"]), "time": "0"})
        if c.get("failure"):
            failure = ET.SubElement(tc, "failure", {"message": _x(c["failure"]), "type": c["type"]})
            failure.text = _x(c.get("text") or c["failure"])
        if c.get("out"):
            ET.SubElement(tc, "system-out").text = _x(c["out"])
    if out:
        ET.SubElement(node, "system-out").text = _x(out)


def _gate_cases(prefix: str, verdicts: Sequence[GateResult]) -> list[dict[str, Any]]:
    return [{"classname": f"{prefix}.gates", "name": g.expr, "type": "GateFailed",
             "failure": None if g.passed else g.message or f"Gate '{g.expr}' failed",
             "out": g.message}
            for g in verdicts]


def _check_cases(prefix: str, diff: Comparison) -> list[dict[str, Any]]:
    base = diff.a.run_id
    return [{"classname": f"{prefix}.compare", "name": f"{c.check} (vs baseline {base})", "type": "CheckFailed",
             "failure": None if c.passed else c.message, "out": c.message}
            for c in diff.checks]


def _flip_cases(prefix: str, diff: Comparison, kind: str) -> list[dict[str, Any]]:
    base = diff.a.run_id
    cases = []
    for f in (diff.regressed_cases if kind == "regressed" else diff.fixed_cases):
        message = (f"expected {f.expected_route}, routed {f.route_b} "
                   f"(routed {f.route_a} in the baseline run {base})")
        text = f"{message}\nprompt: {f.prompt or ''}"
        failed = kind == "regressed"
        cases.append({"classname": f"{prefix}.{kind}.{f.expected_route}", "name": f.id, "type": "Regressed",
                      "failure": message if failed else None, "text": text, "out": None if failed else text})
    return cases


def _misroute_cases(prefix: str, results: Sequence[CaseResult], labels: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if not r.scored or r.route == r.expected_route:
            continue
        message = f"expected {r.expected_route}, routed {r.route_label}"
        text = f"{message}\nprompt: {r.prompt}"
        if r.served_model:
            text += f"\nserved model: {r.served_model}"
        by_task.setdefault(r.expected_route, []).append(
            {"classname": f"{prefix}.misrouted.{r.expected_route}", "name": r.id, "type": "Misrouted",
             "failure": message, "text": text})
    order = list(labels)
    return {t: by_task[t] for t in sorted(by_task, key=lambda t: (order.index(t) if t in order else len(order), t))}


def _misroute_listing(results: Sequence[CaseResult], diff: Comparison | None) -> tuple[int, str]:
    """(number of misrouted cases, one line each) for system-out: listed, not failed."""
    regressed = set(diff.regressed) if diff else set()
    wrong = [r for r in results if r.scored and r.route != r.expected_route]
    lines = []
    for r in wrong[:MAX_LISTED]:
        note = " (regressed)" if r.id in regressed else (" (also misrouted in the baseline)" if diff else "")
        lines.append(f"{r.id}: expected {r.expected_route}, routed {r.route_label}{note}")
    if len(wrong) > MAX_LISTED:
        lines.append(f"...and {len(wrong) - MAX_LISTED} more misrouted cases in results.jsonl and report.html")
    head = (f"{len(wrong)} misrouted cases (listed here, not failed: "
            + ("a case fails only when the change broke it, see the 'regressed' test suite)"
               if diff else "without a baseline run a misroute is not a test failure; gate on the figures, "
                            "or give --baseline RUN to fail on the cases a change broke)"))
    if wrong:
        return len(wrong), "\n".join([head, *lines])
    if not any(r.scored for r in results):  # "no misrouted case" would read as a clean run
        n_errors = sum(1 for r in results if r.status == "error")
        return 0, (f"no case was scored ({n_errors} of {len(results)} cases ended in an error): routing was not "
                   "measured" if results else "no case has a result: routing was not measured")
    return 0, "no misrouted case"


def junit_document(*, name: str, gates: Sequence[GateResult], results: Sequence[CaseResult],
                   labels: Sequence[str], diff: Comparison | None = None, cases: str = DEFAULT_JUNIT_CASES,
                   properties: dict[str, Any] | None = None, started_at: str | None = None) -> str:
    """The JUnit XML document (pure): the gates (and comparison checks), then the cases as ``cases`` says."""
    check_junit_cases(cases)
    prefix = f"evalkit.{name}"
    root = ET.Element("testsuites", {"name": _x(f"evalkit {name}")})
    gate_cases = _gate_cases(prefix, gates) + (_check_cases(prefix, diff) if diff else [])
    if gate_cases:
        _suite(root, "gates", gate_cases, started_at)
    if cases == "all":
        for task, rows in _misroute_cases(prefix, results, labels).items():
            _suite(root, f"misrouted: expected {task}", rows, started_at)
    elif diff is not None:
        for kind in ("regressed", "fixed"):
            rows = _flip_cases(prefix, diff, kind)
            if rows:
                _suite(root, kind, rows, started_at)
    n_misrouted, listing = _misroute_listing(results, diff)
    props = {**(properties or {}), "n_misrouted": n_misrouted, "junit_cases": cases}
    if diff is not None:
        props.update(baseline_run=diff.a.run_id, regressed=len(diff.regressed_cases), fixed=len(diff.fixed_cases))
    _suite(root, "routing", [], started_at, properties=props, out=listing)
    root.set("tests", str(sum(int(s.get("tests", 0)) for s in root)))
    root.set("failures", str(sum(int(s.get("failures", 0)) for s in root)))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_junit(summary: Summary, results: Sequence[CaseResult], *, started_at: str | None = None,
                 diff: Comparison | None = None, cases: str = DEFAULT_JUNIT_CASES) -> str:
    """The JUnit XML document of a run (pure); ``diff`` is the comparison with its baseline run, if any."""
    from evalkit.comparison import Comparison
    from evalkit.summary import Summary

    summary = Summary.coerce(summary)
    diff = Comparison.coerce(diff) if diff is not None else None
    props = {"run_id": summary.run_id, "accuracy": summary.accuracy, "n_scored": summary.n_scored,
             "n_errors": summary.n_errors, "target": summary.target.kind}
    return junit_document(name=summary.suite or "evalkit", gates=summary.gates, results=results,
                          labels=summary.labels, diff=diff, cases=cases, properties=props, started_at=started_at)


def render_compare_junit(diff: Comparison, results_b: Sequence[CaseResult], *,
                         cases: str = DEFAULT_JUNIT_CASES) -> str:
    """The JUnit XML document of ``evalkit compare A B`` (pure): its checks, then B's cases against A."""
    from evalkit.comparison import Comparison

    diff = Comparison.coerce(diff)
    props = {"run_id": diff.b.run_id, "n_matched": diff.n_matched}
    return junit_document(name=diff.b.suite or "evalkit", gates=[], results=results_b,
                          labels=diff.labels, diff=diff, cases=cases, properties=props)
