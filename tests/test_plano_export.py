"""`evalkit router export --format plano`: the router as a Plano configuration (schema v0.4.0),
checked by parsing the YAML against the router.json it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT, TUTORIAL_ROUTER, cli_env, run_cli

SECRET = "sk-do-plano-export-secret-0123456789"


def export(router_file: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str, str]:
    proc = run_cli("router", "export", router_file, "--format", "plano", *args,
                   env=env or cli_env(MODEL_ACCESS_KEY=SECRET), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    return yaml.safe_load(proc.stdout), proc.stdout, proc.stderr


def check_against(config: dict[str, Any], body: dict[str, Any], *, key_env: str = "MODEL_ACCESS_KEY") -> None:
    """Every task's name, description, pool and policy; every model declared once; the default model."""
    assert config["version"] == "v0.4.0"
    assert [p["name"] for p in config["routing_preferences"]] == [p["custom_task"]["name"] for p in body["policies"]]
    for pref, policy in zip(config["routing_preferences"], body["policies"]):
        assert pref["description"] == policy["custom_task"]["description"]
        assert pref["models"] == [f"digitalocean/{m}" for m in policy["models"]]
        prefer = (policy.get("selection_policy") or {}).get("prefer")
        assert pref.get("selection_policy") == ({"prefer": prefer} if prefer else None)
    every = {m for p in body["policies"] for m in p["models"]} | set(body["fallback_models"])
    providers = config["model_providers"]
    assert sorted(p["model"] for p in providers) == sorted(f"digitalocean/{m}" for m in every)
    assert all(p["access_key"] == f"${key_env}" for p in providers)
    assert [p["model"] for p in providers if p.get("default")] == [f"digitalocean/{body['fallback_models'][0]}"]
    for pref in config["routing_preferences"]:  # Plano: routed models must be declared providers
        assert set(pref["models"]) <= {p["model"] for p in providers}
    listener, = config["listeners"]
    assert listener["type"] == "model" and isinstance(listener["port"], int)


@pytest.mark.parametrize("router_file", ["suites/saas-support/router.json", "suites/saas-support/router.improved.json",
                                         "suites/clinc150-domains/router.json"])
def test_the_bundled_routers_export_with_every_task(router_file: str) -> None:
    body = json.loads((ROOT / router_file).read_text())
    config, text, _ = export(ROOT / router_file)
    check_against(config, body)
    cheapest = any((p.get("selection_policy") or {}).get("prefer") == "cheapest" for p in body["policies"])
    assert ("model_metrics_sources" in config) == cheapest
    if cheapest:
        assert config["model_metrics_sources"] == [{"type": "cost", "provider": "digitalocean"}]
    assert "POST /routing/v1/chat/completions" in text  # where Plano reports the route


def test_awkward_names_and_descriptions_survive_and_cannot_break_the_document(tmp_path: Path) -> None:
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    body["policies"][0]["custom_task"] = {"name": "a: version: evil # x", "description": "- starts like a list: 'q' \"dq\" # not a comment\nline two ünïcode"}
    body["policies"][1]["custom_task"]["description"] = "yes"
    body["policies"][0]["selection_policy"] = {"prefer": "fastest"}  # its name goes into a header comment
    body["policies"][2]["selection_policy"] = {"prefer": "fastest"}
    body["fallback_models"] = ["llama3.3-70b-instruct", "openai-gpt-oss-20b"]
    router = tmp_path / "router.json"
    router.write_text(json.dumps(body))
    config, text, stderr = export(router, "--api-key-env", "DO_KEY", "--port", "12500")
    check_against(config, body, key_env="DO_KEY")
    assert config["listeners"][0]["port"] == 12500
    assert config["routing_preferences"][1]["description"] == "yes"  # a string, not a YAML boolean
    assert "fastest" in stderr and "latency source" in stderr
    assert "openai-gpt-oss-20b" in stderr and "not tried in order" in stderr
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert text.splitlines()[: len(comments)] == comments  # one block of comments, then the document
    assert any("task 'a: version: evil # x' prefers fastest" in c for c in comments)


def test_a_preset_task_is_exported_with_a_note(tmp_path: Path) -> None:
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    body["policies"].append({"task_slug": "code-generation", "models": ["openai-gpt-5"]})
    router = tmp_path / "router.json"
    router.write_text(json.dumps(body))
    config, _, stderr = export(router)
    pref = config["routing_preferences"][-1]
    assert (pref["name"], pref["description"], pref["models"]) == ("code-generation", "code generation",
                                                                   ["digitalocean/openai-gpt-5"])
    assert "task 'code-generation' is a DigitalOcean preset" in stderr


def test_out_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "plano_config.yaml"
    target.write_text("old contents\n")
    proc = run_cli("router", "export", ROOT / "suites/saas-support/router.json", "--format", "plano",
                   "--out", target, env=cli_env(MODEL_ACCESS_KEY=SECRET), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    check_against(yaml.safe_load(target.read_text()), json.loads((ROOT / "suites/saas-support/router.json").read_text()))
    assert SECRET not in target.read_text()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("args, message", [
    (["--format", "do"], "unknown export format 'do'"),
    (["--format", "plano", "--api-key-env", "not a name"], "not an environment variable name"),
    (["--format", "plano", "--port", "0"], "the port must be between 1 and 65535"),
    ([], "--format"),
])
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    proc = run_cli("router", "export", ROOT / "suites/saas-support/router.json", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_bad_router_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    body = json.loads(json.dumps(TUTORIAL_ROUTER))
    del body["policies"][1]["custom_task"]["description"]
    router = tmp_path / "router.json"
    router.write_text(json.dumps(body))
    proc = run_cli("router", "export", router, "--format", "plano", timeout=120)
    assert proc.returncode == 2
    assert "policies[1].custom_task.description" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_self_hosted_routing_model_is_wired_as_plano_documents_it() -> None:
    router = ROOT / "suites/saas-support/router.json"
    config, text, _ = export(router, "--routing-model", "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M",
                             "--routing-model-url", "http://localhost:11434")
    assert config["overrides"] == {"llm_routing_model": "plano/hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"}
    assert config["model_providers"][0] == {"model": "plano/hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M",
                                            "base_url": "http://localhost:11434"}
    body = json.loads(router.read_text())
    config["model_providers"] = config["model_providers"][1:]
    check_against(config, body)  # the router's own models are unchanged
    plain, _, _ = export(router)
    assert "overrides" not in plain


@pytest.mark.parametrize("args, message", [
    (["--routing-model", "arch"], "needs both its name and its URL"),
    (["--routing-model-url", "http://localhost:11434"], "needs both its name and its URL"),
    (["--routing-model", "arch", "--routing-model-url", "localhost:11434"], "not an http(s) URL"),
])
def test_a_routing_model_needs_a_name_and_a_url(args: list[str], message: str) -> None:
    proc = run_cli("router", "export", ROOT / "suites/saas-support/router.json", "--format", "plano", *args,
                   timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""
