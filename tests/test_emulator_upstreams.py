"""Selection policies, failover, fallback, streaming, keys and session affinity, against scripted upstreams."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import httpx
import openai
import pytest

from evalkit.cost import Price
from evalkit.emulator import EmbeddingClassifier, LocalRouter, TfidfClassifier, create_app
from evalkit.emulator.classifier import load_encoder
from evalkit.emulator.server import free_port
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER
from tests.fake_openai import FakeOpenAI, Reply

ROUTE = "x-model-router-selected-route"
CHEAP_PROMPT = "summarize meeting notes into bullet points"
MANUAL_PROMPT = "translate french sentences into english"
FAST_PROMPT = "write sql queries for a postgres database"
POOLS = {
    "name": "pools",
    "policies": [
        {"custom_task": {"name": "cheap-task", "description": CHEAP_PROMPT},
         "models": ["model-expensive", "model-cheap"], "selection_policy": {"prefer": "cheapest"}},
        {"custom_task": {"name": "manual-task", "description": MANUAL_PROMPT},
         "models": ["model-first", "model-second"]},
        {"custom_task": {"name": "fast-task", "description": FAST_PROMPT},
         "models": ["model-slow", "model-quick"], "selection_policy": {"prefer": "fastest"}},
    ],
    "fallback_models": ["model-fallback"],
}
PRICES = {"model-expensive": Price(5.0, 20.0), "model-cheap": Price(0.1, 0.2), "model-first": Price(1, 1),
          "model-second": Price(1, 1), "model-fallback": Price(1, 1)}


class Upstreams:
    """One scripted OpenAI-compatible server answering for every model, scripted per model."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.fake = FakeOpenAI(self._reply)

    def _reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        model = body["model"]
        reply = self.replies.get(model, Reply(content=f"answer from {model}"))
        return reply

    @property
    def models_called(self) -> list[str]:
        return [r["model"] for r in self.fake.requests]


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    with ups.fake:
        yield ups


def start(upstream_map: dict[str, str], **kwargs: Any) -> LocalRouter:
    app = create_app([parse_router_config(POOLS)], classifier=TfidfClassifier(), prices=PRICES,
                     upstreams=upstream_map, **kwargs)
    return LocalRouter(app).start()


def chat(lr: LocalRouter, prompt: str, **extra: Any) -> httpx.Response:
    body = {"model": "router:pools", "messages": [{"role": "user", "content": prompt}], **extra}
    return httpx.post(f"{lr.base_url}/chat/completions", json=body, timeout=30)


def test_cheapest_picks_the_cheapest_model(upstreams: Upstreams) -> None:
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, CHEAP_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 200
    assert resp.headers[ROUTE] == "cheap-task"
    assert resp.json()["model"] == "model-cheap"
    assert resp.json()["choices"][0]["message"]["content"] == "answer from model-cheap"
    assert upstreams.models_called == ["model-cheap"]
    assert "x-evalkit-route-only" not in resp.headers


