"""The arch-router classifier: the model card's prompt, the conversation's prior turns, answers,
classifier errors (counted, never a route), and `evalkit run --classifier arch-router` end to end,
all against a strict local stand-in for the model (tests/fake_arch_router.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import TUTORIAL_ROUTER, run_cli
from fake_arch_router import GARBLED, FakeArchRouter, card_prompt, decide, parse_request
from fake_openai import FakeOpenAI, Reply
from run_helpers import bundled_router, slice_suite
from evalkit.emulator import LocalRouter, create_app
from evalkit.emulator.arch_router import (ARCH_ROUTER_MODEL, MAX_CONVERSATION_TOKENS, ArchRouterAnswerError,
                                          ArchRouterClassifier, build_arch_router_prompt, parse_arch_router_answer,
                                          routing_conversation)
from evalkit.emulator.classifier import classifier_from_options, make_classifier
from evalkit.errors import UsageError
from evalkit.router_config import parse_router_config

ROUTER = parse_router_config(json.dumps(TUTORIAL_ROUTER))
ROUTES = [{"name": p["custom_task"]["name"], "description": p["custom_task"]["description"]}
          for p in TUTORIAL_ROUTER["policies"]]
NAMES = [r["name"] for r in ROUTES]
ROUTE_HEADER = "x-model-router-selected-route"


def user_turns(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the model should see: user and assistant turns with text (the test's own reading of the spec)."""
    out = []
    for m in messages:
        if m["role"] not in ("user", "assistant"):
            continue
        content = m["content"] if isinstance(m["content"], str) else " ".join(p["text"] for p in m["content"])
        if content.strip():
            out.append({"role": m["role"], "content": content})
    return out


def prompt_with(outcome: str, *, prefix: str = "ticket") -> str:
    """A single-turn prompt for which the rule answers ``outcome`` (a task, other, or GARBLED)."""
    for i in range(2000):
        text = f"{prefix} {i}: I was charged twice this month"
        if decide(ROUTES, [{"role": "user", "content": text}]) == outcome:
            return text
    raise AssertionError(f"no prompt found for {outcome}")


# -- the prompt -------------------------------------------------------------------------------

def test_the_prompt_is_the_model_cards_template_with_the_routes_and_conversation_as_json() -> None:
    messages = [{"role": "user", "content": "How do I change my plan?"},
                {"role": "assistant", "content": "Go to Settings > Billing."},
                {"role": "user", "content": "And for the annual plan, café?"}]
    prompt = build_arch_router_prompt(messages, ROUTER)
    assert prompt == card_prompt(ROUTES, messages)
    assert prompt.startswith("\nYou are a helpful assistant designed to find the best suited route.\n"
                             "You are provided with route description within <routes></routes> XML tags:\n"
                             "<routes>\n\n[{\"name\": \"classify\", \"description\": \"Classify a customer")
    assert '\n\n</routes>\n\n<conversation>\n\n[{"role": "user", "content": "How do I change my plan?"}, ' in prompt
    assert '"content": "And for the annual plan, caf\\u00e9?"}]\n\n</conversation>\n\nYour task is' in prompt
    assert prompt.endswith('use the exact name in the <routes></routes>.\n\nBased on your analysis, provide your '
                           'response in the following JSON formats if you decide to match any route:\n'
                           '{"route": "route_name"} \n')
    assert parse_request({"messages": [{"role": "user", "content": prompt}]}, ROUTES) == (ROUTES, messages)


def test_the_strict_server_rejects_anything_but_the_card_format() -> None:
    good = card_prompt(ROUTES, [{"role": "user", "content": "hi"}])
    bad_bodies = [
        {"messages": [{"role": "system", "content": good}]},
        {"messages": [{"role": "user", "content": good}, {"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": good.replace("intent. \n", "intent.\n")}]},   # trailing space lost
        {"messages": [{"role": "user", "content": good.replace('[{"name": ', '[{"name":')}]},  # compact JSON
        {"messages": [{"role": "user", "content": card_prompt(ROUTES[:2], [{"role": "user", "content": "hi"}])}]},
        {"messages": [{"role": "user", "content": card_prompt(ROUTES, [])}]},
    ]
    with FakeArchRouter(ROUTES) as fake:
        for body in bad_bodies:
            resp = httpx.post(f"{fake.base_url}/chat/completions", json={"model": "m", **body}, timeout=10)
            assert resp.status_code == 400, body
        ok = httpx.post(f"{fake.base_url}/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": good}]}, timeout=10)
    assert ok.status_code == 200
    assert len(fake.rejected) == len(bad_bodies) and len(fake.accepted) == 1


