"""The opt-in response cache: off by default, keyed by target, router, case content and parameters."""

from __future__ import annotations

import json

import pytest

from evalkit.cache import ResponseCache, cache_key
from evalkit.run import Reliability, TargetSpec, run_suite
from evalkit.suites import load_suite
from evalkit.targets import TargetResponse
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import Recorder, case_rows, make_cases, ok_reply, write_case_suite


def run(suite_dir, fake, tmp_path, *, cache=True, model=None, base_url=None):
    suite = load_suite(suite_dir)
    spec = TargetSpec(kind="openai", base_url=base_url or fake.base_url, model=model, timeout=10)
    rel = Reliability(cache=cache, cache_dir=tmp_path / "cache", retries=0)
    return run_suite(suite, spec, out=tmp_path / "runs", prices={}, concurrency=4, reliability=rel)


@pytest.fixture
def router():
    rec = Recorder(lambda cid, attempt, body: ok_reply(cid))
    with FakeOpenAI(rec) as fake:
        yield fake, rec


def test_cache_is_off_by_default(tmp_path, router):
    fake, rec = router
    suite = write_case_suite(tmp_path / "s", make_cases(5))
    run(suite, fake, tmp_path, cache=False)
    run(suite, fake, tmp_path, cache=False)
    assert len(rec.log) == 10 and not (tmp_path / "cache").exists()


def test_a_second_identical_run_is_answered_from_the_cache(tmp_path, router):
    fake, rec = router
    suite = write_case_suite(tmp_path / "s", make_cases(5, sessions=1, turns=2))
    first = run(suite, fake, tmp_path)
    assert len(rec.log) == 7
    second = run(suite, fake, tmp_path)
    assert len(rec.log) == 7  # nothing sent
    a = {r.id: (r.status, r.route, r.served_model) for r in first.results}
    b = {r.id: (r.status, r.route, r.served_model) for r in second.results}
    assert a == b
    assert all(r.cached and r.attempts == 0 for r in second.results)
    assert second.summary["run"]["n_cached"] == 7
    assert "came from the response cache" in (second.run_dir / "report.html").read_text()
    stored = [json.loads(l) for l in (second.run_dir / "results.jsonl").read_text().splitlines()]
    assert stored[0]["content"] == f"answer to {stored[0]['id']}"  # answers are kept in the file


def test_a_changed_case_is_a_miss_only_for_that_case(tmp_path, router):
    fake, rec = router
    cases = make_cases(4)
    suite = write_case_suite(tmp_path / "s", cases)
    run(suite, fake, tmp_path)
    rows = case_rows(cases)
    rows[2]["prompt"] += " (edited)"
    write_suite(tmp_path / "s", rows)
    rec.log.clear()
    run(suite, fake, tmp_path)
    assert [cid for cid, _ in rec.log] == ["c002"]


def test_router_config_target_and_parameters_are_part_of_the_key(tmp_path, router):
    fake, rec = router
    suite = write_case_suite(tmp_path / "s", make_cases(3))
    run(suite, fake, tmp_path)
    sent = len(rec.log)
    run(suite, fake, tmp_path, model="router:other")  # another target model
    assert len(rec.log) == sent + 3
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    body["policies"][0]["custom_task"]["description"] += " Also refunds."
    (tmp_path / "s" / "router.json").write_text(json.dumps(body))
    run(suite, fake, tmp_path)  # the router changed
    assert len(rec.log) == sent + 6
    (tmp_path / "s" / "suite.yaml").write_text("name: s\ndefaults: {max_completion_tokens: 64}\n")
    run(suite, fake, tmp_path)  # another request parameter
    assert len(rec.log) == sent + 9
    assert rec.bodies["c000"][-1]["max_completion_tokens"] == 64
    run(suite, fake, tmp_path)
    assert len(rec.log) == sent + 9  # and that combination is cached in turn


def test_errors_are_never_cached(tmp_path):
    def decide(cid, attempt, body):
        return Reply(status=500) if cid == "c001" else ok_reply(cid)

    rec = Recorder(decide)
    with FakeOpenAI(rec) as fake:
        suite = write_case_suite(tmp_path / "s", make_cases(3))
        run(suite, fake, tmp_path)
        run(suite, fake, tmp_path)
    assert rec.count("c001") == 2 and rec.count("c000") == 1


def test_cache_key_is_canonical_and_sensitive():
    scope = {"kind": "openai", "model": "router:r", "router_hash": "abc"}
    msgs = [{"role": "user", "content": "hi"}]
    params = {"max_completion_tokens": None, "temperature": None}
    assert cache_key(scope, msgs, params) == cache_key(dict(reversed(scope.items())), msgs, dict(reversed(params.items())))
    assert cache_key(scope, msgs, params) != cache_key({**scope, "router_hash": "abd"}, msgs, params)
    assert cache_key(scope, msgs, params) != cache_key(scope, [{"role": "user", "content": "hi!"}], params)
    assert cache_key(scope, msgs, params) != cache_key(scope, msgs, {**params, "temperature": 0.0})


def test_an_unreadable_entry_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    response = TargetResponse(route="classify", served_model="m", content="x", finish_reason="stop",
                              prompt_tokens=1, completion_tokens=1, reasoning_tokens=None, http_status=200,
                              latency_ms=1.0, route_only=False, headers={"authorization": "never stored"})
    key = "ab" + "0" * 62
    cache.put(key, response)
    assert "never stored" not in next(tmp_path.rglob("*.json")).read_text()
    assert cache.get(key).route == "classify"
    next(tmp_path.rglob("*.json")).write_text("{truncated")
    assert cache.get(key) is None and cache.misses == 1


def test_cli_cache_flag_uses_the_env_cache_dir(tmp_path, router):
    fake, rec = router
    suite = write_case_suite(tmp_path / "s", make_cases(2))
    env = cli_env(EVALKIT_CACHE_DIR=str(tmp_path / "envcache"))
    for _ in range(2):
        proc = run_cli("run", suite, "--target", "openai", "--base-url", fake.base_url, "--out", tmp_path / "runs",
                       "--cache", "-q", env=env)
        assert proc.returncode == 0, proc.stderr
    assert len(rec.log) == 2 and len(list((tmp_path / "envcache" / "responses").rglob("*.json"))) == 2
