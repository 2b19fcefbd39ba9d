"""What a run checks, and says, before it sends anything or while it goes: a baseline run of another
suite, a stored error count that already spends the error budget, a key the router refuses, the
progress count of a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI, Reply
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


def printed_command(stderr: str, before: str) -> list[str]:
    import shlex

    message = " ".join(stderr.split())
    start = message.index("`evalkit run") + 1
    return shlex.split(message[start:message.index(before, start)])


def test_a_refused_key_stops_the_run_early_naming_its_variable_and_the_printed_resume_finishes_it(tmp_path):
    from tests.conftest import cli_env

    cases = make_cases(40)
    suite = write_case_suite(tmp_path / "s", cases)
    secret = "sk-wrong-0123456789abcdef"
    good = {"key": "sk-right-0123456789abcdef"}

    def decide(body, headers):
        if headers.get("authorization") != f"Bearer {good['key']}":
            return Reply(status=401, error_message="Incorrect API key provided")
        return answer(body, headers)

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--api-key-env", "MY_ROUTER_KEY", "--concurrency", "4", "-q",
                       env=cli_env(MY_ROUTER_KEY=secret))
        refused = len(fake.requests)
        assert proc.returncode == 3, proc.stderr
        said = " ".join(proc.stderr.split())
        assert "refused the API key" in said and "$MY_ROUTER_KEY" in said and "Traceback" not in said, said
        (run_dir,) = run_dirs(tmp_path / "runs")
        assert refused < len(cases) // 2
        assert result_lines(run_dir) == []  # the refused cases have no result: the resume sends them
        command = printed_command(proc.stderr, "`")
        assert command[-2:] == ["--resume", str(run_dir)]
        finished = run_cli(*command[1:], env=cli_env(MY_ROUTER_KEY=good["key"]))
    assert secret not in proc.stdout + proc.stderr
    for path in run_dir.iterdir():
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert finished.returncode == 0, finished.stderr
    lines = result_lines(run_dir)
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert all(r["status"] == "ok" for r in lines)


def test_a_few_refused_answers_among_good_ones_do_not_stop_the_run(tmp_path):
    cases = make_cases(20)
    suite = write_case_suite(tmp_path / "s", cases)
    refused = {f"c{i:03d}" for i in range(0, 20, 3)}  # the first answer is refused, the next gets through

    def decide(body, headers):
        if body["messages"][-1]["content"][1:5] in refused:
            return Reply(status=403, error_message="forbidden for this model")
        return answer(body, headers)

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--concurrency", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    lines = result_lines(run_dir)
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert sorted(r["id"] for r in lines if r["status"] == "error") == sorted(refused)


def test_a_refused_keys_message_names_the_variable_the_key_is_read_from():
    from evalkit.run.job import key_hint
    from evalkit.run.spec import TargetSpec

    assert "$MODEL_ACCESS_KEY" in key_hint(TargetSpec(kind="do"))
    assert "$ROUTER_KEY" in key_hint(TargetSpec(kind="do", api_key_env="ROUTER_KEY"))
    assert "--api-key-env" in key_hint(TargetSpec(kind="openai", base_url="http://127.0.0.1:1/v1"))


def test_the_command_printed_by_an_error_budget_stop_finishes_the_run_against_the_same_faulty_router(tmp_path):
    cases = make_cases(40)
    suite = write_case_suite(tmp_path / "s", cases)
    failing = {"c003", "c013", "c023", "c033"}  # one case in ten, against a budget of 0.05 (2 of 40)

    def decide(body, headers):
        if body["messages"][-1]["content"][1:5] in failing:
            return Reply(status=500)
        return answer(body, headers)

    common = ("--target", "openai", "--concurrency", "1", "--retries", "0", "-q")
    with FakeOpenAI(decide) as fake:
        first = run_cli("run", suite, "--base-url", fake.base_url, "--out", tmp_path / "runs", *common,
                        "--max-error-rate", "0.05")
        assert first.returncode == 3, first.stderr
        (run_dir,) = run_dirs(tmp_path / "runs")
        assert "error budget exceeded: 3 of 40" in " ".join(first.stderr.split())
        stored = len(result_lines(run_dir))
        # Resumed with the same budget, the three stored errors spend it before a single request.
        sent = len(fake.requests)
        again = run_cli("run", suite, "--base-url", fake.base_url, *common, "--max-error-rate", "0.05",
                        "--resume", run_dir)
        assert again.returncode == 3, again.stderr
        said = " ".join(again.stderr.split())
        assert "error budget already spent" in said and "nothing was sent" in said, said
        assert len(fake.requests) == sent and len(result_lines(run_dir)) == stored
        # Both messages print a larger budget; the first's command finishes the run as printed, the
        # router as faulty as before.
        rates = []
        for proc in (first, again):
            command = printed_command(proc.stderr, "` or raise")
            assert command[-2:] == ["--resume", str(run_dir)]
            rates.append(float(command[command.index("--max-error-rate") + 1]))
        assert rates[0] == rates[1] > 0.05
        finished = run_cli(*printed_command(first.stderr, "` or raise")[1:])
    assert finished.returncode == 0, finished.stderr
    lines = result_lines(run_dir)
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert sorted(r["id"] for r in lines if r["status"] == "error") == sorted(failing)


def test_a_dead_router_keeps_no_result_for_cases_that_could_not_connect_so_the_printed_resume_sends_them(tmp_path):
    from evalkit.emulator.server import free_port

    cases = make_cases(30)
    suite = write_case_suite(tmp_path / "s", cases)
    port = free_port()  # nothing listens here yet: the router is not started
    proc = run_cli("run", suite, "--target", "openai", "--base-url", f"http://127.0.0.1:{port}/v1",
                   "--out", tmp_path / "runs", "--concurrency", "4", "--retries", "1", "--backoff", "0.01", "-q")
    assert proc.returncode == 3, proc.stderr
    assert "could not be reached" in proc.stderr and "Traceback" not in proc.stderr
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert result_lines(run_dir) == []  # no case reached the router: none has a result, the resume sends them
    command = printed_command(proc.stderr, "`")
    assert command[-2:] == ["--resume", str(run_dir)]
    with FakeOpenAI(answer, port=port) as router:  # the router, started where the run looked for it
        finished = run_cli(*command[1:])
    assert finished.returncode == 0, finished.stderr
    assert len(router.requests) == len(cases)
    lines = result_lines(run_dir)
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert all(r["status"] == "ok" for r in lines), [r for r in lines if r["status"] != "ok"][:2]