def test_the_conversation_keeps_prior_user_and_assistant_turns_only() -> None:
    messages = [{"role": "system", "content": "You are a support bot."},
                {"role": "user", "content": "My invoice shows two charges."},
                {"role": "assistant", "content": "Which invoice?"},
                {"role": "tool", "content": "{\"invoice\": 42}", "tool_call_id": "x"},
                {"role": "assistant", "content": ""},
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "The March one."}, {"type": "text", "text": "Why?"}]}]
    assert routing_conversation(messages) == [
        {"role": "user", "content": "My invoice shows two charges."},
        {"role": "assistant", "content": "Which invoice?"},
        {"role": "user", "content": "The March one. Why?"},
    ]
    assert routing_conversation(["not a message", {"role": "user"}, {"content": "no role"}]) == []


def test_a_long_conversation_keeps_its_latest_turns_and_the_last_user_message_whole() -> None:
    def turn(role: str, tag: str, tokens: int) -> dict[str, str]:  # four characters a token
        return {"role": role, "content": tag + "x" * (4 * tokens - 1)}

    # walking back from the latest: 700 + 700 + 700 = 2,100 tokens crosses 2,048 on a user turn: kept whole
    messages = [turn("user", "a", 700), turn("user", "b", 700), turn("assistant", "c", 700), turn("user", "d", 700)]
    assert [m["content"][0] for m in routing_conversation(messages)] == ["b", "c", "d"]
    # ... on an assistant turn: dropped, and nothing older is kept
    messages = [turn("user", "a", 10), turn("assistant", "b", 1100), turn("user", "c", 1000)]
    assert [m["content"][0] for m in routing_conversation(messages)] == ["c"]
    assert MAX_CONVERSATION_TOKENS == 2048
    huge = [{"role": "user", "content": "old question"}, {"role": "user", "content": "y" * 40_000}]
    assert routing_conversation(huge) == [{"role": "user", "content": "y" * 40_000}]


# -- the answer -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, route", [
    ('{"route": "reasoning"}', "reasoning"),
    ('{"route": "other"}', "fallback"),
    ('  {"route": "customer-qa"}\n', "customer-qa"),
    ('```json\n{"route": "classify"}\n```', "classify"),
    ("{'route': 'classify'}", "classify"),
    ('{"route": "Reasoning"}', "reasoning"),
    ('{"route": "OTHER"}', "fallback"),
])
def test_answers_naming_a_task_or_other_are_routes(answer: str, route: str) -> None:
    assert parse_arch_router_answer(answer, NAMES) == route


@pytest.mark.parametrize("answer", [
    None, "", "classify", "route: classify", GARBLED, '{"route": "billing"}', '{"route": ""}', '{"route": null}',
    '{"route": ["classify"]}', '{"name": "classify"}', "[1, 2]", '{"route": "classify"',
])
def test_any_other_answer_is_a_classifier_error(answer: str | None) -> None:
    with pytest.raises(ArchRouterAnswerError, match="classifier error: routing model"):
        parse_arch_router_answer(answer, NAMES)


def test_a_bad_answer_is_quoted_without_control_characters_and_cut() -> None:
    with pytest.raises(ArchRouterAnswerError) as info:
        parse_arch_router_answer("\x1b[31mred\x07" + "z" * 500, NAMES)
    message = str(info.value)
    assert "\x1b" not in message and "\x07" not in message and "red" in message
    assert len(message) < 400


# -- through the local router -----------------------------------------------------------------

def post(base_url: str, messages: list[dict[str, Any]], **headers: str) -> httpx.Response:
    body = {"model": "router:cost-governance-demo", "messages": messages}
    return httpx.post(f"{base_url}/chat/completions", json=body, headers=headers, timeout=30)


