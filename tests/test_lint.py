"""evalkit/lint.py and `evalkit lint`: warnings on valid configs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalkit.cost import Price
from evalkit.lint import blended_price, lint_router
from evalkit.router_config import parse_router_config
from tests.conftest import TUTORIAL_ROUTER, run_cli

LONG = "Answer a customer question about the product, its plans and its settings, in a short prose reply."
OTHER = "Classify a support ticket into exactly one category label: billing, bug, how-to or account."


def config(*tasks: tuple[str, str], fallback: str = "cheap", pool: str = "cheap") -> Any:
    return parse_router_config({
        "name": "r",
        "policies": [{"custom_task": {"name": n, "description": d}, "models": [pool]} for n, d in tasks],
        "fallback_models": [fallback],
    })


def codes(findings: list[Any]) -> list[str]:
    return [f.code for f in findings if f.level == "warning"]


def test_tutorial_router_has_no_warnings() -> None:
    from evalkit.cost import load_prices

    assert codes(lint_router(parse_router_config(TUTORIAL_ROUTER), load_prices())) == []


def test_description_under_12_words_is_a_warning() -> None:
    eleven = "one two three four five six seven eight nine ten eleven"
    findings = lint_router(config(("a", eleven), ("b", LONG)))
    assert codes(findings) == ["short-description"]
    assert findings[0].where == "policies[0].custom_task.description"
    assert "11-word" in findings[0].message
    twelve = eleven + " twelve"
    assert codes(lint_router(config(("a", twelve), ("b", LONG)))) == []


def test_duplicate_descriptions_ignore_case_and_punctuation() -> None:
    findings = lint_router(config(("a", LONG), ("b", LONG.upper().replace(",", " ;"))))
    assert codes(findings) == ["duplicate-description"]
    assert findings[0].where == "policies[1].custom_task.description"


def test_near_identical_descriptions_are_a_warning() -> None:
    reworded = "Answer customer questions about the product, its settings and its plans, in a short prose reply."
    assert codes(lint_router(config(("a", LONG), ("b", reworded)))) == ["near-identical-descriptions"]
    assert codes(lint_router(config(("a", LONG), ("b", OTHER)))) == []


def test_task_name_must_be_a_slug() -> None:
    for name in ("Customer QA", "customer qa", "Billing", "-x", "a--b"):
        assert "task-name-not-slug" in codes(lint_router(config((name, LONG), ("b", OTHER)))), name
    for name in ("customer-qa", "credit_cards", "task2"):
        assert "task-name-not-slug" not in codes(lint_router(config((name, LONG), ("b", OTHER)))), name


def test_fallback_costing_more_than_the_pools_is_a_warning() -> None:
    prices = {"cheap": Price(1.0, 2.0), "dear": Price(10.0, 30.0)}
    assert blended_price(prices["cheap"]) == (3 * 1.0 + 2.0) / 4
    findings = lint_router(config(("a", LONG), ("b", OTHER), fallback="dear"), prices)
    assert codes(findings) == ["fallback-costs-more"]
    assert findings[0].where == "fallback_models[0]"
    assert codes(lint_router(config(("a", LONG), ("b", OTHER), fallback="cheap"), prices)) == []
    # A fallback as dear as the dearest pool model does not cost more.
    assert codes(lint_router(config(("a", LONG), ("b", OTHER), fallback="dear", pool="dear"), prices)) == []


def test_unpriced_models_are_info_not_warnings() -> None:
    findings = lint_router(config(("a", LONG), ("b", OTHER), fallback="mystery"), {"cheap": Price(1, 1)})
    assert codes(findings) == []
    assert [(f.level, f.code, f.where) for f in findings] == [("info", "unpriced-model", "mystery")]


# --- the command -----------------------------------------------------------------------------


def write(tmp_path: Path, body: Any, name: str = "router.json") -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_lint_exit_codes(tmp_path: Path) -> None:
    clean = write(tmp_path, TUTORIAL_ROUTER, "clean.json")
    proc = run_cli("lint", clean, "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The verdict is the command's result: on stdout, where `evalkit lint X > out.txt` keeps it.
    assert proc.stdout.strip().endswith(f"{clean}: valid (3 tasks: classify, customer-qa, reasoning); 0 warning(s)")
    assert proc.stderr == ""
    warned = json.loads(json.dumps(TUTORIAL_ROUTER))
    warned["policies"][0]["custom_task"]["description"] = "general questions"
    warned_path = write(tmp_path, warned, "warned.json")
    proc = run_cli("lint", warned_path)
    assert proc.returncode == 0
    assert "short-description" in proc.stdout and "policies[0].custom_task.description" in proc.stdout
    assert run_cli("lint", warned_path, "--strict").returncode == 1
    broken = dict(TUTORIAL_ROUTER, policies=[dict(TUTORIAL_ROUTER["policies"][0], models=["a", "b", "c", "d"])])
    proc = run_cli("lint", write(tmp_path, broken, "broken.json"))
    assert proc.returncode == 2
    assert "policies[0].models" in proc.stderr and "at most 3" in proc.stderr and "Traceback" not in proc.stderr


def test_lint_refuses_task_names_a_header_cannot_carry(tmp_path: Path) -> None:
    # The route header carries the task name: beyond Latin-1 the local router could not send it,
    # and Latin-1 letters are read differently by different HTTP clients; all problems at once.
    bad = json.loads(json.dumps(TUTORIAL_ROUTER))
    bad["policies"][0]["custom_task"]["name"] = "客户问答"
    bad["policies"][2]["custom_task"]["name"] = "razonamiento-lógico"
    proc = run_cli("lint", write(tmp_path, bad))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "2 problems" in proc.stderr and "Traceback" not in proc.stderr
    for where, found in (("policies[0].custom_task.name", "客户问答"), ("policies[2].custom_task.name", "ó")):
        assert f"at {where}: task name has characters outside printable ASCII" in proc.stderr
        assert found in proc.stderr
    assert "rename it with ASCII letters, digits" in proc.stderr
    assert 'e.g. "razonamiento-logico"' in proc.stderr
    assert "valid" not in proc.stdout


def test_lint_json(tmp_path: Path) -> None:
    warned = json.loads(json.dumps(TUTORIAL_ROUTER))
    warned["policies"][1]["custom_task"]["name"] = "Customer QA"
    proc = run_cli("lint", write(tmp_path, warned), "--json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert proc.stderr == ""  # the one JSON document is all there is, on stdout
    assert data["valid"] is True and data["n_warnings"] == 1
    assert data["findings"][0]["code"] == "task-name-not-slug"
    proc = run_cli("lint", write(tmp_path, "{\"name\": \"Bad Name\"}", "bad.json"), "--json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["valid"] is False and data["findings"][0]["level"] == "error"
    assert "name" in data["findings"][0]["where"]


def test_lint_prices_option(tmp_path: Path) -> None:
    dear_fallback = dict(TUTORIAL_ROUTER, fallback_models=["anthropic-claude-opus-4.7"])
    path = write(tmp_path, dear_fallback)
    # Packaged catalog: opus blended (3*5 + 25)/4 = 10.0 > sonnet (3*3 + 15)/4 = 6.0, the dearest pool model.
    proc = run_cli("lint", path, "--strict")
    assert proc.returncode == 1
    assert "fallback-costs-more" in proc.stdout and "fallback_models[0]" in proc.stdout
    catalog = tmp_path / "prices.yaml"
    catalog.write_text("models:\n  openai-gpt-oss-20b: {input: 0.05, output: 0.45}\n"
                       "  llama3.3-70b-instruct: {input: 0.65, output: 0.65}\n"
                       "  anthropic-claude-4.6-sonnet: {input: 3.0, output: 15.0}\n"
                       "  anthropic-claude-opus-4.7: {input: 1.0, output: 1.0}\n"
                       "  openai-gpt-5: {input: 1.25, output: 10.0}\n")
    assert run_cli("lint", path, "--prices", catalog, "--strict").returncode == 0
    proc = run_cli("lint", path, "--prices", tmp_path / "missing.yaml")
    assert proc.returncode == 2 and "price file not found" in proc.stderr
