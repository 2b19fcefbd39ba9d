"""The local router's inference plane with the embedding classifier: the DigitalOcean tutorial's client code."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import httpx
import openai
import pytest

from evalkit.emulator import EmbeddingClassifier, LocalRouter, create_app
from evalkit.emulator.classifier import load_encoder
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER

ROUTE = "x-model-router-selected-route"
CLASSIFY_PROMPT = ("Classify this support ticket into billing, bug, how-to, or account: "
                   "'I was charged twice this month.'")
BETWEEN_PROMPT = "How do I export my billing invoices as CSV files?"


@pytest.fixture(scope="module")
def router() -> Iterator[LocalRouter]:
    load_encoder()
    app = create_app([parse_router_config(TUTORIAL_ROUTER)], classifier=EmbeddingClassifier(0.10),
                     api_key="sk-do-local-test")
    with LocalRouter(app) as lr:
        yield lr


def test_tutorial_snippets_run_unchanged(router: LocalRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    # The tutorial's client code; only the base URL and the key differ.
    monkeypatch.setenv("MODEL_ACCESS_KEY", "sk-do-local-test")
    import os
    from openai import OpenAI

    client = OpenAI(base_url=router.base_url, api_key=os.environ["MODEL_ACCESS_KEY"])
    raw = client.chat.completions.with_raw_response.create(
        model="router:cost-governance-demo",
        messages=[{"role": "user", "content": CLASSIFY_PROMPT}],
        max_completion_tokens=256,
    )
    response = raw.parse()
    route = raw.headers.get("x-model-router-selected-route")
    assert route == "classify"
    # classify prefers cheapest: openai-gpt-oss-20b (0.05 + 0.45 $/M) beats llama3.3-70b-instruct (0.65 + 0.65)
    assert response.model == "openai-gpt-oss-20b"

    session_id = str(uuid.uuid4())
    raw = client.chat.completions.with_raw_response.create(
        model="router:cost-governance-demo",
        messages=[{"role": "user", "content": "What subscription plans do you offer?"}],
        extra_headers={"X-Model-Affinity": session_id},
    )
    assert raw.headers.get("x-model-affinity") == session_id
    assert raw.parse().model == "anthropic-claude-4.6-sonnet"  # customer-qa, manual ranking: first in list


def test_tutorial_create_body_through_the_control_plane(router: LocalRouter) -> None:
    body = dict(TUTORIAL_ROUTER, name="tutorial-copy")
    headers = {"Authorization": "Bearer sk-do-local-test", "Content-Type": "application/json"}
    resp = httpx.post(f"{router.root_url}/v2/gen-ai/models/routers", content=json.dumps(body), headers=headers)
    assert resp.status_code == 200
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    raw = client.chat.completions.with_raw_response.create(
        model="router:tutorial-copy", messages=[{"role": "user", "content": CLASSIFY_PROMPT}])
    assert raw.headers[ROUTE] == "classify"


def test_route_only_answer_is_marked_and_has_no_completion_tokens(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    raw = client.chat.completions.with_raw_response.create(
        model="router:cost-governance-demo", messages=[{"role": "user", "content": "abcd" * 10}])
    done = raw.parse()
    assert raw.headers["x-evalkit-route-only"] == "true"
    assert raw.headers["x-evalkit-attempts"] == "1"
    assert done.choices[0].message.content == ""
    assert done.usage.completion_tokens == 0 and done.usage.prompt_tokens == 10  # 40 characters / 4


def test_prompt_matching_no_task_goes_to_fallback(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    raw = client.chat.completions.with_raw_response.create(
        model="router:cost-governance-demo", messages=[{"role": "user", "content": "What is the capital of Mongolia?"}])
    assert raw.headers[ROUTE] == "fallback"
    assert raw.parse().model == "llama3.3-70b-instruct"


def test_plain_model_slug_goes_straight_to_that_model(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    raw = client.chat.completions.with_raw_response.create(
        model="openai-gpt-5", messages=[{"role": "user", "content": CLASSIFY_PROMPT}])
    assert raw.parse().model == "openai-gpt-5"
    assert ROUTE not in raw.headers


def test_unknown_router_is_an_openai_error(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="router:nope", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"
    assert "nope" in info.value.body["message"]


def test_models_lists_routers_and_their_models(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    ids = [m.id for m in client.models.list()]
    assert "router:cost-governance-demo" in ids
    assert {"openai-gpt-oss-20b", "anthropic-claude-4.6-sonnet", "openai-gpt-5", "llama3.3-70b-instruct"} <= set(ids)


def test_route_only_streaming_carries_the_route_header(router: LocalRouter) -> None:
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")
    with client.chat.completions.with_streaming_response.create(
            model="router:cost-governance-demo", messages=[{"role": "user", "content": CLASSIFY_PROMPT}],
            stream=True, stream_options={"include_usage": True}) as resp:
        assert resp.headers[ROUTE] == "classify"
        chunks = list(resp.parse())
    assert chunks[0].model == "openai-gpt-oss-20b"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 0


def test_description_update_flips_the_route_of_a_prompt_between_two_tasks(router: LocalRouter) -> None:
    headers = {"Authorization": "Bearer sk-do-local-test"}
    base = f"{router.root_url}/v2/gen-ai/models/routers"
    created = httpx.post(base, json=dict(TUTORIAL_ROUTER, name="flip-demo"), headers=headers).json()["model_router"]
    client = openai.OpenAI(base_url=router.base_url, api_key="sk-do-local-test")

    def route_of(prompt: str) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="router:flip-demo", messages=[{"role": "user", "content": prompt}])
        return raw.headers[ROUTE]

    # An invoice export question sits between classify (support tickets about billing) and customer-qa.
    assert route_of(BETWEEN_PROMPT) == "classify"
    policies: list[dict[str, Any]] = json.loads(json.dumps(TUTORIAL_ROUTER["policies"]))
    policies[1]["custom_task"]["description"] = (
        "Answer a customer-facing question about billing invoices, such as how to export invoices as CSV files, "
        "download them or change billing details.")
    resp = httpx.put(f"{base}/{created['uuid']}", json={"policies": policies}, headers=headers)
    assert resp.status_code == 200
    assert route_of(BETWEEN_PROMPT) == "customer-qa"  # the very next decision uses the new description


def test_accepted_connections_have_nagle_off(router: LocalRouter) -> None:
    # uvicorn writes a response's head and body separately; with Nagle on, the body waits for the
    # client's delayed ACK (40 ms per request on a kept-alive connection). asyncio turns Nagle off
    # only on sockets created with proto IPPROTO_TCP, so the listening socket must say so.
    import socket

    with httpx.Client(base_url=router.base_url, headers={"Authorization": "Bearer sk-do-local-test"}) as http:
        http.get("/models").raise_for_status()
        connections = list(router.server.server_state.connections)
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_client_that_hangs_up_mid_body_leaves_no_traceback(router: LocalRouter,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    # What Ctrl-C on `evalkit run` does to requests in flight: the body stops half way and the
    # connection closes. The server has nobody to answer; it must not log an ASGI traceback.
    import logging
    import socket
    import time

    body = json.dumps({"model": "router:cost-governance-demo", "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-do-local-test\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 100}\r\n\r\n")
    with caplog.at_level(logging.ERROR):
        with socket.create_connection((router.host, router.port)) as sock:
            sock.sendall(head.encode() + body.encode())
            deadline = time.monotonic() + 5
            while not router.server.server_state.tasks and time.monotonic() < deadline:
                time.sleep(0.01)  # the request is being read
        deadline = time.monotonic() + 5
        while router.server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)  # the app has finished with the hung-up request
        assert not router.server.server_state.tasks
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    with httpx.Client(base_url=router.base_url, headers={"Authorization": "Bearer sk-do-local-test"}) as http:
        assert http.get("/models").status_code == 200  # and it keeps serving


def test_a_header_value_http_cannot_carry_is_a_json_error_not_a_crash(router: LocalRouter) -> None:
    # Router configs refuse such task names and model slugs; a model named in the request still
    # reaches the attempts header, where Starlette cannot encode it: a clear OpenAI-format 500
    # (Starlette's own answer to the exception would be a plain-text 500 and a traceback).
    with httpx.Client(base_url=router.base_url, timeout=30,
                      headers={"authorization": "Bearer sk-do-local-test"}) as http:
        resp = http.post("/chat/completions", json={"model": "模型-一", "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status_code == 500
        err = resp.json()["error"]
        assert err["type"] == "server_error" and err["code"] == "header_not_encodable"
        assert "模型-一" in err["message"] and "HTTP header values are ASCII" in err["message"]
        ok = http.post("/chat/completions", json={"model": "router:cost-governance-demo",
                                                  "messages": [{"role": "user", "content": CLASSIFY_PROMPT}]})
        assert ok.status_code == 200 and ok.headers[ROUTE] == "classify"
