"""`evalkit serve` as a real process: both planes on one port, persistence across restarts, keys, options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest

from evalkit.emulator.server import exposure_warning, free_port
from tests.conftest import TUTORIAL_ROUTER, cli_env, run_cli, write_suite
from tests.fake_openai import FakeOpenAI, Reply

SERVE_KEY = "sk-do-serve-test-key"
UPSTREAM_KEY = "sk-upstream-secret-value"


class Served:
    """One `python -m evalkit serve` process."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        # A real process: the command as users start it, stopped with SIGTERM and started again on
        # the same state folder (a restart is a new process).
        self.proc = subprocess.Popen([sys.executable, "-m", "evalkit", "serve", "--port", str(self.port), *args],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.root}/v1/models", headers={"authorization": f"Bearer {SERVE_KEY}"},
                             timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("serve did not answer within 90 s")
            time.sleep(0.2)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, stderr = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return stderr


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(Reply(content="served by the upstream")) as f:
        yield f


@pytest.mark.slow
def test_serve_persists_routers_across_a_restart(tmp_path: Path, fake: FakeOpenAI) -> None:
    state = tmp_path / "state"
    env = cli_env(EVALKIT_SERVE_API_KEY=SERVE_KEY, EVALKIT_TEST_UP_KEY=UPSTREAM_KEY)
    args = ["--state-dir", str(state), "--classifier", "tfidf", "--upstream", f"*={fake.base_url}@EVALKIT_TEST_UP_KEY"]
    auth = {"Authorization": f"Bearer {SERVE_KEY}"}

    first = Served(args, env)
    try:
        assert httpx.get(f"{first.root}/v2/gen-ai/models/routers").status_code == 401
        # The tutorial's curl create body, sent as-is to the same port as inference.
        resp = httpx.post(f"{first.root}/v2/gen-ai/models/routers", content=json.dumps(TUTORIAL_ROUTER),
                          headers={**auth, "Content-Type": "application/json"})
        assert resp.status_code == 200
        created = resp.json()["model_router"]
        duplicate = httpx.post(f"{first.root}/v2/gen-ai/models/routers", json=TUTORIAL_ROUTER, headers=auth)
        assert duplicate.status_code == 400 and duplicate.json()["message"].endswith("model router name already exists")

        # The tutorial's Python snippets: only base_url and api_key differ.
        client = openai.OpenAI(base_url=f"{first.root}/v1", api_key=SERVE_KEY)
        raw = client.chat.completions.with_raw_response.create(
            model="router:cost-governance-demo",
            messages=[{"role": "user", "content": "Classify this customer support message: I was billed twice."}],
            max_completion_tokens=256)
        response = raw.parse()
        assert raw.headers.get("x-model-router-selected-route") == "classify"
        assert response.model == "openai-gpt-oss-20b"
        assert response.choices[0].message.content == "served by the upstream"
        session_id = str(uuid.uuid4())
        raw = client.chat.completions.with_raw_response.create(
            model="router:cost-governance-demo",
            messages=[{"role": "user", "content": "Answer a question about my subscription plan"}],
            extra_headers={"X-Model-Affinity": session_id})
        assert raw.headers.get("x-model-affinity") == session_id
    finally:
        stderr_first = first.stop()

    assert json.loads((state / "routers.json").read_text())["model_routers"][0]["uuid"] == created["uuid"]
    second = Served(args, env)
    try:
        listing = httpx.get(f"{second.root}/v2/gen-ai/models/routers", headers=auth).json()
        assert [r["uuid"] for r in listing["model_routers"]] == [created["uuid"]]
        assert listing["model_routers"][0] == created
        client = openai.OpenAI(base_url=f"{second.root}/v1", api_key=SERVE_KEY)
        raw = client.chat.completions.with_raw_response.create(
            model="router:cost-governance-demo",
            messages=[{"role": "user", "content": "Classify this customer support message: the app crashes."}])
        assert raw.headers["x-model-router-selected-route"] == "classify"
    finally:
        stderr_second = second.stop()

    assert all(h["authorization"] == f"Bearer {UPSTREAM_KEY}" for h in fake.request_headers)
    for text in (stderr_first, stderr_second):
        assert "control plane:" in text and "/v2/gen-ai/models/routers" in text
        assert "$EVALKIT_TEST_UP_KEY" in text
        assert UPSTREAM_KEY not in text and SERVE_KEY not in text
    assert not list(state.glob("*.tmp"))
    assert UPSTREAM_KEY not in (state / "routers.json").read_text()


