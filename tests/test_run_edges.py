"""The sharp edges of a run: a router that sends no route header, a dead router, an interrupted
run, judging route-only answers, runs that scored nothing, long Retry-After waits."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, make_cases, ok_reply, write_case_suite


def run_dir_of(out: Path) -> Path:
    return next(out.glob("*/*"))


def result_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def test_a_dead_router_stops_the_run_early_naming_the_url_without_credentials(tmp_path):
    from evalkit.emulator.server import free_port

    cases = make_cases(40)
    suite = write_case_suite(tmp_path / "s", cases)
    url = f"http://someone:hunter2secret@127.0.0.1:{free_port()}/v1?api_key=querysecret"
    proc = run_cli("run", suite, "--target", "openai", "--base-url", url, "--out", tmp_path / "runs",
                   "--concurrency", "4", "--retries", "3", "--backoff", "0.01")
    assert proc.returncode == 3, proc.stderr
    assert "could not be reached" in proc.stderr and "Traceback" not in proc.stderr
    assert "127.0.0.1" in proc.stderr
    assert "hunter2secret" not in proc.stderr + proc.stdout and "querysecret" not in proc.stderr + proc.stdout
    run_dir = run_dir_of(tmp_path / "runs")
    assert f"--concurrency 4 --retries 3 --backoff 0.01 --resume {run_dir}" in " ".join(proc.stderr.split())
    # Without the early stop every case spends its 4 attempts and gets an error result.
    assert len(result_lines(run_dir)) < len(cases) // 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "could not be reached" in manifest["stopped"] and "hunter2secret" not in manifest["stopped"]


def test_a_run_that_scored_no_case_exits_3_with_a_message(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(6))

    def decide(body, headers):
        n = int(body["messages"][-1]["content"][2:5])
        if n % 3 == 0:
            return Reply(status=302, raw_body="", headers={"location": "https://login.example/"})
        if n % 3 == 1:
            return Reply(raw_body="<html><body>Sign in</body></html>", headers={"content-type": "text/html"})
        return Reply(status=429, error_message="slow down")

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "0", "-q")
    assert proc.returncode == 3, proc.stderr
    assert "no case was scored" in proc.stderr and "Traceback" not in proc.stderr
    assert "HTTP 302" in proc.stderr and "failed to connect" not in proc.stderr
    assert (run_dir_of(tmp_path / "runs") / "report.html").is_file()


def test_a_run_where_every_case_timed_out_says_timed_out(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(2))
    with FakeOpenAI(Reply(delay_s=3.0, headers={ROUTE: "classify"})) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "0", "--timeout", "0.3", "-q")
    assert proc.returncode == 3, proc.stderr
    assert "timed out" in proc.stderr.split("found:")[0]
    assert "failed to connect" not in proc.stderr


def test_a_long_retry_after_prints_a_status_line(tmp_path):
    cases = make_cases(1)
    suite = write_case_suite(tmp_path / "s", cases)
    replies = [Reply(status=429, headers={"retry-after": "2"}), ok_reply(cases[0].id)]
    with FakeOpenAI(replies) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "2")
    assert proc.returncode == 0, proc.stderr
    assert "router asked to wait 2 s (Retry-After); pausing" in proc.stderr


def test_a_router_that_sends_no_route_header_exits_3_and_says_which_headers_came_back(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(4))

    def decide(body, headers):
        return Reply(headers={"x-route-name": "classify-value-not-a-name", "x-request-id": "abc"})

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "-q")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in (ROUTE, "x-route-name", "x-request-id", "--route-header"):
        assert needle in proc.stderr, needle
    run_dir = run_dir_of(tmp_path / "runs")
    summary_md = (run_dir / "summary.md").read_text()
    html = (run_dir / "report.html").read_text()
    for text in (summary_md, html):
        assert "no route header" in text.lower() and "x-route-name" in text and "--route-header" in text
    stored = (run_dir / "results.jsonl").read_text() + summary_md + html
    assert "classify-value-not-a-name" not in stored  # names only, never values


def test_a_router_that_mostly_sends_no_route_header_is_warned_about(tmp_path):
    cases = make_cases(4)
    suite = write_case_suite(tmp_path / "s", cases)

    def decide(body, headers):
        cid = body["messages"][-1]["content"][1:5]
        return ok_reply(cid) if cid == "c000" else Reply(headers={"x-route-name": "classify"})

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs")
    assert proc.returncode == 0, proc.stderr
    assert "3 of 4 answered cases carried no route header" in proc.stderr and "x-route-name" in proc.stderr
    summary_md = (run_dir_of(tmp_path / "runs") / "summary.md").read_text()
    assert "no route header" in summary_md.lower() and "--route-header" in summary_md


JUDGE_VERDICT = Reply(content="The answer is right.\nVERDICT: 4")


def test_judging_a_route_only_run_says_there_is_no_content_and_how_to_get_it(tmp_path):
    from tests.conftest import cli_env, write_suite

    suite = write_suite(tmp_path / "mini", [
        {"id": "a", "prompt": "Classify this support message: I was charged twice.", "expected_route": "classify"},
        {"id": "b", "prompt": "How do I change my account email?", "expected_route": "customer-qa"}])
    env = cli_env(JUDGE_KEY="judge-key-0000", EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    with FakeOpenAI(JUDGE_VERDICT) as judge:
        proc = run_cli("run", suite, "--out", tmp_path / "runs", "--judge", "judge-model", "--judge-base-url",
                       judge.base_url, "--judge-api-key-env", "JUDGE_KEY", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "route-only (no content)" in proc.stderr and "--upstream" in proc.stderr
        assert "judge judge-model per path" not in proc.stdout  # no empty table
        run_dir = run_dir_of(tmp_path / "runs")
        judged = run_cli("judge", run_dir, "--judge", "judge-model", "--judge-base-url", judge.base_url,
                         "--judge-api-key-env", "JUDGE_KEY", env=env)
        assert judge.requests == []
    assert judged.returncode == 2, judged.stderr
    assert "nothing to judge" in judged.stderr and "route-only (no content)" in judged.stderr
    assert "--upstream" in judged.stderr and "Traceback" not in judged.stderr
    assert not (run_dir / "judge.jsonl").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["judge"]["status"] == "skipped"


def test_the_judging_skipped_hint_is_a_command_that_works_as_printed(tmp_path):
    import shlex

    from tests.conftest import cli_env

    cases = make_cases(2)
    suite = write_case_suite(tmp_path / "s", cases)
    env = cli_env(EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MODEL_ACCESS_KEY", None)
    env.pop("MY_JUDGE_KEY", None)
    with FakeOpenAI(lambda body, headers: ok_reply(body["messages"][-1]["content"][1:5])) as router, \
            FakeOpenAI(JUDGE_VERDICT) as judge:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", router.base_url, "--out", tmp_path / "runs",
                       "--judge", "judge-model", "--judge-base-url", judge.base_url, "--judge-api-key-env",
                       "MY_JUDGE_KEY", "-q", env=env)
        assert proc.returncode == 0, proc.stderr
        run_dir = run_dir_of(tmp_path / "runs")
        fix = json.loads((run_dir / "summary.json").read_text())["judge"]["fix"]
        command = shlex.split(fix[fix.index("evalkit judge"):])
        assert command[:2] == ["evalkit", "judge"]
        judged = run_cli(*command[1:], env={**env, "MY_JUDGE_KEY": "judge-key-0000"})
        assert judged.returncode == 0, judged.stderr
        assert len(judge.requests) == 2 * len(cases)  # two criteria per answer


@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_an_interrupted_run_writes_what_is_complete_and_prints_the_command_that_finishes_it(tmp_path, signum, code,
                                                                                           name):
    """A real process: the signal is the point."""
    import shlex
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, cli_env

    cases = make_cases(30)
    suite = write_case_suite(tmp_path / "s", cases)
    out = tmp_path / "my runs"  # a space: the printed command must quote it
    slow = {"delay": 0.15}

    def decide(body, headers):
        return ok_reply(body["messages"][-1]["content"][1:5], delay_s=slow["delay"])

    with FakeOpenAI(decide) as fake:
        proc = subprocess.Popen([sys.executable, "-m", "evalkit", "run", str(suite), "--target", "openai",
                                 "--base-url", fake.base_url, "--out", str(out), "-c", "1", "--retries", "1",
                                 "--gate", "accuracy >= 0.5"],
                                cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                found = list(out.glob("s/*/results.jsonl"))
                if found and len(found[0].read_text().splitlines()) >= 3:
                    break
                time.sleep(0.05)
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == code, stderr
        assert "Traceback" not in stderr
        run_dir = run_dir_of(out)
        done = len(result_lines(run_dir))
        assert 3 <= done < len(cases)
        assert f"interrupted ({name}): {done} of {len(cases)} cases done" in stderr and str(run_dir) in stderr
        assert "Run stopped before it finished" in (run_dir / "report.html").read_text()
        command = next(line.strip() for line in stderr.splitlines() if line.strip().startswith("evalkit run "))
        args = shlex.split(command)
        assert args[-2:] == ["--resume", str(run_dir)]
        for given in (["--concurrency", "1"], ["--retries", "1"], ["--gate", "accuracy >= 0.5"],
                      ["--base-url", fake.base_url], ["--out", str(out)]):
            assert any(args[i:i + 2] == given for i in range(len(args))), given
        slow["delay"] = 0.0
        finished = run_cli(*args[1:])
    assert finished.returncode == 0, finished.stderr
    ids = [r["id"] for r in result_lines(run_dir)]
    assert sorted(ids) == sorted(c.id for c in cases)


def test_a_sigterm_stops_the_run_between_steps_never_inside_its_own_code(tmp_path):
    """SIGTERM arriving while the run's own code runs (here: the result callback) is acted on by the
    event loop between two steps, as Ctrl-C is: the callback finishes, every result written was
    handed over, and nothing is left pending to print a traceback at exit. Raised where it landed,
    it tore the callback and, under load, left the client half closed (a flaky traceback)."""
    import os

    from evalkit import run_suite
    from evalkit.commands.run import sigterm_as_interrupt
    from evalkit.errors import Interrupted
    from evalkit.run import TargetSpec

    suite = write_case_suite(tmp_path / "s", make_cases(12))
    handed: list[str] = []

    def on_result(result) -> None:
        if not handed:
            os.kill(os.getpid(), signal.SIGTERM)
        handed.append(result.id)

    def decide(body, headers):
        return ok_reply(body["messages"][-1]["content"][1:5], delay_s=0.05)

    with FakeOpenAI(decide) as fake, sigterm_as_interrupt(), pytest.raises(Interrupted) as stop:
        run_suite(suite, target=TargetSpec(kind="openai", base_url=fake.base_url), out=tmp_path / "runs",
                  concurrency=2, on_result=on_result)
    assert stop.value.signal_name == "SIGTERM" and stop.value.exit_code == 143
    written = [r["id"] for r in result_lines(run_dir_of(tmp_path / "runs"))]
    assert handed and handed == written  # no result written without being handed over, or the reverse
    assert stop.value.n_done == len(written) < 12


def test_a_run_stopped_by_its_error_budget_prints_the_command_that_finishes_it_and_it_works(tmp_path):
    import shlex

    cases = make_cases(12)
    suite = write_case_suite(tmp_path / "my suites" / "s", cases)
    failing = {"on": True}

    def decide(body, headers):
        if failing["on"]:
            return Reply(status=500)
        return ok_reply(body["messages"][-1]["content"][1:5])

    with FakeOpenAI(decide) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--concurrency", "1", "--retries", "0", "--max-error-rate", "0.1", "--gate",
                       "accuracy >= 0.0", "-q")
        assert proc.returncode == 3, proc.stderr
        run_dir = run_dir_of(tmp_path / "runs")
        message = " ".join(proc.stderr.split())
        assert "error budget exceeded" in message
        command = shlex.split(message[message.index("`evalkit run") + 1:message.index("` or raise")])
        assert command[-2:] == ["--resume", str(run_dir)] and str(suite) in command
        stopped_after = len(result_lines(run_dir))
        assert stopped_after < len(cases)
        failing["on"] = False
        finished = run_cli(*command[1:])
        assert finished.returncode == 0, finished.stderr
    lines = result_lines(run_dir)
    assert sorted(r["id"] for r in lines) == sorted(c.id for c in cases)
    assert sum(r["status"] == "ok" for r in lines) == len(cases) - stopped_after


@pytest.mark.parametrize("as_json", [False, True])
def test_why_judging_was_skipped_is_said_once_also_with_json(tmp_path, as_json):
    from tests.conftest import cli_env, write_suite

    suite = write_suite(tmp_path / "mini", [
        {"id": "a", "prompt": "Classify this support message: I was charged twice.", "expected_route": "classify"}])
    env = cli_env(EVALKIT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MY_JUDGE_KEY", None)
    json_flag = ["--json"] if as_json else []
    with FakeOpenAI(JUDGE_VERDICT) as judge, \
            FakeOpenAI(lambda body, headers: Reply(content="an answer")) as upstream:
        route_only = run_cli("run", suite, "--out", tmp_path / "a", "--judge", "judge-model", "--judge-base-url",
                             judge.base_url, *json_flag, env={**env, "MY_JUDGE_KEY": "judge-key-0000"})
        no_key = run_cli("run", suite, "--out", tmp_path / "b", "--upstream", f"*={upstream.base_url}", "--judge",
                         "judge-model", "--judge-base-url", judge.base_url, "--judge-api-key-env", "MY_JUDGE_KEY",
                         *json_flag, env=env)
    for proc, why in ((route_only, "route-only (no content)"), (no_key, "no key in MY_JUDGE_KEY")):
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stderr.split())
        assert said.count("judging skipped:") == 1 and why in said, said


def test_outside_a_terminal_a_run_prints_a_progress_line_at_every_tenth_of_its_cases(tmp_path):
    cases = make_cases(20)
    suite = write_case_suite(tmp_path / "s", cases)
    with FakeOpenAI(lambda body, headers: ok_reply(body["messages"][-1]["content"][1:5])) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "a")
        quiet = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "b", "-q")
    assert proc.returncode == 0 and quiet.returncode == 0, proc.stderr + quiet.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress:")]
    assert [line.split(" cases")[0] for line in lines] == [f"progress: {n} of 20" for n in range(2, 21, 2)]
    assert lines[-1] == "progress: 20 of 20 cases (0 misrouted, 0 errors)"
    assert "progress:" not in quiet.stderr


def test_a_cancellation_that_arrives_as_the_answer_does_stops_the_case(tmp_path):
    """Ctrl-C cancels the run's workers; one whose answer completed in the same instant must stop
    too (Python 3.11's asyncio.wait_for returned the answer instead, and that worker went on
    sending every remaining case while the interrupted run waited for it)."""
    import asyncio

    from evalkit.records import Case
    from evalkit.runner import RunOptions, send_case

    class Target:
        info = None

        def __init__(self) -> None:
            self.gate: asyncio.Future = asyncio.get_running_loop().create_future()

        async def send(self, messages, **kwargs):
            await self.gate
            return "answer"

    async def scenario() -> str:
        target = Target()
        case = Case(id="c1", prompt="hello", expected_route="classify")
        task = asyncio.ensure_future(send_case(case, case.own_messages(), target, RunOptions(timeout=30.0), None))
        await asyncio.sleep(0)  # the call is now waiting for its answer
        target.gate.set_result(None)  # the answer arrives ...
        task.cancel()  # ... and Ctrl-C in the same instant
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "went on"

    assert asyncio.run(scenario()) == "cancelled"


def test_the_printed_resume_command_never_shows_url_credentials(tmp_path):
    # A dead router stops the run early and prints the command that finishes it, built from the
    # options given: user info and query values of a URL are masked there too, and it says so.
    from evalkit.emulator.server import free_port

    suite = write_case_suite(tmp_path / "s", make_cases(12))  # more than the dead-router rule's 6 attempts
    url = f"http://alice:secretpw@127.0.0.1:{free_port()}/v1?key=abc123"
    proc = run_cli("run", suite, "--target", "openai", "--base-url", url, "--out", tmp_path / "runs", "-q",
                   "--retries", "0")
    assert proc.returncode == 3, proc.stderr
    output = proc.stdout + proc.stderr
    assert "--resume" in output and "put back the URL's credentials and query values" in output
    for secret in ("secretpw", "alice", "abc123"):
        assert secret not in output, secret
