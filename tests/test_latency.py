"""Latency per path, time to first token when streaming, and the router's overhead.

Percentiles are checked against ``statistics.quantiles(..., method="inclusive")`` (the same
definition as numpy's default, computed independently) and against hand-worked values.
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, write_suite
from fake_openai import FakeOpenAI, Reply

ROUTE = "x-model-router-selected-route"


def q(values: list[float], p: int) -> float:
    """The p-th percentile, independently of evalkit (linear interpolation, inclusive)."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def test_percentiles_by_hand() -> None:
    from evalkit.latency import percentiles

    got = percentiles([40.0, 10.0, 30.0, 20.0])
    # sorted 10, 20, 30, 40; rank (n-1)p: p50 -> 1.5 -> 25; p95 -> 2.85 -> 38.5; p99 -> 2.97 -> 39.7
    assert got == {"n": 4, "p50_ms": pytest.approx(25.0), "p95_ms": pytest.approx(38.5),
                   "p99_ms": pytest.approx(39.7), "mean_ms": pytest.approx(25.0)}
    assert percentiles([]) == {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}


def test_percentiles_match_statistics_quantiles() -> None:
    from evalkit.latency import percentiles

    rng = random.Random(7)
    values = [rng.lognormvariate(5, 0.8) for _ in range(503)]
    got = percentiles(values)
    for p in (50, 95, 99):
        assert got[f"p{p}_ms"] == pytest.approx(q(values, p), rel=1e-12)


def test_router_overhead_pairs_cases_by_id() -> None:
    from evalkit.latency import router_overhead
    from evalkit.records import CaseResult

    def res(cid: str, latency: float | None, cost: float | None = 0.001, status: str = "ok") -> CaseResult:
        return CaseResult(id=cid, expected_route="classify", route="classify", status=status,  # type: ignore[arg-type]
                          latency_ms=latency, cost_usd=cost)

    router = [res("a", 110), res("b", 230), res("c", 350), res("d", 90, status="error"), res("e", 100)]
    direct = [res("a", 100), res("b", 200), res("c", 300), res("d", 80), res("x", 10)]
    got = router_overhead(router, direct)
    assert got["n_pairs"] == 3  # a, b, c; d failed on the router side, e has no direct case, x no router case
    assert got["n_unpaired"] == 3
    diffs = [10.0, 30.0, 50.0]
    assert got["latency"]["p50_ms"] == pytest.approx(30.0)
    assert got["latency"]["p95_ms"] == pytest.approx(q(diffs, 95))
    assert got["latency"]["mean_ms"] == pytest.approx(30.0)
    assert got["router"]["p50_ms"] == pytest.approx(230.0) and got["direct"]["p50_ms"] == pytest.approx(200.0)
    assert got["cost"]["router_usd"] == pytest.approx(0.003) and got["cost"]["direct_usd"] == pytest.approx(0.003)
    assert got["ttft"] is None
    unknown = router_overhead([res("a", 110, cost=None)], [res("a", 100)])
    assert unknown["cost"]["router_usd"] is None and unknown["cost"]["difference_usd"] is None


# --- runs against a scripted OpenAI-compatible server ------------------------------------------

DELAYS = {"classify": 0.005, "customer-qa": 0.03, "reasoning": 0.06}


def routed_reply(body: dict[str, Any], headers: dict[str, str]) -> Reply:
    text = body["messages"][-1]["content"]
    route = text.split(":", 1)[0]
    return Reply(content=f"an answer on the {route} path, long enough to stream in several chunks",
                 model={"classify": "openai-gpt-oss-20b", "customer-qa": "anthropic-claude-4.6-sonnet",
                        "reasoning": "openai-gpt-5"}[route],
                 prompt_tokens=40, completion_tokens=120, reasoning_tokens=30 if route == "reasoning" else None,
                 headers={ROUTE: route}, delay_s=DELAYS[route])


