"""The runner under faults: retries, backoff, Retry-After, timeouts, rate limit, error budget."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest

from evalkit.metrics import routing_metrics
from evalkit.records import MISSING
from evalkit.runner import (ErrorBudgetExceeded, RateLimiter, RunOptions, backoff_delay, run_cases)
from tests.conftest import run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, TASKS, Recorder, make_cases, ok_reply, route_for, target_for, write_case_suite

FAST = dict(backoff_base=0.01, backoff_max=0.05, seed=1)


def run(fake: FakeOpenAI, cases, **options):
    """Run cases in-process against the fake; return the results in completion order."""
    results = []
    opts = RunOptions(**{"concurrency": 4, **FAST, **options})

    async def go():
        target = target_for(fake.base_url)
        try:
            await run_cases(cases, target, opts, results.append)
        finally:
            await target.close()

    asyncio.run(go())
    return results


def warm_up(fake: FakeOpenAI) -> None:
    """One request first: the server's first request is slow, which would bunch up the arrival times."""
    import httpx

    httpx.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": []}, timeout=30)


def test_backoff_grows_exponentially_within_jitter_bounds():
    rng = random.Random(3)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
        for _ in range(50):
            d = backoff_delay(attempt, base=0.5, cap=30, rng=rng)
            assert ceiling / 2 <= d <= ceiling


def test_backoff_is_capped_and_retry_after_wins_when_longer():
    rng = random.Random(3)
    assert backoff_delay(12, base=0.5, cap=5.0, rng=rng) <= 5.0
    assert backoff_delay(1, base=0.5, cap=5.0, rng=rng, retry_after=7.0) == 7.0
    assert backoff_delay(1, base=0.5, cap=5.0, rng=rng, retry_after=900.0, retry_after_max=60.0) == 60.0


def test_rate_limiter_spaces_starts_evenly():
    now = [100.0]
    slept, granted = [], []

    async def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one start every 0.5 s

    async def one():
        await limiter.acquire()
        granted.append(now[0])

    async def go():
        await asyncio.gather(*(one() for _ in range(4)))

    asyncio.run(go())
    assert slept == [0.5, 0.5, 0.5]  # the first start is immediate
    assert granted == [100.0, 100.5, 101.0, 101.5]


def test_rate_limiter_keeps_its_spacing_after_a_stall():
    now = [0.0]
    slept = []

    async def sleep(s):
        slept.append(round(s, 6))
        now[0] += s + (2.0 if len(slept) == 1 else 0.0)  # the loop stalls 2 s during the first wait

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)  # one start a second
    grants = []

    async def one():
        await limiter.acquire()
        grants.append(now[0])

    async def go():
        await asyncio.gather(*(one() for _ in range(3)))

    asyncio.run(go())
    assert grants == [0.0, 3.0, 4.0]  # after the stall the next start still waits its full second


def test_rate_limiter_pause_holds_every_start():
    now = [0.0]
    slept = []

    async def sleep(s):
        slept.append(round(s, 6))

    async def sleep_and_advance(s):
        await sleep(s)
        now[0] += s

    limiter = RateLimiter(None, clock=lambda: now[0], sleep=sleep_and_advance)
    limiter.pause(2.0)
    asyncio.run(limiter.acquire())
    assert slept == [2.0]


def test_429_with_retry_after_is_honoured_then_succeeds():
    def decide(cid, attempt, body):
        if attempt == 1:
            return Reply(status=429, headers={"Retry-After": "0.4"}, error_message="rate limited")
        return ok_reply(cid)

    rec = Recorder(decide)
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1))
    assert result.status == "ok" and result.attempts == 2 and result.route == route_for("c000")
    first, second = rec.times("c000")
    assert second - first >= 0.4  # waited for Retry-After, though the backoff alone is ~0.01 s


def test_500_is_retried_until_the_retries_are_spent():
    rec = Recorder(lambda cid, attempt, body: Reply(status=500, error_message="upstream exploded"))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1), retries=2)
    assert rec.count("c000") == 3
    assert result.status == "error" and result.attempts == 3 and result.http_status == 500
    assert "HTTP 500: upstream exploded" in result.error and "3 attempts" in result.error


def test_400_is_not_retried():
    rec = Recorder(lambda cid, attempt, body: Reply(status=400, error_message="bad request"))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1), retries=3)
    assert rec.count("c000") == 1
    assert result.status == "error" and result.attempts == 1 and result.http_status == 400