def test_manual_ranking_picks_the_first_model(upstreams: Upstreams) -> None:
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.headers[ROUTE] == "manual-task"
    assert resp.json()["model"] == "model-first"
    assert resp.json()["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert resp.headers["x-evalkit-attempts"] == "1"


def test_a_500_from_the_first_model_fails_over_to_the_second(upstreams: Upstreams) -> None:
    upstreams.replies["model-first"] = Reply(status=500)
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 200
    assert resp.json()["model"] == "model-second"
    assert resp.headers["x-evalkit-attempts"] == "2"
    assert resp.headers["x-evalkit-attempt-log"] == "model-first=500, model-second=200"
    assert upstreams.models_called == ["model-first", "model-second"]


def test_all_pool_models_failing_reaches_fallback_models(upstreams: Upstreams) -> None:
    upstreams.replies["model-first"] = Reply(status=503)
    upstreams.replies["model-second"] = Reply(status=500)
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 200
    assert resp.headers[ROUTE] == "manual-task"
    assert resp.json()["model"] == "model-fallback"
    assert resp.headers["x-evalkit-attempts"] == "3"


def test_all_models_failing_is_a_502_json_error(upstreams: Upstreams) -> None:
    for m in ("model-first", "model-second", "model-fallback"):
        upstreams.replies[m] = Reply(status=500)
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_failed"
    assert "model-first=500" in error["message"] and "model-fallback=500" in error["message"]
    assert resp.headers["x-evalkit-attempts"] == "3"
    assert resp.headers[ROUTE] == "manual-task"


def test_refused_connections_and_timeouts_fail_over(upstreams: Upstreams) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    upstreams.replies["model-second"] = Reply(delay_s=2.0)
    lr = start({"model-first": closed, "*": upstreams.fake.base_url}, upstream_timeout_s=0.5)
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 200
    assert resp.json()["model"] == "model-fallback"
    assert resp.headers["x-evalkit-attempt-log"] == "model-first=refused, model-second=timeout, model-fallback=200"


def test_a_400_from_upstream_is_passed_back_without_failover(upstreams: Upstreams) -> None:
    upstreams.replies["model-first"] = Reply(status=400, error_message="max_tokens too large")
    lr = start({"*": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "max_tokens too large"
    assert upstreams.models_called == ["model-first"]


def test_fastest_tries_untried_models_first_then_the_fastest(upstreams: Upstreams) -> None:
    upstreams.replies["model-slow"] = Reply(delay_s=0.4)
    lr = start({"*": upstreams.fake.base_url})
    try:
        served = [chat(lr, FAST_PROMPT).json()["model"] for _ in range(3)]
    finally:
        lr.stop()
    # 1st: neither tried, list order; 2nd: model-quick still untried; 3rd: both tried, quick is faster.
    assert served == ["model-slow", "model-quick", "model-quick"]


def test_a_model_without_upstream_answers_route_only(upstreams: Upstreams) -> None:
    lr = start({"model-second": upstreams.fake.base_url})
    try:
        resp = chat(lr, MANUAL_PROMPT)
    finally:
        lr.stop()
    assert resp.json()["model"] == "model-first"
    assert resp.headers["x-evalkit-route-only"] == "true"
    assert upstreams.models_called == []


def test_streaming_passes_chunks_usage_and_headers(upstreams: Upstreams) -> None:
    upstreams.replies["model-first"] = Reply(status=500)
    upstreams.replies["model-second"] = Reply(content="streamed answer text", prompt_tokens=7, completion_tokens=3)
    lr = start({"*": upstreams.fake.base_url})
    try:
        client = openai.OpenAI(base_url=lr.base_url, api_key="unused")
        with client.chat.completions.with_streaming_response.create(
                model="router:pools", messages=[{"role": "user", "content": MANUAL_PROMPT}], stream=True) as resp:
            assert resp.headers[ROUTE] == "manual-task"
            assert resp.headers["x-evalkit-attempts"] == "2"
            chunks = list(resp.parse())
    finally:
        lr.stop()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed answer text"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (7, 3)
    sent = upstreams.fake.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "model-second"


def test_upstream_key_comes_from_the_named_env_var(upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_TEST_UPSTREAM_KEY", "sk-upstream-123")
    lr = start({"model-first": f"{upstreams.fake.base_url}@EVALKIT_TEST_UPSTREAM_KEY",
                "*": upstreams.fake.base_url}, api_key="client-key")
    try:
        headers = {"authorization": "Bearer client-key"}
        body = {"model": "router:pools", "messages": [{"role": "user", "content": MANUAL_PROMPT}]}
        assert httpx.post(f"{lr.base_url}/chat/completions", json=body, headers=headers).status_code == 200
        body["model"] = "model-cheap"
        assert httpx.post(f"{lr.base_url}/chat/completions", json=body, headers=headers).status_code == 200
    finally:
        lr.stop()
    first, second = upstreams.fake.request_headers
    assert first["authorization"] == "Bearer sk-upstream-123"
    assert "authorization" not in second  # the client's own key is never forwarded


# --- session affinity ---------------------------------------------------------------------------

SESSION_TURNS = [
    "What subscription plans do you offer, and how do I switch my account to the annual plan?",
    "Prove step by step that the square root of 2 is irrational, with each intermediate conclusion.",
    "Classify this support message into billing, bug, how-to or account: 'The export button crashes the app.'",
    "Compute the expected number of coin flips to see two heads in a row, showing every step of the derivation.",
    "Classify this support ticket into billing, bug, how-to, or account: 'I was charged twice this month.'",
]


@pytest.fixture(scope="module")
def encoder() -> None:
    load_encoder()


def tutorial_app(fake: FakeOpenAI) -> LocalRouter:
    app = create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=EmbeddingClassifier(0.10),
                     upstreams={"*": fake.base_url})
    return LocalRouter(app).start()


def test_a_five_turn_session_stays_on_one_model(encoder: None, upstreams: Upstreams) -> None:
    lr = tutorial_app(upstreams.fake)
    client = openai.OpenAI(base_url=lr.base_url, api_key="unused")
    session = str(uuid.uuid4())
    history: list[dict[str, str]] = []
    pinned: list[tuple[str, str]] = []
    unpinned: list[str] = []
    try:
        for turn in SESSION_TURNS:
            history.append({"role": "user", "content": turn})
            raw = client.chat.completions.with_raw_response.create(
                model="router:cost-governance-demo", messages=history, extra_headers={"X-Model-Affinity": session})
            done = raw.parse()
            assert raw.headers["x-model-affinity"] == session
            pinned.append((raw.headers[ROUTE], done.model))
            history.append({"role": "assistant", "content": done.choices[0].message.content or ""})
            alone = client.chat.completions.with_raw_response.create(
                model="router:cost-governance-demo", messages=history[:-1])
            unpinned.append(alone.headers[ROUTE])
    finally:
        lr.stop()
    assert pinned == [("customer-qa", "anthropic-claude-4.6-sonnet")] * 5
    assert unpinned[0] == "customer-qa"
    assert all(route != "customer-qa" for route in unpinned[1:])  # they would have routed elsewhere
    served = [r["model"] for r, h in zip(upstreams.fake.requests, upstreams.fake.request_headers)]
    assert served.count("anthropic-claude-4.6-sonnet") == 5 + 1


def test_a_failing_pinned_model_is_failed_over_and_the_session_re_pinned(encoder: None,
                                                                          upstreams: Upstreams) -> None:
    lr = tutorial_app(upstreams.fake)
    session = {"X-Model-Affinity": "s-1"}
    client = openai.OpenAI(base_url=lr.base_url, api_key="unused")

    def turn(text: str) -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model="router:cost-governance-demo", messages=[{"role": "user", "content": text}], extra_headers=session)
        return raw.headers[ROUTE], raw.parse().model

    try:
        assert turn(SESSION_TURNS[0]) == ("customer-qa", "anthropic-claude-4.6-sonnet")
        upstreams.replies["anthropic-claude-4.6-sonnet"] = Reply(status=500)
        assert turn(SESSION_TURNS[1]) == ("customer-qa", "llama3.3-70b-instruct")
        del upstreams.replies["anthropic-claude-4.6-sonnet"]  # recovered, but the session moved
        assert turn(SESSION_TURNS[2]) == ("customer-qa", "llama3.3-70b-instruct")
    finally:
        lr.stop()


def test_pins_expire_after_the_ttl() -> None:
    from evalkit.emulator.affinity import AffinityStore, Pin

    now = [100.0]
    store = AffinityStore(ttl_s=60, clock=lambda: now[0])
    store.pin("r", "s", "customer-qa", "m1")
    now[0] = 150.0
    assert store.get("r", "s") == Pin("customer-qa", "m1")  # use refreshes: expires at 210 now
    now[0] = 209.0
    assert store.get("r", "s") == Pin("customer-qa", "m1")
    now[0] = 269.5
    assert store.get("r", "s") is None
    assert store.get("other-router", "s") is None


def test_pin_store_keeps_at_most_max_entries() -> None:
    from evalkit.emulator.affinity import AffinityStore

    store = AffinityStore(ttl_s=60, max_entries=2)
    for s in ("a", "b", "c"):
        store.pin("r", s, "t", "m")
    assert store.get("r", "a") is None and store.get("r", "c") is not None
    assert len(store) == 2


def test_expired_pin_routes_afresh(encoder: None, upstreams: Upstreams) -> None:
    from evalkit.emulator.affinity import AffinityStore

    now = [0.0]
    pins = AffinityStore(ttl_s=10, clock=lambda: now[0])
    app = create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=EmbeddingClassifier(0.10), affinity=pins)
    with LocalRouter(app) as lr:
        def route(text: str) -> str:
            body = {"model": "router:cost-governance-demo", "messages": [{"role": "user", "content": text}]}
            return httpx.post(f"{lr.base_url}/chat/completions", json=body,
                              headers={"X-Model-Affinity": "s"}).headers[ROUTE]

        assert route(SESSION_TURNS[0]) == "customer-qa"
        now[0] = 5.0
        assert route(SESSION_TURNS[1]) == "customer-qa"
        now[0] = 100.0
        assert route(SESSION_TURNS[1]) == "reasoning"


def test_models_listing_includes_upstream_slugs(upstreams: Upstreams) -> None:
    lr = start({"extra-model": upstreams.fake.base_url, "*": upstreams.fake.base_url})
    try:
        ids = [m["id"] for m in httpx.get(f"{lr.base_url}/models").json()["data"]]
    finally:
        lr.stop()
    assert ids[0] == "router:pools" and "extra-model" in ids and "*" not in ids
    assert json.dumps(ids).count("model-fallback") == 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_url_with_a_query_string_keeps_it_after_the_path(upstreams: Upstreams, stream: bool) -> None:
    """``--upstream '*=https://x.openai.azure.com/v1?api-version=2024-10-21'``: the path goes before
    the query (it was appended after it: every request went to ``/v1?api-version=.../chat/completions``)."""
    lr = start({"*": f"{upstreams.fake.base_url}?api-version=2024-10-21"})
    try:
        resp = chat(lr, CHEAP_PROMPT, stream=stream)
    finally:
        lr.stop()
    assert resp.status_code == 200, resp.text
    assert "model-cheap" in resp.text
    assert upstreams.fake.request_queries == ["api-version=2024-10-21"]
    assert upstreams.models_called == ["model-cheap"]