def test_single_turn_prompts_route_as_the_model_answers() -> None:
    cases = {outcome: prompt_with(outcome) for outcome in [*NAMES, "other", GARBLED]}
    with FakeArchRouter(ROUTES) as fake:
        clf = ArchRouterClassifier(base_url=fake.base_url, api_key="arch-test-key-123")
        with LocalRouter(create_app([ROUTER], classifier=clf)) as lr:
            replies = {o: post(lr.base_url, [{"role": "user", "content": p}]) for o, p in cases.items()}
    for name in NAMES:
        assert replies[name].status_code == 200
        assert replies[name].headers[ROUTE_HEADER] == name
    assert replies["other"].status_code == 200 and replies["other"].headers[ROUTE_HEADER] == "fallback"
    bad = replies[GARBLED]
    assert bad.status_code == 502 and ROUTE_HEADER not in bad.headers
    assert bad.json()["error"]["code"] == "classifier_bad_answer"
    assert GARBLED in bad.json()["error"]["message"]
    assert fake.rejected == []
    assert [c for _, c in fake.accepted] == [[{"role": "user", "content": p}] for p in cases.values()]
    assert {r["model"] for r in fake.requests} == {ARCH_ROUTER_MODEL}
    assert all(r["temperature"] == 0 for r in fake.requests)
    assert {h["authorization"] for h in fake.request_headers} == {"Bearer arch-test-key-123"}


def test_a_multi_turn_conversation_reaches_the_model_with_its_prior_turns() -> None:
    history = [{"role": "system", "content": "You are the support assistant of Acme."},
               {"role": "user", "content": "I'm thinking about moving from the Team plan to Business."},
               {"role": "assistant", "content": "Business adds SSO and an audit log."}]
    follow_ups = [f"and what if I'm on the annual plan? ({i})" for i in range(40)]
    with FakeArchRouter(ROUTES) as fake:
        with LocalRouter(create_app([ROUTER], classifier=ArchRouterClassifier(base_url=fake.base_url))) as lr:
            seen = []
            for text in follow_ups[:6]:
                messages = [*history, {"role": "user", "content": text}]
                resp = post(lr.base_url, messages)
                expected_conversation = user_turns(messages)
                answer = decide(ROUTES, expected_conversation)
                if answer == GARBLED:
                    assert resp.status_code == 502 and resp.json()["error"]["code"] == "classifier_bad_answer"
                else:
                    assert resp.headers[ROUTE_HEADER] == ("fallback" if answer == "other" else answer)
                assert fake.accepted[-1][1] == expected_conversation
                assert len(expected_conversation) == 3
                seen.append(answer)
    assert fake.rejected == []
    assert len(set(seen)) > 1  # the rule is not constant: the checks above could fail


def test_a_pinned_session_is_not_classified_again() -> None:
    first = prompt_with("reasoning")
    with FakeArchRouter(ROUTES) as fake:
        with LocalRouter(create_app([ROUTER], classifier=ArchRouterClassifier(base_url=fake.base_url))) as lr:
            one = post(lr.base_url, [{"role": "user", "content": first}], **{"X-Model-Affinity": "s-1"})
            two = post(lr.base_url, [{"role": "user", "content": first}, {"role": "assistant", "content": "ok"},
                                     {"role": "user", "content": prompt_with("classify")}],
                       **{"X-Model-Affinity": "s-1"})
    assert one.headers[ROUTE_HEADER] == two.headers[ROUTE_HEADER] == "reasoning"
    assert two.headers["x-evalkit-pinned"] == "true"
    assert len(fake.accepted) == 1


def test_a_failing_model_server_is_a_502_classifier_failed_after_one_retry() -> None:
    with FakeOpenAI(Reply(status=503, error_message="overloaded")) as fake:
        clf = ArchRouterClassifier(base_url=fake.base_url, timeout_s=5)
        with LocalRouter(create_app([ROUTER], classifier=clf)) as lr:
            resp = post(lr.base_url, [{"role": "user", "content": "hi"}])
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "classifier_failed"
    assert "HTTP 503" in resp.json()["error"]["message"]
    assert len(fake.requests) == 2  # the first try and one retry
    with FakeOpenAI(Reply(status=404, error_message="model 'katanemo/Arch-Router-1.5B' not found")) as fake:
        with LocalRouter(create_app([ROUTER], classifier=ArchRouterClassifier(base_url=fake.base_url))) as lr:
            resp = post(lr.base_url, [{"role": "user", "content": "hi"}])
    assert resp.status_code == 502 and "HTTP 404" in resp.json()["error"]["message"]
    assert len(fake.requests) == 1  # a 4xx is not retried


