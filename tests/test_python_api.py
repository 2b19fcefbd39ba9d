"""docs/python-api.md runs as written, and what it prints agrees with the files on disk and with
what the command line reports for the same runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

import evalkit
from tests.conftest import ROOT, run_cli
from tests.run_helpers import slice_suite, worse_router

DOC = ROOT / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    """Every python block of the page, run in order in one namespace, in a folder holding the
    suite and the candidate router config the page names."""
    root = tmp_path_factory.mktemp("python-api")
    slice_suite(root / "suites" / "saas-support", per_task=4)
    (root / "router.candidate.json").write_text(json.dumps(worse_router()))
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    namespace: dict = {}
    printed = io.StringIO()
    before = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(printed):
            for block in blocks:
                exec(compile(block, str(DOC), "exec"), namespace)
    finally:
        os.chdir(before)
    return {"root": root, "ns": namespace, "printed": printed.getvalue(), "blocks": blocks}


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_page_has_examples_and_the_public_names_are_exported():
    assert len(python_blocks(DOC.read_text(encoding="utf-8"))) >= 6
    for name in ("load_run", "run_suite", "compare", "gate", "Run", "Summary", "Comparison"):
        assert name in evalkit.__all__ and getattr(evalkit, name) is not None


@pytest.mark.slow
def test_the_summary_in_python_is_summary_json(doc):
    root, ns = doc["root"], doc["ns"]
    run = ns["run"]
    stored = read_json(root / run.path / "summary.json")
    assert run.summary.to_json() == stored
    assert ns["summary"].accuracy == stored["accuracy"]
    lo, hi = stored["accuracy_ci95"]
    assert f"accuracy {stored['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f})" in doc["printed"]
    assert f"{stored['n_cases']} {stored['n_errors']} {stored['per_task']['reasoning']['recall']}" in doc["printed"]
    assert str(stored["confusion"]["columns"]) in doc["printed"]


@pytest.mark.slow
def test_the_frame_has_one_row_per_line_of_results_jsonl(doc):
    root, ns = doc["root"], doc["ns"]
    frame = ns["frame"]
    rows = [json.loads(line) for line in (root / ns["run"].path / "results.jsonl").read_text().splitlines()]
    assert list(frame["id"]) == [r["id"] for r in rows]
    assert list(frame["route"]) == [r["route"] for r in rows]
    assert list(frame["latency_ms"]) == [r["latency_ms"] for r in rows]
    wrong = [r for r in rows if r["status"] != "error" and r["route"] != r["expected_route"]]
    assert len(ns["misrouted"]) == len(wrong)
    assert f"{len(wrong)} misrouted" in doc["printed"]


@pytest.mark.slow
def test_the_comparison_in_python_is_what_evalkit_compare_writes(doc, tmp_path: Path):
    root, ns = doc["root"], doc["ns"]
    diff, before, after = ns["diff"], ns["before"], ns["after"]
    proc = run_cli("compare", before.path, after.path, "--out", tmp_path / "cmp", "--json", cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    written = read_json(tmp_path / "cmp" / "diff.json")
    assert diff.to_json() == written
    assert diff.regressed == [f["id"] for f in written["regressed"]]
    assert diff.fixed == [f["id"] for f in written["fixed"]]
    assert diff.mcnemar_p == written["mcnemar"]["p_value"]
    assert diff.regressed, "the candidate's classify description should break classify cases"
    assert f"regressed: {diff.regressed}" in doc["printed"]
    assert f"McNemar exact p = {written['mcnemar']['p_value']:.4g}" in doc["printed"]
    accuracy = next(m for m in written["metrics"] if m["metric"] == "accuracy")
    low, high = accuracy["ci95"]
    assert (f"accuracy {accuracy['a']:.3f} -> {accuracy['b']:.3f}, delta {accuracy['delta']:+.3f} "
            f"(95% CI {low:+.3f} to {high:+.3f})") in doc["printed"]
    assert ("a check failed" if written["verdict"]["failed"] else "no failing check") in doc["printed"]


@pytest.mark.slow
def test_the_gates_in_python_are_what_evalkit_gate_reports(doc):
    root, ns = doc["root"], doc["ns"]
    proc = run_cli("gate", ns["after"].path, "accuracy >= 0.5", "recall[reasoning] >= 0.8", "--json", cwd=root)
    reported = json.loads(proc.stdout)
    assert proc.returncode == (0 if reported["passed"] else 1)
    assert [g.to_json() for g in ns["report"].gates] == reported["gates"]
    assert ns["report"].passed is reported["passed"]
    for g in reported["gates"]:
        assert f"{g['passed']} {g['message']}" in doc["printed"]
    relative = ns["relative"].gates[0]
    assert relative.baseline == read_json(root / ns["before"].path / "summary.json")["accuracy"]


@pytest.mark.slow
def test_run_suite_writes_the_run_directory_evalkit_run_writes(doc):
    root, ns = doc["root"], doc["ns"]
    before = ns["before"]
    for name in ("manifest.json", "results.jsonl", "router.json", "summary.json", "report.html", "summary.md",
                 "junit.xml"):
        assert (root / before.path / name).is_file(), name
    assert evalkit.load_run(root / before.path).summary == before.summary
    assert callable(ns["run_on_digitalocean"])  # defined by the page, not called (it needs a key)
