"""The one retry policy (evalkit.httpclient) in every HTTP client: real loopback servers answer
429 / 503 with a Retry-After, in seconds and as an HTTP date, then 200; the clients retry and
wait what the header asks. The waits are recorded by an injected sleep, not slept and not timed."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evalkit.control_plane import ROUTERS_PATH, ControlPlane
from evalkit.emulator.server import LocalRouter
from evalkit.errors import ControlPlaneError
from evalkit.httpclient import RetryPolicy, backoff_delay, is_retryable_status, retry_after_seconds
from evalkit.judge.client import JudgeCallError, JudgeClient, VerdictCache
from evalkit.targets import _retry_after, make_client, wait_until_answers
from tests.fake_openai import FakeOpenAI, Reply

ROUTER = {"uuid": "123e4567-e89b-12d3-a456-426614174000", "name": "demo",
          "config": {"policies": [{"custom_task": {"name": "classify", "description": "Classify tickets."},
                                   "models": ["m1"]}], "fallback_models": ["m3"]}}


def http_date(seconds_ahead: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead), usegmt=True)


class Recorder:
    """An injected sleep: keeps the waits the policy chose."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def policy(recorder: Recorder, **kw: Any) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1), sleep=recorder.sleep, async_sleep=recorder.async_sleep, **kw)


def test_retry_after_reads_seconds_and_http_dates_with_one_parser():
    assert _retry_after is retry_after_seconds  # the runner's parser is the policy's
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(http_date(-60)) == 0.0
    assert 25.0 < retry_after_seconds(http_date(30)) <= 30.0
    assert retry_after_seconds("") is None and retry_after_seconds("later") is None


def test_retryable_statuses_and_backoff_with_jitter():
    assert all(is_retryable_status(s) for s in (None, 408, 409, 429, 500, 502, 503, 599))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 422))
    rng = random.Random(3)
    delays = [backoff_delay(3, base=1.0, cap=30.0, rng=rng) for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1  # half to all of 1 * 2**2, jittered


class ScriptedPlane:
    """A stand-in control plane on 127.0.0.1: GET of a router answers the scripted replies in turn."""

    def __init__(self, replies: list[tuple[int, dict[str, str]]]) -> None:
        self.replies = list(replies)
        self.requests = 0

        async def get_router(request: Request) -> Response:
            self.requests += 1
            if self.replies:
                status, headers = self.replies.pop(0)
                return JSONResponse({"id": "too_many_requests", "message": "slow down"}, status_code=status,
                                    headers=headers)
            return JSONResponse({"model_router": ROUTER})

        self.server = LocalRouter(Starlette(routes=[Route(ROUTERS_PATH + "/{uuid}", get_router, methods=["GET"])]))


def test_control_plane_honours_retry_after_in_seconds_and_as_an_http_date():
    plane = ScriptedPlane([(429, {"Retry-After": "2"}), (503, {"Retry-After": http_date(90)})])
    recorder = Recorder()
    with plane.server:
        with ControlPlane("dop_v1_test", base_url=plane.server.root_url, policy=policy(recorder, retries=2,
                                                                                        retry_after_max=30.0)) as cp:
            router = cp.get(ROUTER["uuid"])
    assert router.name == "demo" and plane.requests == 3
    # the header wins over the backoff (at most 0.5 s, then 1 s); the date 90 s ahead is cut to 30 s
    assert recorder.waits == [2.0, 30.0]


def test_control_plane_gives_up_after_its_retries():
    plane = ScriptedPlane([(503, {"Retry-After": "1"})] * 5)
    recorder = Recorder()
    with plane.server:
        with ControlPlane("dop_v1_test", base_url=plane.server.root_url, policy=policy(recorder, retries=2)) as cp:
            with pytest.raises(ControlPlaneError) as info:
                cp.get(ROUTER["uuid"])
    assert plane.requests == 3 and recorder.waits == [1.0, 1.0]
    assert "503" in str(info.value)


def judge_call(fake: FakeOpenAI, recorder: Recorder, **kw: Any) -> Any:
    async def go() -> Any:
        judge = JudgeClient(make_client(fake.base_url, "judge-key"), model="judge", cache=VerdictCache(None),
                            price=None, policy=policy(recorder, **kw))
        try:
            return await judge.complete([{"role": "user", "content": "grade this"}])
        finally:
            await judge.close()
    return asyncio.run(go())


def test_judge_client_honours_retry_after_in_seconds_and_as_an_http_date():
    recorder = Recorder()
    with FakeOpenAI([Reply(status=429, headers={"Retry-After": "3"}),
                     Reply(status=503, headers={"Retry-After": http_date(40)}),
                     Reply(content="score: 5")]) as fake:
        completion = judge_call(fake, recorder, retries=3)
    assert completion.text == "score: 5" and len(fake.requests) == 3
    assert recorder.waits[0] == 3.0
    assert 30.0 < recorder.waits[1] <= 40.0  # the date, 40 s ahead when the reply was written


def test_judge_client_does_not_retry_a_400_and_stops_after_its_retries():
    recorder = Recorder()
    with FakeOpenAI(Reply(status=400)) as fake:
        with pytest.raises(JudgeCallError, match="HTTP 400"):
            judge_call(fake, recorder)
    assert len(fake.requests) == 1 and recorder.waits == []
    recorder = Recorder()
    with FakeOpenAI(Reply(status=429, headers={"Retry-After": "1"})) as fake:
        with pytest.raises(JudgeCallError, match="HTTP 429"):
            judge_call(fake, recorder, retries=2)
    assert len(fake.requests) == 3 and recorder.waits == [1.0, 1.0]


def test_readiness_probe_honours_retry_after():
    recorder = Recorder()
    with FakeOpenAI([Reply(status=429, headers={"Retry-After": "4"}), Reply(status=404), Reply()]) as fake:
        attempts = wait_until_answers(fake.base_url, "key", "router:demo", timeout=300, policy=policy(recorder))
    assert attempts == 3
    assert recorder.waits[0] == 4.0 and recorder.waits[1] <= 1.0  # then the backoff: half to all of 0.5 * 2
