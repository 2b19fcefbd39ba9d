"""Hostile inputs against evalkit's limits (issue 18): messages printed literally, request and
response size limits of the local router and the target client, deeply nested JSON, hostile
numbers in usage. Every test talks to real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from evalkit.emulator.classifier import Decision
from evalkit.emulator.server import DEFAULT_MAX_BODY_BYTES, MAX_CLASSIFIER_CHARS, LocalRouter, create_app
from evalkit.records import BAD_USAGE, TargetInfo
from evalkit.store import write_json
from evalkit.router_config import parse_router_config
from evalkit.targets import (DEFAULT_MAX_RESPONSE_BYTES, RESPONSE_TOO_LARGE, OpenAITarget, TargetCallError,
                             make_endpoint)
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, case_id_of
from tests.run_helpers import make_run, result


# -- messages are printed as written -------------------------------------------------------------

def test_error_messages_print_emoji_codes_and_markup_literally(tmp_path: Path) -> None:
    # The message names the folder it was given; rich would turn :warning: into an emoji and
    # [bold] into style.
    folder = tmp_path / ":warning: [bold]loud[/bold] :smile:"
    proc = run_cli("report", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert f"{folder}: run directory not found" in proc.stderr
    assert "\u26a0" not in proc.stderr and "\U0001f604" not in proc.stderr


# -- evalkit serve: request body size, classifier text, deep nesting -----------------------------

class RecordingClassifier:
    """A classifier that remembers what it was given and routes everything to the first task."""

    threshold = 0.0

    def __init__(self, *, conversation: bool = False) -> None:
        self.reads_conversation = conversation
        self.texts: list[str] = []

    async def classify(self, text: str, router) -> Decision:
        self.texts.append(text)
        return Decision(router.task_names[0], 1.0)

    async def classify_conversation(self, messages: list[dict], router) -> Decision:
        self.texts.extend(m["content"] for m in messages)
        return Decision(router.task_names[0], 1.0)


@contextlib.contextmanager
def local_router(classifier: RecordingClassifier | None = None, **options) -> Iterator[LocalRouter]:
    app = create_app([parse_router_config(json.dumps(TUTORIAL_ROUTER))],
                     classifier=classifier or RecordingClassifier(), **options)
    with LocalRouter(app) as lr:
        yield lr


def chat_body(text: str) -> dict:
    return {"model": f"router:{TUTORIAL_ROUTER['name']}", "messages": [{"role": "user", "content": text}]}


def assert_openai_error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text[:300]
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    return error


def test_serve_refuses_a_body_over_the_default_limit_with_413() -> None:
    clf = RecordingClassifier()
    body = json.dumps(chat_body("x" * DEFAULT_MAX_BODY_BYTES)).encode()
    assert len(body) > DEFAULT_MAX_BODY_BYTES
    with local_router(clf) as lr:
        resp = httpx.post(f"{lr.base_url}/chat/completions", content=body,
                          headers={"content-type": "application/json"}, timeout=60)
        error = assert_openai_error(resp, 413)
        assert f"{DEFAULT_MAX_BODY_BYTES:,} bytes" in error["message"]
        assert clf.texts == []  # refused before anything read it
        # a body at the limit is still served
        ok = httpx.post(f"{lr.base_url}/chat/completions", json=chat_body("fits"), timeout=60)
        assert ok.status_code == 200 and clf.texts == ["fits"]


def test_serve_stops_reading_a_chunked_body_past_the_limit_on_both_planes() -> None:
    limit = 64 * 1024
    chunk = b" " * 8192

    def body() -> Iterator[bytes]:  # no Content-Length: the server must count what it reads
        yield b'{"model": "router:x", "messages": [{"role": "user", "content": "'
        for _ in range(12):
            yield chunk
        yield b'"}]}'

    with local_router(max_body_bytes=limit) as lr:
        resp = httpx.post(f"{lr.base_url}/chat/completions", content=body(), timeout=60)
        assert "content-length" not in resp.request.headers
        assert_openai_error(resp, 413)
        resp = httpx.post(f"{lr.root_url}/v2/gen-ai/models/routers", content=body(), timeout=60)
        assert resp.status_code == 413
        assert resp.json()["id"] == "request_too_large" and str(limit) in resp.json()["message"].replace(",", "")
        assert httpx.get(f"{lr.root_url}/v2/gen-ai/models/routers", timeout=10).status_code == 200


@pytest.mark.parametrize("conversation", [False, True], ids=["last-message", "conversation"])
def test_the_classifier_reads_a_bounded_prefix_of_a_long_prompt(conversation: bool) -> None:
    clf = RecordingClassifier(conversation=conversation)
    prompt = "".join(f"word{i} " for i in range(40_000))  # about 300,000 characters
    with local_router(clf) as lr:
        resp = httpx.post(f"{lr.base_url}/chat/completions", json=chat_body(prompt), timeout=60)
    assert resp.status_code == 200, resp.text
    assert clf.texts == [prompt[:MAX_CLASSIFIER_CHARS]]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_json_is_a_400_in_each_planes_format() -> None:
    with local_router() as lr:
        for body in (nested(100_000), '{"model": "router:x", "messages": [{"role": "user", "content": '
                     + nested(100_000) + '}]}'):
            resp = httpx.post(f"{lr.base_url}/chat/completions", content=body, timeout=60)
            error = assert_openai_error(resp, 400)
            assert "nested too deeply" in error["message"]
        created = httpx.post(f"{lr.root_url}/v2/gen-ai/models/routers",
                             content='{"name": ' + nested(100_000) + "}", timeout=60)
        assert created.status_code == 400 and created.headers["content-type"] == "application/json"
        assert created.json()["id"] == "invalid_argument" and "nested too deeply" in created.json()["message"]
        uuid = httpx.get(f"{lr.root_url}/v2/gen-ai/models/routers", timeout=10).json()["model_routers"][0]["uuid"]
        updated = httpx.put(f"{lr.root_url}/v2/gen-ai/models/routers/{uuid}", content=nested(100_000), timeout=60)
        assert updated.status_code == 400 and "nested too deeply" in updated.json()["message"]
        # the server is still fine
        assert httpx.post(f"{lr.base_url}/chat/completions", json=chat_body("hello"), timeout=60).status_code == 200


def test_serve_refuses_a_body_limit_that_is_not_positive() -> None:
    proc = run_cli("serve", "--max-body-mb", "0", "--port", "1")
    assert proc.returncode == 2 and "--max-body-mb" in proc.stderr, proc.stderr


# -- the target client: decompressed response size -----------------------------------------------

def gzip_reply(size: int, *, content: str = "inflated") -> Reply:
    """A chat completion whose body, gzip-compressed on the wire, inflates to ``size`` bytes or more."""
    body = json.dumps({"id": "c", "object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
    padded = body[:-1] + b', "padding": "' + b" " * max(0, size - len(body)) + b'"}'
    return Reply(raw_body=gzip.compress(padded, 9),  # type: ignore[arg-type]  (bytes go out as they are)
                 headers={"content-encoding": "gzip", ROUTE: "classify"})


def bomb_suite(folder: Path) -> Path:
    return write_suite(folder, [{"id": f"c{i}", "prompt": f"prompt {i}", "expected_route": "classify"}
                                for i in range(2)])


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_gzip_bomb_from_the_router_is_a_case_error_not_a_crash(tmp_path: Path, stream: bool) -> None:
    bomb = gzip_reply(DEFAULT_MAX_RESPONSE_BYTES + 1024)
    assert len(bomb.raw_body) < 64 * 1024  # a few KB on the wire
    with FakeOpenAI(bomb) as fake:
        proc = run_cli("run", bomb_suite(tmp_path / "suite"), "--target", "openai", "--base-url", fake.base_url,
                       "--out", tmp_path / "runs", "--retries", "0", "-q", *(["--stream"] if stream else []))
    assert "Traceback" not in proc.stderr, proc.stderr
    results = [json.loads(line) for line in next((tmp_path / "runs").glob("*/*/results.jsonl")).read_text().splitlines()]
    assert len(results) == 2
    for r in results:
        assert r["status"] == "error" and r["error_code"] == RESPONSE_TOO_LARGE, r
        assert f"{DEFAULT_MAX_RESPONSE_BYTES:,} bytes" in r["error"] and r["attempts"] == 1


def test_a_compressed_answer_under_the_cap_is_read_as_before(tmp_path: Path) -> None:
    with FakeOpenAI(gzip_reply(200_000, content="fine")) as fake:
        proc = run_cli("run", bomb_suite(tmp_path / "suite"), "--target", "openai", "--base-url", fake.base_url,
                       "--out", tmp_path / "runs", "--retries", "0", "-q")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in next((tmp_path / "runs").glob("*/*/results.jsonl")).read_text().splitlines()]
    assert [(r["status"], r["route"], r["content"]) for r in results] == [("ok", "classify", "fine")] * 2


def test_the_cap_is_a_parameter_of_the_endpoint() -> None:
    async def call(cap: int) -> Any:
        endpoint = make_endpoint(fake.base_url, "k", max_response_bytes=cap)
        target = OpenAITarget(endpoint, model="m", route_header=ROUTE,
                              info=TargetInfo(kind="openai", base_url=fake.base_url, model="m", route_header=ROUTE))
        try:
            return await target.send([{"role": "user", "content": "hi"}])
        except TargetCallError as exc:
            return exc
        finally:
            await target.close()

    with FakeOpenAI(gzip_reply(50_000)) as fake:
        small, large = asyncio.run(call(10_000)), asyncio.run(call(100_000))
    assert isinstance(small, TargetCallError) and small.code == RESPONSE_TOO_LARGE and not small.retryable
    assert large.route == "classify" and large.content == "inflated"


# -- hostile numbers -------------------------------------------------------------------------------

def strict_json(text: str) -> Any:
    """JSON as a strict reader takes it: NaN and Infinity are refused."""
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in a JSON document")
    return json.loads(text, parse_constant=refuse)


PRICED = "openai-gpt-oss-20b"  # in the bundled price catalog: a cost is computed from the usage
HOSTILE_USAGE = {
    "c0": '{"prompt_tokens": ' + "1" + "0" * 400 + ', "completion_tokens": 5}',
    "c1": '{"prompt_tokens": 10, "completion_tokens": -7}',
    "c2": '{"prompt_tokens": Infinity, "completion_tokens": 5}',
    "c3": '{"prompt_tokens": NaN, "completion_tokens": 5}',
    "c4": '{"prompt_tokens": 1e400, "completion_tokens": 5}',
    "c5": '{"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": -1}}',
    "c6": '{"prompt_tokens": 10, "completion_tokens": 5}',  # a sane one
}


def hostile_usage(body: dict, headers: dict) -> Reply:
    cid = case_id_of(body)
    raw = ('{"id": "x", "object": "chat.completion", "model": "' + PRICED + '", "choices": [{"index": 0, '
           '"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}], "usage": '
           + HOSTILE_USAGE[cid] + "}")
    return Reply(raw_body=raw, headers={ROUTE: "classify"})


def test_hostile_usage_is_a_case_error_and_every_document_stays_valid_json(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite", [{"id": cid, "prompt": f"[{cid}] hello", "expected_route": "classify"}
                                             for cid in HOSTILE_USAGE])
    with FakeOpenAI(hostile_usage) as fake:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "0", "-q")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    run_dir = next((tmp_path / "runs").glob("*/*"))
    results = {r["id"]: r for r in map(strict_json, (run_dir / "results.jsonl").read_text().splitlines())}
    for cid in ("c0", "c1", "c2", "c3", "c4", "c5"):
        assert results[cid]["status"] == "error" and results[cid]["error_code"] == BAD_USAGE, results[cid]
        assert "impossible usage" in results[cid]["error"] and results[cid]["attempts"] == 1
    assert "a 401-digit number" in results["c0"]["error"]
    sane = results["c6"]
    assert sane["status"] == "ok" and sane["prompt_tokens"] == 10 and sane["cost_usd"] > 0
    summary = strict_json((run_dir / "summary.json").read_text())
    assert summary["cost"]["total_usd"] == sane["cost_usd"]
    assert summary["n_errors"] == 6
    assert run_cli("report", run_dir).returncode == 0


def test_report_reads_old_results_with_non_finite_and_negative_numbers(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", [result("a", "classify", "classify", served_model=PRICED, prompt_tokens=10,
                                                 completion_tokens=5, cost_usd=0.001, latency_ms=20.0)],
                       finalize=False)
    # lines as an evalkit without these checks could leave them (Python's json writes NaN/Infinity)
    base = {"expected_route": "classify", "route": "classify", "status": "ok", "served_model": PRICED}
    hostile = [
        {"id": "b", "latency_ms": float("nan"), "cost_usd": float("inf"), "prompt_tokens": 10 ** 400,
         "completion_tokens": 5},
        {"id": "c", "latency_ms": float("inf"), "ttft_ms": -1.0, "cost_usd": -0.5, "prompt_tokens": -3,
         "completion_tokens": float("nan")},
        {"id": "d", "latency_ms": 10 ** 400, "cost_usd": float("-inf"), "prompt_tokens": 1e300},
    ]
    with (run_dir / "results.jsonl").open("a") as fh:
        for line in hostile:
            fh.write(json.dumps({**base, **line}) + "\n")
    proc = run_cli("report", run_dir)
    assert proc.returncode == 0, proc.stderr
    summary = strict_json((run_dir / "summary.json").read_text())
    assert summary["n_scored"] == 4
    assert summary["cost"]["known_usd"] == 0.001  # the three hostile costs are unknown, not infinite or negative
    assert summary["latency"]["n"] == 1 and summary["latency"]["mean_ms"] == 20.0  # only case a has a usable latency


def test_a_document_with_a_non_finite_number_is_written_as_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    write_json(path, {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}})
    assert strict_json(path.read_text()) == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_a_gzip_bomb_from_an_upstream_of_the_local_router_fails_over() -> None:
    bomb = gzip_reply(DEFAULT_MAX_RESPONSE_BYTES + 1024)
    with FakeOpenAI(bomb) as evil, FakeOpenAI(Reply(content="from the second model")) as good:
        # classify's pool is openai-gpt-oss-20b (the bomb), then llama3.3-70b-instruct
        with local_router(upstreams={"openai-gpt-oss-20b": evil.base_url, "*": good.base_url}) as lr:
            resp = httpx.post(f"{lr.base_url}/chat/completions", json=chat_body("hello"), timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["choices"][0]["message"]["content"] == "from the second model"
    assert resp.headers["x-evalkit-attempt-log"].startswith("openai-gpt-oss-20b=too-large, ")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_answer_in_an_encoding_not_asked_for_is_a_case_error(tmp_path: Path, stream: bool) -> None:
    # brotli would be decoded by httpx, uncapped, when the brotli package is installed
    reply = Reply(raw_body="opaque bytes", headers={"content-encoding": "br", ROUTE: "classify"})
    with FakeOpenAI(reply) as fake:
        proc = run_cli("run", bomb_suite(tmp_path / "suite"), "--target", "openai", "--base-url", fake.base_url,
                       "--out", tmp_path / "runs", "--retries", "0", "-q", *(["--stream"] if stream else []))
        sent = fake.request_headers
    assert "Traceback" not in proc.stderr, proc.stderr
    assert sent and all(h["accept-encoding"] == "gzip, deflate" for h in sent)
    results = [json.loads(line) for line in next((tmp_path / "runs").glob("*/*/results.jsonl")).read_text().splitlines()]
    assert [(r["status"], r["error_code"]) for r in results] == [("error", "bad_content_encoding")] * 2
    assert "'br'" in results[0]["error"]


# -- deeply nested JSON from a router or a judge ---------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser goes: RecursionError, not ValueError


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_deeply_nested_json_from_the_router_or_the_judge_is_an_error_not_a_crash(tmp_path: Path, stream: bool) -> None:
    def router(body: dict[str, Any], headers: dict[str, str]) -> Reply:
        cid = case_id_of(body)
        if cid == "c0":  # a 200 whose body (or stream event) nests too deeply
            if stream:
                return Reply(raw_body=f"data: {DEEP}\n\ndata: [DONE]\n\n",
                             headers={ROUTE: "classify", "content-type": "text/event-stream"})
            return Reply(raw_body=DEEP, headers={ROUTE: "classify"})
        if cid == "c1":  # an error whose body nests too deeply
            return Reply(status=400, raw_body=DEEP, headers={ROUTE: "classify"})
        return Reply(content="Open Billing, then Invoices.", headers={ROUTE: "classify"})

    suite = write_suite(tmp_path / "suite", [{"id": f"c{i}", "prompt": f"[c{i}] prompt {i}", "expected_route": "classify"}
                                             for i in range(3)])
    with FakeOpenAI(router) as fake, FakeOpenAI(Reply(raw_body=DEEP)) as judge:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--retries", "0", "-q", "--judge", "judge-x", "--judge-base-url", judge.base_url,
                       "--judge-api-key-env", "JUDGE_KEY", *(["--stream"] if stream else []),
                       env=cli_env(JUDGE_KEY="judge-key-0000", EVALKIT_CACHE_DIR=str(tmp_path / "cache")))
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    run_dir = next((tmp_path / "runs").glob("*/*"))
    results = {r["id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    assert results["c0"]["status"] == "error" and "nested too deeply" in results["c0"]["error"]
    assert results["c1"]["status"] == "error" and results["c1"]["http_status"] == 400
    assert results["c2"]["status"] == "ok"
    grades = [json.loads(line) for line in (run_dir / "judge.jsonl").read_text().splitlines()]
    assert grades and all(g["status"] == "error" and "nested too deeply" in g["rationale"] for g in grades)
    json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("status", [200, 400])
def test_an_upstream_answering_json_nested_too_deeply_is_not_a_500_of_the_local_router(status: int) -> None:
    with FakeOpenAI(Reply(status=status, raw_body=DEEP)) as evil, FakeOpenAI(Reply(content="from the second model")) as good:
        with local_router(upstreams={"openai-gpt-oss-20b": evil.base_url, "*": good.base_url}) as lr:
            resp = httpx.post(f"{lr.base_url}/chat/completions", json=chat_body("hello"), timeout=60)
    if status == 200:  # not an answer: the next model serves
        assert resp.status_code == 200, resp.text[:300]
        assert resp.json()["choices"][0]["message"]["content"] == "from the second model"
        assert resp.headers["x-evalkit-attempt-log"].startswith("openai-gpt-oss-20b=bad-body, ")
    else:  # a client error is passed back, in the OpenAI error format
        assert resp.status_code == 400, resp.text[:300]
        assert resp.json()["error"]["message"].startswith("[[[")


# -- every other client: the control plane, the classifiers, the labeler, the readiness probe -----

BOMB = DEFAULT_MAX_RESPONSE_BYTES + 1024
CAP_TEXT = f"larger than {DEFAULT_MAX_RESPONSE_BYTES:,} bytes once decompressed (gzip)"


class GzipControlPlane:
    """A control plane on 127.0.0.1 answering the router list gzip-compressed, ``size`` bytes inflated."""

    def __init__(self, size: int) -> None:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        router = {"uuid": "0b8a4c7e-1111-4222-8333-944455556666", "name": "support-router", "config": {}}
        body = json.dumps({"model_routers": [router], "links": {}}).encode()
        padded = body[:-1] + b', "padding": "' + b" " * max(0, size - len(body)) + b'"}'
        self.seen = 0

        async def routers(request: Any) -> Response:
            self.seen += 1
            return Response(gzip.compress(padded, 9), headers={"content-encoding": "gzip",
                                                               "content-type": "application/json"})

        self.server = LocalRouter(Starlette(routes=[Route("/v2/gen-ai/models/routers", routers)])).start()

    def __enter__(self) -> "GzipControlPlane":
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def test_a_gzip_bomb_from_the_control_plane_is_a_clear_error_and_not_retried() -> None:
    token = "dop_v1_" + "5a" * 32
    with GzipControlPlane(BOMB) as plane:
        proc = run_cli("router", "list", env=cli_env(DIGITALOCEAN_TOKEN=token, EVALKIT_DO_API_URL=plane.server.root_url))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and token not in proc.stderr + proc.stdout
    assert CAP_TEXT in proc.stderr and f"GET {plane.server.root_url}/v2/gen-ai/models/routers" in proc.stderr
    assert plane.seen == 1  # a refused body is not transient: no retry


def test_a_compressed_control_plane_answer_under_the_cap_is_read() -> None:
    with GzipControlPlane(200_000) as plane:
        proc = run_cli("router", "list", "--json",
                       env=cli_env(DIGITALOCEAN_TOKEN="dop_v1_" + "5a" * 32, EVALKIT_DO_API_URL=plane.server.root_url))
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["model_routers"]] == ["support-router"]


def routing_classifier(kind: str, base_url: str) -> Any:
    from evalkit.emulator.classifier import make_classifier

    return make_classifier(kind, llm_model="routing-model", llm_base_url=base_url, timeout_s=30)


@pytest.mark.parametrize("kind", ["llm", "arch-router"])
def test_a_gzip_bomb_from_the_routing_model_is_a_classifier_error_and_the_server_keeps_serving(kind: str) -> None:
    with FakeOpenAI(gzip_reply(BOMB, content='{"route": "reasoning"}')) as fake:
        with local_router(routing_classifier(kind, fake.base_url)) as lr:
            replies = [httpx.post(f"{lr.base_url}/chat/completions", json=chat_body(f"hello {i}"), timeout=60)
                       for i in range(2)]
    for resp in replies:
        error = assert_openai_error(resp, 502)
        assert error["code"] == "classifier_failed" and CAP_TEXT in error["message"], error


@pytest.mark.parametrize("kind", ["llm", "arch-router"])
def test_a_compressed_routing_answer_under_the_cap_routes(kind: str) -> None:
    with FakeOpenAI(gzip_reply(200_000, content='{"route": "reasoning"}')) as fake:
        with local_router(routing_classifier(kind, fake.base_url)) as lr:
            resp = httpx.post(f"{lr.base_url}/chat/completions", json=chat_body("hello"), timeout=60)
        sent = fake.request_headers
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers[ROUTE] == "reasoning"
    assert sent and all(h["accept-encoding"] == "gzip, deflate" for h in sent)


def test_a_gzip_bomb_from_the_labeling_model_is_an_error_per_case() -> None:
    from evalkit.traffic.labeler import LabelerSettings, propose_labels

    router = parse_router_config(json.dumps(TUTORIAL_ROUTER))
    with FakeOpenAI(gzip_reply(BOMB, content='{"route": "reasoning"}')) as fake:
        outcome = propose_labels(LabelerSettings(model="m", base_url=fake.base_url), "k", ["a", "b"], router)
    assert outcome.routes == [None, None] and outcome.failures["error"] == 2
    assert outcome.first_error and CAP_TEXT in outcome.first_error
    with FakeOpenAI(gzip_reply(200_000, content='{"route": "reasoning"}')) as fake:
        outcome = propose_labels(LabelerSettings(model="m", base_url=fake.base_url), "k", ["a", "b"], router)
    assert outcome.routes == ["reasoning", "reasoning"] and not outcome.failures


def test_a_gzip_bomb_answering_the_readiness_probe_is_a_clear_error_at_once() -> None:
    from evalkit.errors import TargetError
    from evalkit.targets import wait_until_answers

    with FakeOpenAI(gzip_reply(BOMB)) as fake:
        with pytest.raises(TargetError) as caught:
            wait_until_answers(fake.base_url, "k", "m", timeout=30, interval=0.01)
        n_sent = len(fake.requests)
    assert CAP_TEXT in str(caught.value) and n_sent == 1
    with FakeOpenAI(gzip_reply(200_000)) as fake:
        assert wait_until_answers(fake.base_url, "k", "m", timeout=30) == 1


def test_a_gzip_bomb_from_the_judge_is_a_grade_error_not_a_crash(tmp_path: Path) -> None:
    with FakeOpenAI(Reply(content="Open Billing.", headers={ROUTE: "classify"})) as fake, \
            FakeOpenAI(gzip_reply(BOMB, content="Fine.\nVERDICT: 4")) as judge:
        proc = run_cli("run", bomb_suite(tmp_path / "suite"), "--target", "openai", "--base-url", fake.base_url,
                       "--out", tmp_path / "runs", "--retries", "0", "-q", "--judge", "judge-x",
                       "--judge-base-url", judge.base_url, "--judge-api-key-env", "JUDGE_KEY",
                       env=cli_env(JUDGE_KEY="judge-key-0000", EVALKIT_CACHE_DIR=str(tmp_path / "cache")))
        n_judged = len(judge.requests)
    assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
    grades = [json.loads(line) for line in next((tmp_path / "runs").glob("*/*/judge.jsonl")).read_text().splitlines()]
    assert {g["id"] for g in grades} == {"c0", "c1"}
    assert all(g["status"] == "error" and CAP_TEXT in g["rationale"] for g in grades), grades
    assert n_judged == len(grades)  # one call per grade: a refused body is not retried