@pytest.mark.slow
def test_a_slow_reply_times_out_per_attempt():
    rec = Recorder(lambda cid, attempt, body: Reply(delay_s=3.0, headers={ROUTE: "classify"}))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1), retries=1, timeout=0.3)
    assert result.status == "error" and result.attempts == 2 and result.http_status is None
    assert "timed out after 0.3 s" in result.error


def test_malformed_json_is_retried_and_then_an_error_not_a_crash():
    rec = Recorder(lambda cid, attempt, body: Reply(raw_body='{"id": "x", "choices": [', headers={ROUTE: "classify"}))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1), retries=1)
    assert rec.count("c000") == 2
    assert result.status == "error" and result.http_status == 200 and "malformed response body" in result.error


def test_a_json_body_of_the_wrong_shape_is_an_error():
    rec = Recorder(lambda cid, attempt, body: Reply(raw_body='{"choices": "nope", "usage": 5}',
                                                    headers={ROUTE: "classify"}))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1), retries=0)
    assert result.status == "error" and "malformed response body" in result.error


def test_missing_route_header_is_a_result_not_a_retry():
    rec = Recorder(lambda cid, attempt, body: Reply(content="hi"))
    with FakeOpenAI(rec) as fake:
        [result] = run(fake, make_cases(1))
    assert rec.count("c000") == 1
    assert result.status == "missing_route" and result.route is None and result.route_label == MISSING


@pytest.mark.slow
def test_mixed_faults_every_case_gets_exactly_one_final_status():
    """60 single cases and 4 sessions against a router failing ~40% of attempts in five ways."""
    kinds = ["429", "500", "timeout", "drop-header", "malformed-json"]
    fault_log = Counter()

    def decide(cid, attempt, body):
        rng = random.Random(f"{cid}/{attempt}")
        if rng.random() < 0.4:
            kind = rng.choice(kinds)
            fault_log[kind] += 1
            if kind == "429":
                return Reply(status=429, headers={"Retry-After": "0.05"})
            if kind == "500":
                return Reply(status=500)
            if kind == "timeout":
                return Reply(delay_s=1.5, headers={ROUTE: route_for(cid)})
            if kind == "drop-header":
                return Reply(content=f"answer to {cid}")
            return Reply(raw_body="{broken", headers={ROUTE: route_for(cid)})
        return ok_reply(cid)

    cases = make_cases(60, sessions=4, turns=3)
    rec = Recorder(decide)
    with FakeOpenAI(rec) as fake:
        results = run(fake, cases, concurrency=8, retries=2, timeout=0.4)
    ids = [r.id for r in results]
    assert sorted(ids) == sorted(c.id for c in cases) and len(set(ids)) == len(ids)
    assert set(fault_log) == set(kinds)  # every kind was exercised
    by_id = {r.id: r for r in results}
    for c in cases:
        r = by_id[c.id]
        assert r.attempts == rec.count(c.id)  # attempts counts the requests the router saw
        if r.status == "ok":
            assert r.route == route_for(c.id)
        if r.status == "missing_route":
            assert r.route is None
    # Errors are not misroutes: they leave the confusion matrix and accuracy.
    n_err = sum(r.status == "error" for r in results)
    n_missing = sum(r.status == "missing_route" for r in results)
    assert n_err > 0 and n_missing > 0
    m = routing_metrics(results, labels=TASKS)
    assert m["n_errors"] == n_err and m["n_scored"] == len(cases) - n_err
    assert sum(map(sum, m["confusion"]["matrix"])) == len(cases) - n_err
    col = m["confusion"]["columns"].index(MISSING)
    assert sum(row[col] for row in m["confusion"]["matrix"]) == n_missing
    # Every 'ok' case was routed as scripted, so the only misroutes are the missing headers.
    assert m["accuracy"] == pytest.approx((len(cases) - n_err - n_missing) / (len(cases) - n_err))