def test_at_most_max_concurrency_routing_requests_are_in_flight() -> None:
    arrivals: list[float] = []
    hold = 0.3

    def slow(body: dict[str, Any], headers: dict[str, str]) -> Reply:
        arrivals.append(time.monotonic())
        return Reply(content='{"route": "classify"}', delay_s=hold)

    def peak() -> int:  # requests the server held at once: each is held `hold` seconds after it arrives
        return max(sum(1 for b in arrivals if a - hold < b <= a) for a in arrivals)

    async def many(clf: ArchRouterClassifier) -> list[str]:
        decisions = await asyncio.gather(*(clf.classify(f"ticket {i}", ROUTER) for i in range(6)))
        return [d.route for d in decisions]

    with FakeOpenAI(slow) as fake:
        assert asyncio.run(many(ArchRouterClassifier(base_url=fake.base_url, max_concurrency=2))) == ["classify"] * 6
        limited = peak()
        arrivals.clear()
        assert asyncio.run(many(ArchRouterClassifier(base_url=fake.base_url, max_concurrency=16))) == ["classify"] * 6
        unlimited = peak()
    assert limited == 2 and unlimited > 2
    assert len(fake.requests) == 12


# -- options ----------------------------------------------------------------------------------

def test_options_default_to_the_arch_router_model_and_need_a_url() -> None:
    clf = classifier_from_options("arch-router", base_url="http://127.0.0.1:11434/v1")
    assert isinstance(clf, ArchRouterClassifier)
    assert clf.model == "katanemo/Arch-Router-1.5B" and clf.base_url == "http://127.0.0.1:11434/v1"
    clf = classifier_from_options("arch-router", model="hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M",
                                  upstreams={"hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M": "http://127.0.0.1:9/v1"},
                                  timeout_s=7)
    assert clf.base_url == "http://127.0.0.1:9/v1" and clf.timeout_s == 7
    with pytest.raises(UsageError, match="no URL for the routing model 'katanemo/Arch-Router-1.5B'"):
        classifier_from_options("arch-router")
    with pytest.raises(UsageError, match="not an http"):
        make_classifier("arch-router", llm_base_url="localhost:11434")
    with pytest.raises(UsageError, match="ARCH_KEY_NOT_SET_X"):
        classifier_from_options("arch-router", base_url="http://127.0.0.1:9/v1", api_key_env="ARCH_KEY_NOT_SET_X")


