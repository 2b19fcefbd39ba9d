"""The DigitalOcean control-plane client and `evalkit router`: names, errors, the two credentials
kept apart, config diffs, and the commands end to end against `evalkit serve` as the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import TUTORIAL_ROUTER, cli_env, run_cli
from evalkit.control_plane import (MAX_NAME_LEN, ModelRouter, api_error, is_temporary_name, resolve_api_url,
                                   temporary_router_name)
from evalkit.errors import ControlPlaneError, UsageError
from evalkit.router_config import diff_configs, parse_router_config
from evalkit.targets import api_key_from_env, check_control_plane_token


def config(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(TUTORIAL_ROUTER))
    data.update(changes)
    return data


# -- temporary router names --------------------------------------------------------------------

def test_temporary_name_is_candidate_name_evalkit_short_id():
    assert temporary_router_name("cost-governance-demo", "0a1b2c") == "cost-governance-demo-evalkit-0a1b2c"


def test_temporary_name_of_a_long_name_is_cut_to_255_keeping_the_suffix():
    base = "r" * 250 + "-x"
    name = temporary_router_name(base, "abcdef")
    # 255 - len("-evalkit-abcdef") = 240 characters of the base are kept
    assert name == "r" * 240 + "-evalkit-abcdef"
    assert len(name) == MAX_NAME_LEN


def test_temporary_name_does_not_leave_a_double_hyphen_at_the_cut():
    base = "a" * 239 + "-" + "b" * 20   # the cut at 240 characters falls right after the hyphen
    name = temporary_router_name(base, "123456")
    assert name == "a" * 239 + "-evalkit-123456"
    assert "--" not in name


def test_temporary_name_rejects_a_short_id_that_is_not_lowercase_hex():
    with pytest.raises(ValueError, match="lowercase hex"):
        temporary_router_name("demo", "ABC!")


def test_temporary_names_are_recognised_and_others_are_not():
    assert is_temporary_name("demo-evalkit-a1b2c3")
    assert not is_temporary_name("demo-evalkit")
    assert not is_temporary_name("demo-evalkit-a1b2c3-v2")
    assert not is_temporary_name("cost-governance-demo")


# -- URLs, errors, credentials -----------------------------------------------------------------

def test_api_url_comes_from_flag_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("EVALKIT_DO_API_URL", raising=False)
    assert resolve_api_url() == "https://api.digitalocean.com"
    monkeypatch.setenv("EVALKIT_DO_API_URL", "http://127.0.0.1:9/")
    assert resolve_api_url() == "http://127.0.0.1:9"
    assert resolve_api_url("http://127.0.0.1:7/v2") == "http://127.0.0.1:7"
    with pytest.raises(UsageError, match="http"):
        resolve_api_url("api.digitalocean.com")


def test_token_is_not_sent_over_plain_http_to_another_host():
    from evalkit.control_plane import ControlPlane

    with pytest.raises(UsageError, match="plain HTTP"):
        ControlPlane("dop_v1_secret", base_url="http://api.example.com")


def test_duplicate_name_error_keeps_digitalocean_id_and_message():
    text = json.dumps({"id": "invalid_argument",
                       "message": "rpc error: code = InvalidArgument desc = model router name already exists"})
    exc = api_error("POST", "/v2/gen-ai/models/routers", 400, text)
    assert isinstance(exc, ControlPlaneError) and exc.exit_code == 2
    assert exc.error_id == "invalid_argument" and exc.status == 400
    assert exc.api_message == "rpc error: code = InvalidArgument desc = model router name already exists"
    assert "model router name already exists" in exc.message
    assert "evalkit router update" in exc.message  # the fix for a duplicate


def test_error_without_a_json_body_still_says_what_came_back():
    exc = api_error("GET", "/v2/gen-ai/models/routers", 502, "<html>Bad gateway</html>")
    assert exc.error_id is None and exc.status == 502
    assert "Bad gateway" in exc.message and "HTTP 502" in exc.message


def test_control_plane_refuses_a_model_access_key():
    with pytest.raises(UsageError, match="model access key"):
        check_control_plane_token("sk-do-abc123")
    with pytest.raises(UsageError, match="not set"):
        check_control_plane_token(None)
    assert check_control_plane_token(" dop_v1_abc ") == "dop_v1_abc"


def test_inference_refuses_a_personal_access_token(monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", "dop_v1_abc")
    with pytest.raises(UsageError, match="personal access token"):
        api_key_from_env("EVALKIT_TEST_KEY", target="do")


def test_create_body_of_an_api_record_is_a_valid_router_json():
    record = ModelRouter.model_validate({
        "uuid": "123e4567-e89b-12d3-a456-426614174000", "name": "demo", "description": "d", "regions": ["tor1"],
        "config": {"policies": [
            {"custom_task": {"name": "classify", "description": "Classify tickets.", "uuid": "x"},
             "models": ["m1"], "selection_policy": {"prefer": "none"}},
            {"task_slug": "summarization", "models": ["m2"], "selection_policy": {"prefer": "fastest"}}],
            "fallback_models": ["m3"]},
        "created_at": "2026-01-01T00:00:00Z"})
    body = record.create_body()
    assert body == {"name": "demo", "description": "d", "regions": ["tor1"], "fallback_models": ["m3"],
                    "policies": [{"custom_task": {"name": "classify", "description": "Classify tickets."}, "models": ["m1"]},
                                 {"task_slug": "summarization", "models": ["m2"], "selection_policy": {"prefer": "fastest"}}]}
    cfg = record.to_config()
    assert cfg.task("classify").prefer is None and cfg.task("summarization").prefer == "fastest"


# -- config diff -------------------------------------------------------------------------------

def test_diff_names_changed_descriptions_pools_policies_and_fallbacks():
    a = parse_router_config(config())
    changed = config()
    changed["policies"][0]["custom_task"]["description"] = "Sort a support message into billing, bug, how-to or account."
    changed["policies"][1]["models"] = ["llama3.3-70b-instruct", "anthropic-claude-4.6-sonnet"]
    changed["policies"][0]["selection_policy"] = {"prefer": "fastest"}
    changed["fallback_models"] = ["openai-gpt-oss-20b"]
    d = diff_configs(a, parse_router_config(changed))
    assert d["changed"] is True
    assert [t["task"] for t in d["tasks"]] == ["classify", "customer-qa"]
    classify, qa = d["tasks"]
    assert classify["description"]["b"].startswith("Sort a support message")
    assert classify["prefer"] == {"a": "cheapest", "b": "fastest"}
    assert classify["models"] is None
    assert qa["models"]["reordered"] is True and qa["models"]["added"] == [] and qa["models"]["removed"] == []
    assert qa["description"] is None
    assert d["fallback_models"]["added"] == ["openai-gpt-oss-20b"]
    assert d["fallback_models"]["removed"] == ["llama3.3-70b-instruct"]
    assert d["tasks_added"] == [] and d["tasks_removed"] == []


def test_diff_of_added_and_removed_tasks_and_of_identical_configs():
    a = parse_router_config(config())
    b_data = config()
    removed = b_data["policies"].pop(2)
    b_data["policies"].append({"custom_task": {"name": "translate", "description": "Translate text."}, "models": ["m"]})
    d = diff_configs(a, parse_router_config(b_data))
    assert [t["task"] for t in d["tasks_removed"]] == [removed["custom_task"]["name"]]
    assert d["tasks_added"] == [{"task": "translate", "description": "Translate text.", "models": ["m"], "prefer": None}]
    same = diff_configs(a, parse_router_config(config()))
    assert same["changed"] is False and same["tasks"] == [] and same["fallback_models"] is None


def test_diff_text_marks_deleted_and_inserted_words():
    from evalkit.commands.router import format_config_diff

    changed = config()
    changed["policies"][2]["custom_task"]["description"] = changed["policies"][2]["custom_task"]["description"].replace(
        "complex multi-step reasoning", "careful step-by-step reasoning")
    text = format_config_diff(diff_configs(parse_router_config(config()), parse_router_config(changed)))
    assert "task reasoning:" in text
    assert "[-complex multi-step-] {+careful step-by-step+} reasoning" in text
    assert "classify" not in text and "customer-qa" not in text


def test_router_diff_command_prints_changes_and_exit_code(tmp_path: Path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(config()))
    changed = config()
    changed["policies"][1]["custom_task"]["description"] = "Answer billing questions only."
    b.write_text(json.dumps(changed))
    proc = run_cli("router", "diff", a, b, "--exit-code")
    assert proc.returncode == 1, proc.stderr
    assert "task customer-qa:" in proc.stdout and "{+billing questions only.+}" in proc.stdout
    proc = run_cli("router", "diff", a, a, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["changed"] is False


# -- argument checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, where", [
    ({"target": "local", "candidate": "c.json", "against": None}, "--candidate"),
    ({"target": "do", "candidate": "c.json", "against": None, "router": "r.json"}, "--router"),
    ({"target": "do", "candidate": "c.json", "against": None, "model": "router:x"}, "--model"),
    ({"target": "do", "candidate": None, "against": "deployed"}, "--against"),
    ({"target": "do", "candidate": "c.json", "against": "live"}, "--against"),
    ({"target": "do", "candidate": "c.json", "against": None, "ready_timeout": 0}, "--ready-timeout"),
])
def test_candidate_option_combinations_that_mean_nothing_are_refused(kwargs, where):
    from evalkit.run import check_candidate_options

    with pytest.raises(UsageError) as info:
        check_candidate_options(**kwargs)
    assert info.value.where == where


def test_candidate_on_the_local_target_is_exit_2_before_anything_runs(tmp_path: Path):
    from conftest import write_suite

    folder = write_suite(tmp_path / "s", [{"id": "a", "prompt": "hi", "expected_route": "classify"}])
    proc = run_cli("run", folder, "--candidate", folder / "router.json", "--out", tmp_path / "o", "-q")
    assert proc.returncode == 2
    assert "--target do" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_router_command_without_token_is_exit_2(tmp_path: Path):
    env = cli_env(EVALKIT_DO_API_URL="http://127.0.0.1:9")
    env.pop("DIGITALOCEAN_TOKEN", None)
    proc = run_cli("router", "list", env=env)
    assert proc.returncode == 2
    assert "DIGITALOCEAN_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


# -- router diff against what the control plane gives back ------------------------------------

def test_router_diff_of_a_deployed_router_against_its_source_file_is_no_change(tmp_path: Path):
    """A router created from router.json, saved back with `router get --body` (or `--json`), is the
    same router: regions, uuids and timestamps the server filled in are no change."""
    from evalkit.emulator import LocalRouter, TfidfClassifier, create_app

    source = tmp_path / "router.json"
    source.write_text(json.dumps({k: v for k, v in TUTORIAL_ROUTER.items() if k != "regions"}))
    with LocalRouter(create_app([], classifier=TfidfClassifier())) as server:
        env = cli_env(DIGITALOCEAN_TOKEN="dop_v1_test-token", EVALKIT_DO_API_URL=server.root_url)
        created = run_cli("router", "create", source, env=env)
        assert created.returncode == 0, created.stderr
        body = run_cli("router", "get", TUTORIAL_ROUTER["name"], "--body", env=env)
        record = run_cli("router", "get", TUTORIAL_ROUTER["name"], "--json", env=env)
    assert body.returncode == 0 and record.returncode == 0, body.stderr + record.stderr
    deployed, full = tmp_path / "deployed.json", tmp_path / "record.json"
    deployed.write_text(body.stdout)
    full.write_text(record.stdout)
    assert "regions" in json.loads(body.stdout)  # the server filled it in
    assert {"uuid", "created_at", "updated_at"} <= set(json.loads(record.stdout)["model_router"])
    for saved in (deployed, full):
        for a, b in ((saved, source), (source, saved)):
            proc = run_cli("router", "diff", a, b, "--exit-code")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "no changes" in proc.stdout and "regions: [" not in proc.stdout
    as_json = json.loads(run_cli("router", "diff", deployed, source, "--json").stdout)
    assert as_json["changed"] is False and as_json["ignored_server_defaults"] == ["regions"]

    # a real change still counts, and regions given on both sides are still compared
    edited = json.loads(source.read_text())
    edited["policies"][0]["models"] = ["llama3.3-70b-instruct"]
    edited["regions"] = ["tor1"]
    changed = tmp_path / "edited.json"
    changed.write_text(json.dumps(edited))
    proc = run_cli("router", "diff", deployed, changed, "--exit-code")
    assert proc.returncode == 1
    assert "task classify:" in proc.stdout and "regions: ['all'] -> ['tor1']" in proc.stdout
    # a field that is not the server's is still an error naming it
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**json.loads(source.read_text()), "colour": "blue"}))
    proc = run_cli("router", "diff", unknown, source)
    assert proc.returncode == 2 and "colour" in proc.stderr


def test_router_diff_prints_the_hash_a_run_manifest_records_for_the_same_file(tmp_path: Path):
    """One hash per router config: `router diff X X`, `router diff X deployed` and a run of X all
    name X by the same hash, even when the deployed copy has regions the server filled in."""
    from conftest import write_suite
    from evalkit.emulator import LocalRouter, TfidfClassifier, create_app
    from tests.fake_openai import FakeOpenAI, Reply

    body = {k: v for k, v in TUTORIAL_ROUTER.items() if k != "regions"}
    suite = write_suite(tmp_path / "mini", [{"id": "c1", "prompt": "Classify this customer support message: "
                                             "I was billed twice.", "expected_route": "classify"}], router=body)
    source = suite / "router.json"
    with FakeOpenAI(Reply(content="upstream text")) as fake:
        ran = run_cli("run", suite, "--classifier", "tfidf", "--out", tmp_path / "out", "--quiet",
                      "--upstream", f"*={fake.base_url}", timeout=300)
    assert ran.returncode == 0, ran.stderr
    [run_dir] = list((tmp_path / "out" / "mini").iterdir())
    manifest_hash = json.loads((run_dir / "manifest.json").read_text())["router"]["hash"]

    with LocalRouter(create_app([], classifier=TfidfClassifier())) as server:
        env = cli_env(DIGITALOCEAN_TOKEN="dop_v1_test-token", EVALKIT_DO_API_URL=server.root_url)
        assert run_cli("router", "create", source, env=env).returncode == 0
        got = run_cli("router", "get", TUTORIAL_ROUTER["name"], "--body", env=env)
    deployed = tmp_path / "deployed.json"
    deployed.write_text(got.stdout)
    deployed_hash = parse_router_config(got.stdout).hash  # what a run of deployed.json would record

    same = run_cli("router", "diff", source, source)
    assert same.returncode == 0 and f", {manifest_hash})" in same.stdout, same.stdout
    proc = run_cli("router", "diff", source, deployed, "--exit-code")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no changes" in proc.stdout and f"({manifest_hash})" in proc.stdout, proc.stdout
    assert f"({deployed_hash})" in proc.stdout and "regions" in proc.stdout
    as_json = json.loads(run_cli("router", "diff", source, deployed, "--json").stdout)
    assert (as_json["changed"], as_json["a_hash"], as_json["b_hash"]) == (False, manifest_hash, deployed_hash)