def small_suite(folder: Path) -> Path:
    cases = []
    for route, n in (("classify", 6), ("customer-qa", 5), ("reasoning", 4)):
        cases += [{"id": f"{route}-{i}", "prompt": f"{route}: case {i}", "expected_route": route} for i in range(n)]
    return write_suite(folder, cases)


def run_against(fake: FakeOpenAI, suite: Path, out: Path, *extra: str) -> Path:
    proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", out, "-q", "--json",
                   "--concurrency", "3", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    (run_dir,) = (out / suite.name).iterdir()
    return run_dir


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def plain_and_streamed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("latency")
    suite = small_suite(base / "lat")
    with FakeOpenAI(routed_reply) as fake:
        plain = run_against(fake, suite, base / "plain")
        plain_bodies = list(fake.requests)
        fake.requests.clear()
        streamed = run_against(fake, suite, base / "streamed", "--stream")
        streamed_bodies = list(fake.requests)
    return {"plain": plain, "streamed": streamed, "plain_bodies": plain_bodies, "streamed_bodies": streamed_bodies}


def test_summary_latency_per_path_equals_independent_percentiles(plain_and_streamed: dict[str, Any]) -> None:
    run_dir = plain_and_streamed["plain"]
    results = [r for r in read_results(run_dir) if r["status"] != "error"]
    latency = json.loads((run_dir / "summary.json").read_text())["latency"]
    overall = [r["latency_ms"] for r in results]
    assert latency["n"] == len(overall)
    for p in (50, 95, 99):
        assert latency[f"p{p}_ms"] == pytest.approx(q(overall, p), rel=1e-9)
    assert set(latency["per_path"]) == set(DELAYS)
    for path in DELAYS:
        values = [r["latency_ms"] for r in results if r["route"] == path]
        got = latency["per_path"][path]
        assert got["n"] == len(values)
        for p in (50, 95, 99):
            assert got[f"p{p}_ms"] == pytest.approx(q(values, p), rel=1e-9)
        # Each path's server delay is a floor on its latency.
        assert min(values) >= DELAYS[path] * 1000
    assert latency["streamed"] is False and latency["ttft"] is None


def test_non_streaming_requests_are_unchanged(plain_and_streamed: dict[str, Any]) -> None:
    assert all("stream" not in body for body in plain_and_streamed["plain_bodies"])
    assert all(r["ttft_ms"] is None for r in read_results(plain_and_streamed["plain"]))


def test_stream_measures_time_to_first_token(plain_and_streamed: dict[str, Any]) -> None:
    bodies = plain_and_streamed["streamed_bodies"]
    assert bodies and all(b.get("stream") is True and b.get("stream_options") == {"include_usage": True}
                          for b in bodies)
    run_dir = plain_and_streamed["streamed"]
    results = read_results(run_dir)
    assert all(r["status"] == "ok" for r in results)
    for r in results:
        route = r["route"]
        assert r["ttft_ms"] is not None
        assert DELAYS[route] * 1000 <= r["ttft_ms"] <= r["latency_ms"]
        # The streamed chunks are assembled into the same answer and usage as a plain response.
        assert r["content"] == f"an answer on the {route} path, long enough to stream in several chunks"
        assert (r["prompt_tokens"], r["completion_tokens"]) == (40, 120)
        assert r["reasoning_tokens"] == (30 if route == "reasoning" else None)
        assert r["finish_reason"] == "stop"
        assert r["cost_usd"] is not None
    latency = json.loads((run_dir / "summary.json").read_text())["latency"]
    ttfts = [r["ttft_ms"] for r in results]
    assert latency["streamed"] is True
    assert latency["ttft"]["n"] == len(ttfts)
    assert latency["ttft"]["p50_ms"] == pytest.approx(q(ttfts, 50), rel=1e-9)
    for path in DELAYS:
        values = [r["ttft_ms"] for r in results if r["route"] == path]
        assert latency["per_path"][path]["ttft"]["p95_ms"] == pytest.approx(q(values, 95), rel=1e-9)
    assert "TTFT p50 ms" in (run_dir / "report.html").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["options"]["stream"] is True


