"""Shared fixtures: the CLI as a subprocess, small suites written into tmp_path, the local router."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TUTORIAL_ROUTER: dict[str, Any] = {
    "name": "cost-governance-demo",
    "description": "Three-path router of the DigitalOcean cost-governance tutorial",
    "policies": [
        {"custom_task": {"name": "classify", "description": "Classify a customer support message into exactly one of the following categories: billing, bug, how-to, or account. The message is a short text from a support ticket."},
         "models": ["openai-gpt-oss-20b", "llama3.3-70b-instruct"], "selection_policy": {"prefer": "cheapest"}},
        {"custom_task": {"name": "customer-qa", "description": "Answer a customer-facing question about the product, account settings, subscription plans, or service behavior. The question may be part of a multi-turn conversation with a user."},
         "models": ["anthropic-claude-4.6-sonnet", "llama3.3-70b-instruct"]},
        {"custom_task": {"name": "reasoning", "description": "Perform complex multi-step reasoning, mathematical analysis, or architectural evaluation that requires tracing through multiple steps and producing a detailed explanation with intermediate conclusions."},
         "models": ["openai-gpt-5"]},
    ],
    "fallback_models": ["llama3.3-70b-instruct"],
}


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m evalkit ARGS`` in a subprocess (the real entry point, real exit codes)."""
    return subprocess.run([sys.executable, "-m", "evalkit", *map(str, args)], cwd=cwd or ROOT,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout, input=input)


def write_suite(folder: Path, cases: list[dict[str, Any]] | str, *, router: dict[str, Any] | None = None,
                suite_yaml: str | None = None, cases_name: str = "cases.jsonl") -> Path:
    """A suite folder with router.json, suite.yaml and the given cases (list of dicts, or raw text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "router.json").write_text(json.dumps(router or TUTORIAL_ROUTER, indent=2))
    (folder / "suite.yaml").write_text(suite_yaml or f"name: {folder.name}\nrouter: router.json\ncases: {cases_name}\n")
    text = cases if isinstance(cases, str) else "".join(json.dumps(c) + "\n" for c in cases)
    (folder / cases_name).write_text(text)
    return folder


@pytest.fixture
def tutorial_router() -> dict[str, Any]:
    return json.loads(json.dumps(TUTORIAL_ROUTER))
