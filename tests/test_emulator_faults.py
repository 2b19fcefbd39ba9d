"""Seeded fault injection of the local router (429, 500, timeout, dropped route header, malformed JSON, latency)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from evalkit.emulator import LocalRouter, TfidfClassifier, create_app
from evalkit.emulator.faults import FAULT_KINDS, FaultConfig, FaultInjector, parse_fault_kinds
from evalkit.errors import UsageError
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER

ROUTE = "x-model-router-selected-route"
BODY = {"model": "router:cost-governance-demo",
        "messages": [{"role": "user", "content": "Classify this support ticket: I was charged twice"}]}


def app_with(**faults: Any) -> LocalRouter:
    return LocalRouter(create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=TfidfClassifier(), **faults))


def outcomes(lr: LocalRouter, n: int) -> list[str]:
    """One label per request, sent one at a time: the status, or 'no-header' / 'bad-json' for 200s."""
    labels = []
    with httpx.Client(base_url=lr.base_url, timeout=10) as http:
        for _ in range(n):
            resp = http.post("/chat/completions", json=BODY)
            if resp.status_code != 200:
                labels.append(str(resp.status_code))
                continue
            try:
                resp.json()
            except ValueError:
                labels.append("bad-json")
                continue
            labels.append("ok" if ROUTE in resp.headers else "no-header")
    return labels


def test_same_seed_same_faults_in_the_same_places() -> None:
    kinds = "429,500,drop-header,malformed-json"
    with app_with(fault_rate=0.5, fault_kinds=kinds, seed=7) as a:
        first = outcomes(a, 40)
    with app_with(fault_rate=0.5, fault_kinds=kinds, seed=7) as b:
        second = outcomes(b, 40)
    with app_with(fault_rate=0.5, fault_kinds=kinds, seed=8) as c:
        other = outcomes(c, 40)
    assert first == second
    assert first != other
    assert set(first) == {"ok", "429", "500", "no-header", "bad-json"}


def test_rate_zero_injects_nothing_and_rate_one_always() -> None:
    with app_with(fault_rate=0.0, seed=1) as lr:
        assert outcomes(lr, 10) == ["ok"] * 10
    with app_with(fault_rate=1.0, fault_kinds=["500"], seed=1) as lr:
        assert outcomes(lr, 5) == ["500"] * 5


def test_429_carries_retry_after_and_an_openai_error_body() -> None:
    with app_with(fault_rate=1.0, fault_kinds="429", seed=3) as lr:
        resp = httpx.post(f"{lr.base_url}/chat/completions", json=BODY)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"


def test_malformed_json_is_a_200_that_does_not_parse_and_streams_break_too() -> None:
    with app_with(fault_rate=1.0, fault_kinds="malformed-json", seed=3) as lr:
        plain = httpx.post(f"{lr.base_url}/chat/completions", json=BODY)
        streamed = httpx.post(f"{lr.base_url}/chat/completions", json={**BODY, "stream": True})
    assert plain.status_code == 200 and plain.headers[ROUTE] == "classify"
    with pytest.raises(ValueError):
        json.loads(plain.text)
    data_lines = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    with pytest.raises(ValueError):
        json.loads(data_lines[0])


def test_timeout_holds_the_request_then_answers_504() -> None:
    with app_with(fault_rate=1.0, fault_kinds="timeout", fault_timeout_s=0.3, seed=3) as lr:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{lr.base_url}/chat/completions", json=BODY, timeout=0.1)
        resp = httpx.post(f"{lr.base_url}/chat/completions", json=BODY, timeout=5)
    assert resp.status_code == 504


def test_added_latency_delays_every_request() -> None:
    with app_with(latency_ms=300) as lr:
        start = time.perf_counter()
        resp = httpx.post(f"{lr.base_url}/chat/completions", json=BODY)
        elapsed = time.perf_counter() - start
    assert resp.status_code == 200
    assert elapsed >= 0.3


def test_faults_spare_the_control_plane_and_models_listing() -> None:
    with app_with(fault_rate=1.0, fault_kinds="500", seed=1) as lr:
        assert httpx.get(f"{lr.root_url}/v2/gen-ai/models/routers").status_code == 200
        assert httpx.get(f"{lr.base_url}/models").status_code == 200


def test_fault_share_is_close_to_the_rate_and_kinds_are_spread() -> None:
    injector = FaultInjector(FaultConfig(rate=0.25, kinds=("429", "500"), seed=11))
    draws = [injector.draw() for _ in range(4000)]
    counts = Counter(draws)
    share = 1 - counts[None] / len(draws)
    assert 0.22 < share < 0.28
    assert set(counts) == {None, "429", "500"}
    assert abs(counts["429"] - counts["500"]) < 0.2 * (counts["429"] + counts["500"])


def test_fault_options_are_validated() -> None:
    assert parse_fault_kinds(None) == FAULT_KINDS
    assert parse_fault_kinds("500, timeout,500") == ("500", "timeout")
    with pytest.raises(UsageError, match="unknown fault kind 'teapot'"):
        parse_fault_kinds("500,teapot")
    with pytest.raises(UsageError, match="between 0 and 1"):
        FaultConfig(rate=1.5).validate()
    with pytest.raises(UsageError, match="latency"):
        FaultConfig(latency_ms=-1).validate()