def test_stream_request_answered_with_one_json_body(tmp_path: Path) -> None:
    """A server that ignores `stream` (the local router in route-only mode) is read as usual."""
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "openai-gpt-oss-20b",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 0, "total_tokens": 12}}
    suite = write_suite(tmp_path / "json", [{"id": "a", "prompt": "classify: x", "expected_route": "classify"}])
    with FakeOpenAI(Reply(raw_body=json.dumps(body), headers={ROUTE: "classify"})) as fake:
        run_dir = run_against(fake, suite, tmp_path / "out", "--stream")
    (r,) = read_results(run_dir)
    assert r["status"] == "ok" and r["route"] == "classify" and r["served_model"] == "openai-gpt-oss-20b"
    assert r["prompt_tokens"] == 12 and r["ttft_ms"] is None


def test_overhead_command_with_a_router_run_and_a_direct_run(tmp_path: Path) -> None:
    suite = small_suite(tmp_path / "lat")
    with FakeOpenAI(routed_reply) as fake:
        router_run = run_against(fake, suite, tmp_path / "router")

    def direct(body: dict[str, Any], headers: dict[str, str]) -> Reply:
        reply = routed_reply(body, headers)
        reply.delay_s = 0.0
        return reply

    with FakeOpenAI(direct) as fake:
        direct_run = run_against(fake, suite, tmp_path / "direct")
    proc = run_cli("cost", "--overhead", router_run, direct_run, "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["overhead"]
    r = {x["id"]: x for x in read_results(router_run)}
    d = {x["id"]: x for x in read_results(direct_run)}
    diffs = [r[i]["latency_ms"] - d[i]["latency_ms"] for i in r]
    assert got["n_pairs"] == len(r) == 15 and got["n_unpaired"] == 0
    for p in (50, 95, 99):
        assert got["latency"][f"p{p}_ms"] == pytest.approx(q(diffs, p), rel=1e-9)
    assert got["cost"]["router_usd"] == pytest.approx(sum(x["cost_usd"] for x in r.values()), rel=1e-12)
    text = run_cli("cost", "--overhead", router_run, direct_run)
    assert text.returncode == 0 and "Router overhead over 15 paired cases" in text.stdout


@pytest.mark.parametrize("as_json", [False, True])
def test_stream_against_a_route_only_router_says_ttft_is_absent(tmp_path: Path, as_json: bool) -> None:
    # `evalkit serve` without an upstream: it routes and answers with one JSON body, never a stream.
    from evalkit.emulator import LocalRouter, create_app
    from evalkit.emulator.classifier import TfidfClassifier
    from evalkit.suites import load_suite

    suite = small_suite(tmp_path / "lat")
    with LocalRouter(create_app([load_suite(suite).router], classifier=TfidfClassifier())) as router:
        proc = run_cli("run", suite, "--target", "openai", "--base-url", router.base_url, "--out", tmp_path / "out",
                       "--stream", "-q", *(["--json"] if as_json else []))
    assert proc.returncode in (0, 1), proc.stderr
    (run_dir,) = (tmp_path / "out" / suite.name).iterdir()
    results = read_results(run_dir)
    assert results and all(r["route_only"] and r["ttft_ms"] is None for r in results if r["status"] != "error")
    said = " ".join(proc.stderr.split())
    assert "--stream measured no time to first token" in said and "route-only" in said, said
    assert said.count("measured no time to first token") == 1
    report = (run_dir / "report.html").read_text()
    assert "--stream measured no time to first token" in report


def test_a_streamed_run_has_no_route_only_note(plain_and_streamed: dict[str, Any]) -> None:
    report = (plain_and_streamed["streamed"] / "report.html").read_text()
    assert "TTFT p50 ms" in report and "no time to first token" not in report
