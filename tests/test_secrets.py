"""Secrets: sentinel keys in the environment never reach a file, a report or a log line, even when
the router echoes them back; the inference target and the control plane refuse each other's key."""

from __future__ import annotations

import secrets as _secrets
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.targets import api_key_from_env, check_control_plane_token, redact
from tests.conftest import cli_env, run_cli
from tests.fake_openai import FakeOpenAI, Reply
from tests.fault_helpers import ROUTE, Recorder, make_cases, ok_reply, write_case_suite

SENTINELS = {
    "MODEL_ACCESS_KEY": "sk-do-SENTINEL" + _secrets.token_hex(12),
    "DIGITALOCEAN_TOKEN": "dop_v1_SENTINEL" + _secrets.token_hex(24),
    "OPENAI_API_KEY": "sk-SENTINEL" + _secrets.token_hex(12),
    "ROUTER_KEY": "rk-SENTINEL" + _secrets.token_hex(12),
}


def leaks(folder: Path, *texts: str) -> list[str]:
    """Every (place, sentinel) where a sentinel value appears: files under ``folder`` and ``texts``."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {var}" for var, value in SENTINELS.items() if value.encode() in data]
    for i, text in enumerate(texts):
        found += [f"output {i}: {var}" for var, value in SENTINELS.items() if value in text]
    return found


def echoing_router(cid: str, attempt: int, body: dict) -> Reply:
    """A hostile router: echoes the caller's key in errors, answers and headers."""
    key = body.get("_key", "")
    n = int(cid[1:])
    if n % 4 == 0:
        return Reply(status=401, error_message=f"Incorrect API key provided: {key}")
    if n % 4 == 1:
        return Reply(content=f"your key is {key}", headers={ROUTE: "classify"}, model=f"model-{key}")
    if n % 4 == 2:
        return Reply(status=500, error_message=f"upstream failed for key {key}")
    return ok_reply(cid)


class KeyEcho(Recorder):
    """Passes the bearer key the router received to the reply script."""

    def __call__(self, body, headers):
        auth = headers.get("authorization", "")
        self.keys = getattr(self, "keys", set()) | {auth.removeprefix("Bearer ")}
        return super().__call__({**body, "_key": auth.removeprefix("Bearer ")}, headers)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["openai", "do"])
def test_sentinel_keys_never_reach_an_output(target, tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(12))
    rec = KeyEcho(echoing_router)
    with FakeOpenAI(rec) as fake:
        env = cli_env(**SENTINELS, EVALKIT_CACHE_DIR=str(tmp_path / "cache"), EVALKIT_DO_INFERENCE_URL=fake.base_url)
        if target == "openai":
            args = ["--target", "openai", "--base-url", fake.base_url, "--api-key-env", "ROUTER_KEY"]
            used = SENTINELS["ROUTER_KEY"]
        else:
            args = ["--target", "do"]
            used = SENTINELS["MODEL_ACCESS_KEY"]
        run = run_cli("run", suite, *args, "--out", tmp_path / "runs", "--retries", "1", "--backoff", "0.01",
                      "--cache", env=env)
        run_dir = next((tmp_path / "runs").glob("*/*"))
        report = run_cli("report", run_dir, env=env)
        json_run = run_cli("run", suite, *args, "--out", tmp_path / "runs", "--retries", "0", "--cache", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert rec.keys == {used}  # the sentinel really was the live key
    results = (run_dir / "results.jsonl").read_text()
    assert "[redacted]" in results  # the echoes were there, and were scrubbed
    assert list((tmp_path / "cache").rglob("*.json"))  # the cache was written, and is searched too
    assert leaks(tmp_path, run.stdout, run.stderr, report.stdout, report.stderr, json_run.stdout, json_run.stderr) == []


def test_an_unreachable_router_error_names_no_key(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(3))
    env = cli_env(**SENTINELS, EVALKIT_DO_INFERENCE_URL="http://127.0.0.1:9/v1")
    proc = run_cli("run", suite, "--target", "do", "--out", tmp_path / "runs", "--retries", "0", "-q", env=env)
    assert proc.returncode == 3 and "could not be reached" in proc.stderr
    assert leaks(tmp_path, proc.stdout, proc.stderr) == []


def test_inference_refuses_a_personal_access_token_without_printing_it(tmp_path):
    suite = write_case_suite(tmp_path / "s", make_cases(1))
    env = cli_env(**{**SENTINELS, "MODEL_ACCESS_KEY": SENTINELS["DIGITALOCEAN_TOKEN"]})
    proc = run_cli("run", suite, "--target", "do", "--out", tmp_path / "runs", env=env)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "personal access token (dop_v1_...)" in message and "control plane, not to inference" in message
    assert "model access key (sk-do-...)" in message and "DIGITALOCEAN_TOKEN" in message
    assert leaks(tmp_path, proc.stdout, proc.stderr) == []


def test_api_key_from_env_refuses_a_token(monkeypatch):
    monkeypatch.setenv("MODEL_ACCESS_KEY", "dop_v1_abcdef0123456789")
    with pytest.raises(UsageError, match="personal access token") as info:
        api_key_from_env("MODEL_ACCESS_KEY", target="do")
    assert "abcdef0123456789" not in info.value.message
    monkeypatch.setenv("MODEL_ACCESS_KEY", "sk-do-abcdef0123456789")
    assert api_key_from_env("MODEL_ACCESS_KEY", target="do") == "sk-do-abcdef0123456789"


def test_control_plane_refuses_a_model_access_key():
    with pytest.raises(UsageError) as info:
        check_control_plane_token("sk-do-abcdef0123456789")
    message = info.value.message
    assert "model access key (sk-do-...)" in message and "inference, not to the control plane" in message
    assert "dop_v1_" in message and "MODEL_ACCESS_KEY" in message and "abcdef0123456789" not in message


@pytest.mark.parametrize("value", [None, "", "   "])
def test_control_plane_needs_a_token(value):
    with pytest.raises(UsageError, match="DIGITALOCEAN_TOKEN is not set"):
        check_control_plane_token(value)


def test_control_plane_accepts_a_token_and_names_the_variable_it_checked():
    assert check_control_plane_token(" dop_v1_abc123 ") == "dop_v1_abc123"
    with pytest.raises(UsageError, match="MY_TOKEN holds a DigitalOcean model access key"):
        check_control_plane_token("sk-do-x", var="MY_TOKEN")


def test_redact_replaces_every_occurrence_and_ignores_short_values():
    assert redact("a sk-do-12345678 b sk-do-12345678", ["sk-do-12345678"]) == "a [redacted] b [redacted]"
    assert redact("none here", ["abc"]) == "none here"  # too short to redact safely
    assert redact(None, ["sk-do-12345678"]) is None
