"""What a run checks, and says, before it sends anything or while it goes: a baseline run of another
suite, a stored error count that already spends the error budget, a key the router refuses, the
progress count of a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI
from evalkit.records import Case
from tests.fault_helpers import make_cases, ok_reply, write_case_suite


def run_dirs(out: Path) -> list[Path]:
    return sorted(out.glob("*/*")) if out.exists() else []


def result_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def answer(body, headers):
    return ok_reply(body["messages"][-1]["content"][1:5])


def test_a_baseline_of_another_suite_with_no_shared_case_is_refused_before_any_request(tmp_path):
    other = [Case(id=f"x{i:03d}", prompt=f"[x{i:03d}] another question {i}", expected_route="classify")
             for i in range(6)]
    other_suite = write_case_suite(tmp_path / "suites" / "clinc-domains", other)
    suite = write_case_suite(tmp_path / "suites" / "saas-support", make_cases(6))
    with FakeOpenAI(answer) as fake:
        base = run_cli("run", other_suite, "--target", "openai", "--base-url", fake.base_url, "--out",
                       tmp_path / "base", "-q")
        assert base.returncode == 0, base.stderr
        (baseline,) = run_dirs(tmp_path / "base")
        sent_before = len(fake.requests)
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--baseline", baseline, "-q")
        sent = len(fake.requests) - sent_before
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr
    assert "shares no case id" in said and "'clinc-domains'" in said and "'saas-support'" in said, said
    assert "Traceback" not in said
    assert sent == 0
    assert run_dirs(tmp_path / "runs") == []


def test_a_baseline_of_the_same_suite_with_changed_cases_is_still_compared(tmp_path):
    cases = make_cases(6)
    suite = write_case_suite(tmp_path / "suites" / "saas-support", cases)
    with FakeOpenAI(answer) as fake:
        base = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "base",
                       "-q")
        (baseline,) = run_dirs(tmp_path / "base")
        write_case_suite(suite, [*cases[:4], *make_cases(9)[6:]])  # two cases dropped, three added
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--baseline", baseline, "-q")
    assert base.returncode == 0 and proc.returncode == 0, base.stderr + proc.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert (run_dir / "compare.html").exists()
