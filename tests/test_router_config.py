"""router_config: the DigitalOcean create body, parsed and validated with JSON-path messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import ConfigError
from evalkit.router_config import load_router_config, parse_router_config

from conftest import ROOT, TUTORIAL_ROUTER, run_cli


def body(**changes):
    data = json.loads(json.dumps(TUTORIAL_ROUTER))
    data.update(changes)
    return data


def test_tutorial_router_parses_into_typed_tasks():
    cfg = parse_router_config(body())
    assert cfg.name == "cost-governance-demo"
    assert cfg.task_names == ["classify", "customer-qa", "reasoning"]
    assert cfg.labels == ["classify", "customer-qa", "reasoning", "fallback"]
    assert cfg.task("classify").prefer == "cheapest"
    assert cfg.task("customer-qa").prefer is None  # no selection_policy: manual ranking
    assert cfg.task("reasoning").models == ["openai-gpt-5"]
    assert cfg.fallback_models == ["llama3.3-70b-instruct"]


def test_bundled_router_json_is_the_tutorial_router():
    cfg = load_router_config(ROOT / "suites" / "saas-support" / "router.json")
    assert cfg.to_body()["policies"] == TUTORIAL_ROUTER["policies"]
    assert cfg.fallback_models == TUTORIAL_ROUTER["fallback_models"]


def test_hash_changes_with_a_description_and_not_with_key_order():
    a = parse_router_config(body())
    reordered = parse_router_config(json.dumps(dict(reversed(list(body().items())))))
    changed = body()
    changed["policies"][0]["custom_task"]["description"] += " Output the label only."
    assert a.hash == reordered.hash
    assert a.hash != parse_router_config(changed).hash


def _policy_change(index, **changes):
    data = body()
    data["policies"][index].update(changes)
    return data


def _without(key):
    data = body()
    del data[key]
    return data


def _drop_policy_key(index, key):
    data = body()
    del data["policies"][index][key]
    return data


CASES = [
    ("invalid json", '{"name": "x", "policies": [', r"invalid JSON", r":1:"),
    ("missing name", _without("name"), r"missing required field 'name'", r"at name"),
    ("missing policies", _without("policies"), r"missing required field 'policies'", r"at policies"),
    ("bad name", body(name="Cost_Governance"), r"lowercase a-z, 0-9", r"at name"),
    ("neither task", _drop_policy_key(1, "custom_task"), r"neither 'custom_task' nor 'task_slug'", r"at policies\[1\]"),
    ("empty pool", _policy_change(0, models=[]), r"model list is empty", r"at policies\[0\]\.models"),
    ("4 models", _policy_change(2, models=["a", "b", "c", "d"]), r"at most 3 models, found 4", r"policies\[2\]\.models"),
    ("missing fallback", _without("fallback_models"), r"missing required field 'fallback_models'", r"at fallback_models"),
    ("empty fallback", body(fallback_models=[]), r"model list is empty", r"at fallback_models"),
    ("bad prefer", _policy_change(0, selection_policy={"prefer": "smartest"}), r"'cheapest' or 'fastest'",
     r"policies\[0\]\.selection_policy\.prefer"),
    ("duplicate task", _policy_change(1, custom_task={"name": "classify", "description": "x y z"}),
     r"duplicate task name 'classify'", r"policies\[1\]\.custom_task\.name"),
    ("task named fallback", _policy_change(2, custom_task={"name": "fallback", "description": "x"}),
     r"may not be named 'fallback'", r"policies\[2\]\.custom_task\.name"),
]


@pytest.mark.parametrize("label,data,message,path", CASES, ids=[c[0] for c in CASES])
def test_invalid_configs_name_the_json_path(label, data, message, path):
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ConfigError, match=message) as info:
        parse_router_config(text, source="router.json")
    assert "router.json" in str(info.value)
    import re
    assert re.search(path, str(info.value)), str(info.value)
    assert "fix:" in str(info.value)


@pytest.mark.parametrize("label,data,message,path", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_cli_rejects_bad_config_with_exit_2_and_no_traceback(tmp_path: Path, label, data, message, path):
    suite = tmp_path / "s"
    suite.mkdir()
    (suite / "router.json").write_text(data if isinstance(data, str) else json.dumps(data))
    (suite / "suite.yaml").write_text("name: s\nrouter: router.json\ncases: cases.jsonl\n")
    (suite / "cases.jsonl").write_text('{"id": "a", "prompt": "hi", "expected_route": "fallback"}\n')
    proc = run_cli("run", suite, "--out", tmp_path / "out", "-q")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "router.json" in proc.stderr
    assert not (tmp_path / "out").exists()