@pytest.mark.parametrize("args, message", [
    (["--fault-rate", "2"], "--fault-rate: the fault rate must be between 0 and 1"),
    (["--fault-kinds", "500,teapot"], "unknown fault kind 'teapot'"),
    (["--fault-kinds", ""], "--fault-kinds is empty"),  # not silently every kind, timeouts included
    (["--fault-kinds", " , "], "--fault-kinds is empty"),
    (["--upstream", "no-equals-sign"], "an upstream must be SLUG=URL"),
    (["--upstream", "m=ftp://example"], "is not an http(s) URL"),
    (["--upstream", "m=http://127.0.0.1:9/v1@EVALKIT_UNSET_VAR_XYZ"], "EVALKIT_UNSET_VAR_XYZ"),
    (["--classifier", "bert"], "unknown classifier 'bert'"),
    (["--classifier", "llm"], "needs a routing model"),
])
def test_bad_serve_options_exit_2_without_traceback(args: list[str], message: str) -> None:
    proc = run_cli("serve", "--classifier", "tfidf", *args, timeout=120) if "--classifier" not in args \
        else run_cli("serve", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_on_a_port_in_use_exits_3_with_a_message() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("serve", "--classifier", "tfidf", "--port", str(port), timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert f"127.0.0.1:{port}: the local router cannot listen on its port" in proc.stderr
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_router_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "router.json"
    bad.write_text(json.dumps({**TUTORIAL_ROUTER, "fallback_models": []}))
    proc = run_cli("serve", "--classifier", "tfidf", str(bad), timeout=120)
    assert proc.returncode == 2
    assert "fallback_models" in proc.stderr and "Traceback" not in proc.stderr


def test_exposure_warning_only_beyond_loopback_without_a_key() -> None:
    assert exposure_warning("127.0.0.1", None) is None
    assert exposure_warning("localhost", None) is None
    assert exposure_warning("0.0.0.0", "key") is None
    warning = exposure_warning("0.0.0.0", None)
    assert warning is not None and "--api-key" in warning


@pytest.mark.slow
def test_run_target_local_takes_the_classifier_option(tmp_path: Path) -> None:
    cases = [{"id": "c1", "prompt": "Classify this customer support message: I was billed twice.",
              "expected_route": "classify"},
             {"id": "c2", "prompt": "Perform complex multi-step reasoning with intermediate conclusions.",
              "expected_route": "reasoning"}]
    suite = write_suite(tmp_path / "mini", cases)
    with FakeOpenAI(Reply(content="upstream text")) as fake:
        proc = run_cli("run", str(suite), "--classifier", "tfidf", "--out", str(tmp_path / "out"), "--quiet",
                       "--upstream", f"*={fake.base_url}", timeout=300)
    assert proc.returncode == 0, proc.stderr
    [run_dir] = list((tmp_path / "out" / "mini").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["target"]["classifier"] == "tfidf"
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["route"] for r in results) == ["classify", "reasoning"]
    assert {r["content"] for r in results} == {"upstream text"}


@pytest.mark.slow
def test_run_target_local_streams_through_the_router_to_an_upstream(tmp_path: Path) -> None:
    cases = [{"id": "c1", "prompt": "Classify this customer support message: I was billed twice.",
              "expected_route": "classify"}]
    suite = write_suite(tmp_path / "streamed", cases)
    with FakeOpenAI(Reply(content="a streamed upstream answer", prompt_tokens=12, completion_tokens=4)) as fake:
        proc = run_cli("run", str(suite), "--classifier", "tfidf", "--stream", "--out", str(tmp_path / "out"),
                       "--quiet", "--upstream", f"*={fake.base_url}", timeout=300)
    assert proc.returncode == 0, proc.stderr
    [run_dir] = list((tmp_path / "out" / "streamed").iterdir())
    [result] = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert (result["route"], result["served_model"]) == ("classify", "openai-gpt-oss-20b")
    assert result["content"] == "a streamed upstream answer"
    assert (result["prompt_tokens"], result["completion_tokens"]) == (12, 4)
    assert result["ttft_ms"] is not None
    assert fake.requests[0]["stream"] is True


@pytest.mark.slow
def test_a_drill_without_seed_prints_the_seed_it_drew_and_that_seed_replays_it(tmp_path: Path) -> None:
    router = tmp_path / "router.json"
    router.write_text(json.dumps(TUTORIAL_ROUTER))
    env = cli_env(EVALKIT_SERVE_API_KEY=SERVE_KEY)
    body = {"model": f"router:{TUTORIAL_ROUTER['name']}", "messages": [{"role": "user", "content": "hi"}]}

    def drill(extra: list[str]) -> tuple[list[int], str]:
        served = Served([str(router), "--classifier", "tfidf", "--fault-rate", "0.5", "--fault-kinds", "429,500",
                         *extra], env)
        try:
            with httpx.Client(base_url=served.root, headers={"Authorization": f"Bearer {SERVE_KEY}"}) as http:
                codes = [http.post("/v1/chat/completions", json=body).status_code for _ in range(24)]
        finally:
            stderr = served.stop()
        return codes, stderr

    first, stderr = drill([])
    assert "seed None" not in stderr
    seed = re.search(r"seed (\d+) \(the same faults again: --seed \1\)", stderr)
    assert seed, stderr
    again, _ = drill(["--seed", seed.group(1)])
    assert again == first and {200, 429, 500} <= set(first)

