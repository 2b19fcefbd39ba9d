"""``junit.xml``: the run as a JUnit report, so a CI page lists failed gates and misroutes.

One ``<testsuite>`` named ``gates`` with one test case per gate (a failed gate is a failure
carrying the gate's message), then one ``<testsuite>`` per expected task holding one failed test
case per case routed elsewhere, so the CI page groups the misroutes by the task they should
have taken. Correctly routed cases and errors are not test cases (errors are not misroutes;
the ``error_rate`` gate covers them).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Sequence

from evalkit.records import CaseResult


# Characters XML 1.0 cannot carry at all (a prompt may hold any of them); replaced, not escaped.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _suite(parent: ET.Element, name: str, cases: list[dict[str, Any]], timestamp: str | None) -> None:
    failures = sum(1 for c in cases if c.get("failure"))
    attrs = {"name": _x(name), "tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0",
             "time": "0"}
    if timestamp:
        attrs["timestamp"] = timestamp.rstrip("Z")
    node = ET.SubElement(parent, "testsuite", attrs)
    for c in cases:
        tc = ET.SubElement(node, "testcase", {"classname": _x(c["classname"]), "name": _x(c["name"]), "time": "0"})
        if c.get("failure"):
            failure = ET.SubElement(tc, "failure", {"message": _x(c["failure"]), "type": c["type"]})
            failure.text = _x(c.get("text") or c["failure"])
        if c.get("out"):
            ET.SubElement(tc, "system-out").text = _x(c["out"])


def render_junit(summary: dict[str, Any], results: Sequence[CaseResult], *, started_at: str | None = None) -> str:
    """The JUnit XML document of a run (pure)."""
    suite = str(summary.get("suite") or "evalkit")
    root = ET.Element("testsuites", {"name": _x(f"evalkit {suite}")})
    gates = [
        {"classname": f"evalkit.{suite}.gates", "name": g["expr"], "type": "GateFailed",
         "failure": None if g.get("passed") else g.get("message") or f"Gate '{g['expr']}' failed",
         "out": g.get("message")}
        for g in summary.get("gates") or []
    ]
    if gates:
        _suite(root, "gates", gates, started_at)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if not r.scored or r.route == r.expected_route:
            continue
        message = f"expected {r.expected_route}, routed {r.route_label}"
        text = f"{message}\nprompt: {r.prompt}"
        if r.served_model:
            text += f"\nserved model: {r.served_model}"
        by_task.setdefault(r.expected_route, []).append(
            {"classname": f"evalkit.{suite}.misrouted.{r.expected_route}", "name": r.id, "type": "Misrouted",
             "failure": message, "text": text})
    labels = list(summary.get("labels") or [])
    for task in sorted(by_task, key=lambda t: (labels.index(t) if t in labels else len(labels), t)):
        _suite(root, f"misrouted: expected {task}", by_task[task], started_at)
    tests = sum(int(s.get("tests", 0)) for s in root)
    failures = sum(int(s.get("failures", 0)) for s in root)
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
