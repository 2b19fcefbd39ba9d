"""The local router's classifier backends: embedding (micro-batched), tfidf, llm (zero-shot)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from evalkit.emulator import LocalRouter, TfidfClassifier, create_app, make_classifier
from evalkit.emulator.classifier import (EmbeddingClassifier, LlmClassifier, build_llm_prompt, classifier_from_options,
                                         encode, load_encoder, parse_llm_route)
from evalkit.errors import UsageError
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER
from tests.fake_openai import FakeOpenAI, Reply

ROUTER = parse_router_config(TUTORIAL_ROUTER)
NAMES = ["classify", "customer-qa", "reasoning"]


def test_tfidf_picks_the_task_whose_description_shares_the_words() -> None:
    clf = TfidfClassifier()
    decisions = clf.classify_many([
        "Classify a customer support message into one of the categories billing, bug, how-to or account",
        "Perform complex multi-step reasoning and mathematical analysis with intermediate conclusions",
        "zzzz qqqq xxxx",
    ], ROUTER)
    assert [d.route for d in decisions] == ["classify", "reasoning", "fallback"]
    assert decisions[2].score < clf.threshold


def test_tfidf_refits_when_the_router_changes() -> None:
    clf = TfidfClassifier()
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    prompt = "translate this german poem into spanish verse"
    assert clf.classify_many([prompt], ROUTER)[0].route != "customer-qa"
    body["policies"][1]["custom_task"]["description"] = "Translate a german poem into spanish verse"
    assert clf.classify_many([prompt], parse_router_config(body))[0].route == "customer-qa"


def test_llm_prompt_lists_every_task_name_and_description() -> None:
    prompt = build_llm_prompt("my invoice is wrong", ROUTER)
    for task in ROUTER.tasks:
        assert json.dumps(task.name) in prompt and json.dumps(task.description) in prompt
    assert "my invoice is wrong" in prompt and '"other"' in prompt


@pytest.mark.parametrize("answer, route", [
    ('{"route": "reasoning"}', "reasoning"),
    ('```json\n{"route": "Customer-QA"}\n```', "customer-qa"),
    ("classify", "classify"),
    ('"classify".', "classify"),
    ('{"route": "other"}', "fallback"),
    ("other", "fallback"),
    ('I think {"route": "reasoning"} fits best', "reasoning"),
    ("sports", None),
    (None, None),
    ('{"route": ' + "[" * 100_000, None),  # nested deeper than the parser goes: no route, not a crash
])
def test_llm_answers_are_parsed(answer: str | None, route: str | None) -> None:
    assert parse_llm_route(answer, NAMES) == route


def test_llm_classifier_routes_through_an_openai_compatible_model() -> None:
    def reply(body: dict, headers: dict) -> Reply:
        text = body["messages"][0]["content"]
        return Reply(content='{"route": "reasoning"}' if "square root" in text else '{"route": "other"}')

    with FakeOpenAI(reply) as fake:
        clf = LlmClassifier(model="arch-router-1.5b", base_url=fake.base_url, api_key="k")
        app = create_app([ROUTER], classifier=clf)
        with LocalRouter(app) as lr:
            def route(text: str) -> str:
                body = {"model": "router:cost-governance-demo", "messages": [{"role": "user", "content": text}]}
                return httpx.post(f"{lr.base_url}/chat/completions", json=body).headers["x-model-router-selected-route"]

            assert route("Prove the square root of 2 is irrational") == "reasoning"
            assert route("Tell me a joke") == "fallback"
    assert fake.requests[0]["model"] == "arch-router-1.5b"
    assert fake.request_headers[0]["authorization"] == "Bearer k"


def test_unreachable_llm_classifier_is_a_502() -> None:
    from evalkit.emulator.server import free_port

    clf = LlmClassifier(model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    with LocalRouter(create_app([ROUTER], classifier=clf)) as lr:
        body = {"model": "router:cost-governance-demo", "messages": [{"role": "user", "content": "hi"}]}
        resp = httpx.post(f"{lr.base_url}/chat/completions", json=body, timeout=30)
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "classifier_failed"


def test_classifier_options() -> None:
    assert isinstance(make_classifier("tfidf"), TfidfClassifier)
    assert make_classifier("embedding").threshold == 0.10
    assert make_classifier("embedding", threshold=0.3).threshold == 0.3
    with pytest.raises(UsageError, match="unknown classifier 'bert'"):
        make_classifier("bert")
    with pytest.raises(UsageError, match="needs a routing model"):
        classifier_from_options("llm")
    with pytest.raises(UsageError, match="no URL for the routing model 'router-llm'"):
        classifier_from_options("llm", model="router-llm")
    clf = classifier_from_options("llm", model="router-llm", upstreams={"router-llm": "http://127.0.0.1:9/v1"})
    assert isinstance(clf, LlmClassifier) and clf.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(UsageError, match="NOT_SET_ANYWHERE_X"):
        classifier_from_options("llm", model="m", upstreams={"m": "http://127.0.0.1:9/v1@NOT_SET_ANYWHERE_X"})


def test_embedding_requests_arriving_together_share_one_encode_call() -> None:
    load_encoder()
    batch_sizes: list[int] = []

    def counting_encode(texts: list[str]):  # type: ignore[no-untyped-def]
        batch_sizes.append(len(texts))
        return encode(texts)

    clf = EmbeddingClassifier(0.10, encoder=counting_encode)
    clf.description_matrix(ROUTER)
    batch_sizes.clear()
    prompts = [f"Classify this support ticket number {i}: I was charged twice" for i in range(24)]

    async def go() -> list[str]:
        decisions = await asyncio.gather(*(clf.classify(p, ROUTER) for p in prompts))
        return [d.route for d in decisions]

    routes = asyncio.run(go())
    assert routes == ["classify"] * 24
    assert sum(batch_sizes) == 24
    assert len(batch_sizes) < 24 and max(batch_sizes) > 1


def test_a_round_of_requests_arriving_one_by_one_is_collected_into_one_batch() -> None:
    # Under load the answers of one batch come back as new requests one by one. Encoding whatever
    # waits at the first arrival split each round into a batch of 1 and one of the rest; once a
    # round of 8 has been seen, the worker keeps collecting while requests keep coming.
    import numpy as np

    batch_sizes: list[int] = []

    def fake_encode(texts: list[str]):  # type: ignore[no-untyped-def]
        batch_sizes.append(len(texts))
        return np.tile(np.eye(1, 384, dtype=np.float32), (len(texts), 1))

    clf = EmbeddingClassifier(0.10, encoder=fake_encode, batch_gap_s=2.0, batch_wait_s=10.0)
    clf.description_matrix(ROUTER)
    batch_sizes.clear()

    async def staggered(n: int) -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0.002 * i)  # arrivals 2 ms apart, well within the (test's) 2 s gap
            await clf.classify(f"prompt {i}", ROUTER)
        await asyncio.gather(*(one(i) for i in range(n)))

    async def go() -> None:
        await asyncio.gather(*(clf.classify(f"first round {i}", ROUTER) for i in range(8)))
        await staggered(8)

    asyncio.run(go())
    assert batch_sizes == [8, 8]


def test_a_lone_client_is_answered_without_waiting_for_company() -> None:
    # sequential requests: the expected batch stays 1, so no request waits for the (here 60 s) gap
    clf = EmbeddingClassifier(0.10, encoder=lambda texts: encode(texts), batch_gap_s=60.0, batch_wait_s=60.0)
    load_encoder()
    clf.description_matrix(ROUTER)

    async def go() -> list[str]:
        return [(await asyncio.wait_for(clf.classify(f"Classify ticket {i}: I was charged twice", ROUTER), 30)).route
                for i in range(3)]

    assert asyncio.run(go()) == ["classify"] * 3


def test_embedding_classifier_survives_a_new_event_loop() -> None:
    load_encoder()
    clf = EmbeddingClassifier(0.10)

    async def once() -> str:
        decision = await asyncio.wait_for(clf.classify("Classify this ticket: I was charged twice", ROUTER), 30)
        return decision.route

    assert asyncio.run(once()) == "classify"
    assert asyncio.run(once()) == "classify"  # e.g. a LocalRouter stopped and another started
