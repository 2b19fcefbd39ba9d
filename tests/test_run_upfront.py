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


def progress_lines(stderr: str) -> list[tuple[int, int]]:
    import re

    return [(int(m[1]), int(m[2])) for m in re.finditer(r"progress: (\d+) of (\d+) cases", stderr)]


def test_the_progress_of_a_resumed_run_counts_its_stored_results_and_ends_at_every_case(tmp_path):
    cases = make_cases(20)
    suite = write_case_suite(tmp_path / "s", cases)
    with FakeOpenAI(answer) as fake:
        first = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                        "--concurrency", "1")
        (run_dir,) = run_dirs(tmp_path / "runs")
        kept = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)[:7]
        (run_dir / "results.jsonl").write_text("".join(kept))  # as a run killed after its 7th result left it
        resumed = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--concurrency", "1",
                          "--resume", run_dir)
    assert first.returncode == 0 and resumed.returncode == 0, first.stderr + resumed.stderr
    counts = progress_lines(resumed.stderr)
    assert counts and all(total == 20 for _, total in counts), counts
    assert counts[-1] == (20, 20) and all(done > 7 for done, _ in counts), counts
    assert len(result_lines(run_dir)) == 20


def test_the_progress_of_a_shard_ends_at_the_shards_cases(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(20))
    with FakeOpenAI(answer) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--shard", "1/2")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    n = len(result_lines(run_dir))
    assert 0 < n < 20
    assert progress_lines(proc.stderr)[-1] == (n, n)