def test_sessions_keep_their_turn_order_and_history_through_retries():
    def decide(cid, attempt, body):
        return Reply(status=503) if attempt == 1 else ok_reply(cid)

    rec = Recorder(decide)
    with FakeOpenAI(rec) as fake:
        results = run(fake, make_cases(0, sessions=1, turns=3), retries=2)
    assert [r.id for r in results] == ["s0t1", "s0t2", "s0t3"]
    third = rec.bodies["s0t3"][-1]["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "user", "assistant", "user"]
    assert third[1]["content"] == "answer to s0t1" and third[3]["content"] == "answer to s0t2"


def test_error_budget_stops_the_run_and_cancels_the_rest():
    rec = Recorder(lambda cid, attempt, body: Reply(status=500))
    results = []
    with FakeOpenAI(rec) as fake:
        with pytest.raises(ErrorBudgetExceeded) as info:
            results = []
            opts = RunOptions(concurrency=1, retries=0, max_error_rate=0.2, n_planned=20, **FAST)

            async def go():
                target = target_for(fake.base_url)
                try:
                    await run_cases(make_cases(20), target, opts, results.append)
                finally:
                    await target.close()

            asyncio.run(go())
    # 20 cases at 0.2 allow 4 errors; the fifth stops the run, one case at a time.
    assert len(results) == 5 and info.value.errors == 5 and info.value.allowed == 4
    assert len(rec.log) == 5


def test_rpm_limit_spaces_requests_at_the_router():
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        warm_up(fake)
        rec.log.clear()
        run(fake, make_cases(6), concurrency=6, rpm=300)  # one start every 0.2 s
    times = sorted(t for _, t in rec.log)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.15, gaps


def test_cli_error_budget_exits_3_and_still_writes_the_report(tmp_path):
    cases = make_cases(30)
    suite = write_case_suite(tmp_path / "budget", cases)

    def decide(cid, attempt, body):
        return Reply(status=502, error_message="bad gateway") if int(cid[1:]) % 3 == 0 else ok_reply(cid)

    with FakeOpenAI(Recorder(decide)) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "0", "--max-error-rate", "0.1", "--concurrency", "1", "-q")
    assert proc.returncode == 3, proc.stderr
    assert "error budget exceeded" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    run_dir = next((tmp_path / "runs").glob("*/*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    # 30 cases at 0.1 allow 3 errors; c000, c003, c006, c009 fail: the fourth (at c009) stops the run.
    assert summary["n_errors"] == 4 and summary["n_cases"] == 10
    assert summary["run"]["n_not_run"] == 20 and "error budget exceeded" in summary["run"]["stopped"]
    html = (run_dir / "report.html").read_text()
    assert "Run stopped before it finished" in html and "bad gateway" in html
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["counts"]["not_run"] == 20 and manifest["stopped"]


@pytest.mark.slow
def test_do_target_is_rate_limited_below_the_router_limit_by_default(tmp_path, monkeypatch):
    import evalkit.runner as runner_module
    from evalkit.run import DO_DEFAULT_RPM, Reliability, TargetSpec, run_suite
    from evalkit.suites import load_suite

    # The limiter's own grant times, not the server's arrival times: arrivals carry connection
    # set-up and scheduling jitter on a busy machine, grants are what the limiter promises.
    grants: list[float] = []

    class RecordingLimiter(runner_module.RateLimiter):
        async def acquire(self) -> None:
            await super().acquire()
            grants.append(self.clock())

    monkeypatch.setattr(runner_module, "RateLimiter", RecordingLimiter)
    assert DO_DEFAULT_RPM < 1000  # DigitalOcean routers allow 1,000 requests a minute
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    suite = load_suite(write_case_suite(tmp_path / "s", make_cases(4)))
    monkeypatch.setenv("MODEL_ACCESS_KEY", "sk-do-test-key-0000")
    with FakeOpenAI(rec) as fake:
        warm_up(fake)
        rec.log.clear()
        monkeypatch.setenv("EVALKIT_DO_INFERENCE_URL", fake.base_url)
        do = run_suite(suite, TargetSpec(kind="do"), out=tmp_path / "runs", prices={}, concurrency=4)
        do_grants = list(grants)
        other = run_suite(suite, TargetSpec(kind="openai", base_url=fake.base_url), out=tmp_path / "runs",
                          prices={}, concurrency=4)
        unlimited = run_suite(suite, TargetSpec(kind="do"), out=tmp_path / "runs", prices={}, concurrency=4,
                              reliability=Reliability(rpm=0))
    assert do.manifest.options["rpm"] == DO_DEFAULT_RPM
    assert other.manifest.options["rpm"] is None and unlimited.manifest.options["rpm"] is None
    assert len(do_grants) == 4 and len(rec.log) == 12  # every case of the three runs reached the server
    gaps = [b - a for a, b in zip(do_grants, do_grants[1:])]
    assert min(gaps) >= 60 / DO_DEFAULT_RPM * 0.999, gaps  # four starts, each one interval after the last


def test_retry_after_reads_seconds_and_http_dates():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    from evalkit.targets import _retry_after

    assert _retry_after("2.5") == 2.5 and _retry_after("-3") == 0.0
    assert _retry_after(None) is None and _retry_after("soon") is None and _retry_after("nan") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after(later) <= 30