def test_serve_without_a_url_exits_2() -> None:
    proc = run_cli("serve", "--classifier", "arch-router", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no URL for the routing model 'katanemo/Arch-Router-1.5B'" in proc.stderr
    assert "--classifier-base-url" in proc.stderr and "Traceback" not in proc.stderr


# -- evalkit run end to end -------------------------------------------------------------------

MULTI_TURN_CASES = [
    {"id": "mt-1", "expected_route": "customer-qa", "messages": [
        {"role": "system", "content": "You are the support assistant of Acme."},
        {"role": "user", "content": "My invoice shows two charges for March."},
        {"role": "assistant", "content": "I can look into that. Is it the Team plan?"},
        {"role": "user", "content": "Yes, the Team plan. Why was I charged twice?"}]},
    {"id": "mt-2", "expected_route": "reasoning", "messages": [
        {"role": "user", "content": "We run 3 regions with 2 replicas each."},
        {"role": "assistant", "content": "Understood."},
        {"role": "user", "content": "If one region fails, what is our remaining capacity, step by step?"}]},
    {"id": "mt-3", "expected_route": "classify", "messages": [
        {"role": "user", "content": "Classify the next ticket."},
        {"role": "assistant", "content": "Send it."},
        {"role": "user", "content": "The export button does nothing."}]},
]


def expected_outcomes(cases: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Per case id: ("route", name) or ("error", None), by the rule, simulating the run on our own:
    sessions carry their earlier turns (route-only answers are empty, so they drop out) and the
    affinity header pins a session to the route of the first turn that got one."""
    out: dict[str, tuple[str, str | None]] = {}
    history: dict[str, list[dict[str, str]]] = {}
    pinned: dict[str, str] = {}
    for case in sorted(cases, key=lambda c: (c.get("session") or "", c.get("turn") or 0)):
        session = case.get("session")
        own = case.get("messages") or [{"role": "user", "content": case["prompt"]}]
        conversation = [*history.get(session or "", []), *user_turns(own)]
        if session in pinned:
            out[case["id"]] = ("route", pinned[session])
        else:
            answer = decide(ROUTES, conversation)
            if answer == GARBLED:
                out[case["id"]] = ("error", None)
            else:
                out[case["id"]] = ("route", "fallback" if answer == "other" else answer)
                if session:
                    pinned[session] = out[case["id"]][1]  # type: ignore[assignment]
        if session:
            history[session] = conversation
    return out


def test_run_with_the_arch_router_classifier_end_to_end(tmp_path: Path) -> None:
    routes = [{"name": p["custom_task"]["name"], "description": p["custom_task"]["description"]}
              for p in bundled_router()["policies"]]
    assert routes == ROUTES  # the bundled router is the tutorial's: the rule sees the same routes
    suite = slice_suite(tmp_path / "arch", per_task=4, sessions=True)
    with (suite / "cases.jsonl").open("a") as fh:
        for case in MULTI_TURN_CASES:
            fh.write(json.dumps(case) + "\n")
    cases = [json.loads(line) for line in (suite / "cases.jsonl").read_text().splitlines()]
    assert len(cases) > 30 and any(c.get("session") for c in cases)
    expected = expected_outcomes(cases)
    n_errors = sum(1 for kind, _ in expected.values() if kind == "error")
    assert 0 < n_errors < len(cases) and {r for k, r in expected.values() if k == "route"} >= {"fallback", *NAMES}

    with FakeArchRouter(routes) as fake:
        proc = run_cli("run", suite, "--classifier", "arch-router", "--classifier-base-url", fake.base_url,
                       "--backoff", "0.01", "--out", tmp_path / "out", "-q", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert fake.rejected == []  # every routing prompt was in the model card's format
    run_dir = next((tmp_path / "out" / "arch").iterdir())
    results = {r["id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    assert set(results) == set(expected)
    for cid, (kind, route) in expected.items():
        r = results[cid]
        if kind == "error":
            assert r["status"] == "error" and r["route"] is None, cid
            assert r["error_code"] == "classifier_bad_answer" and r["http_status"] == 502, cid
            assert "classifier error" in r["error"] and r["attempts"] == 4, cid  # retried like any 5xx
        else:
            assert (r["status"], r["route"]) == ("ok", route), cid
    # the multi-turn cases reached the model with their prior turns
    conversations = [c for _, c in fake.accepted]
    for case in MULTI_TURN_CASES:
        assert user_turns(case["messages"]) in conversations
    n_classified = sum(1 for c in cases if not (c.get("session") and c.get("turn", 1) > 1
                                                 and expected_first_route(cases, c, expected)))
    assert len(fake.accepted) == n_classified + 3 * n_errors

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_errors"] == n_errors and summary["run"]["n_classifier_errors"] == n_errors
    assert summary["n_scored"] == len(cases) - n_errors
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["classifier"] == "arch-router" and manifest["target"]["threshold"] is None
    assert "katanemo/Arch-Router-1.5B" in manifest["target"]["note"]
    report = (run_dir / "report.html").read_text()
    assert f"{n_errors} of them from the local router" in report
    assert "classifier error: routing model" in report


def expected_first_route(cases: list[dict[str, Any]], case: dict[str, Any],
                         expected: dict[str, tuple[str, str | None]]) -> bool:
    """Whether an earlier turn of the case's session got a route (so this turn was pinned)."""
    earlier = [c for c in cases if c.get("session") == case["session"] and (c.get("turn") or 0) < case["turn"]]
    return any(expected[c["id"]][0] == "route" for c in earlier)


def test_an_answer_nested_too_deeply_is_a_classifier_error_not_a_crash() -> None:
    from evalkit.emulator.arch_router import ArchRouterAnswerError, parse_arch_router_answer

    with pytest.raises(ArchRouterAnswerError):
        parse_arch_router_answer('{"route": ' + "[" * 100_000 + "]" * 100_000 + "}", ["classify"])
