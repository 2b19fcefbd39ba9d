"""The documented GitHub Actions workflows: valid YAML, valid shell, and the run step behaves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cli_relay import CliRelay
from tests.conftest import ROOT, cli_env, run_cli
from tests.run_helpers import slice_suite, worse_router

WORKFLOWS = ROOT / "examples" / "github-actions"


def steps(path: Path) -> list[dict]:
    doc = yaml.safe_load(path.read_text())
    return [s for job in doc["jobs"].values() for s in job["steps"]]


@pytest.mark.parametrize("name", ["evalkit.yml", "evalkit-sharded.yml"])
def test_workflow_scripts_are_valid_bash(name: str):
    scripts = [s["run"] for s in steps(WORKFLOWS / name) if "run" in s]
    assert scripts
    for script in scripts:
        check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, (script, check.stderr)


def test_pr_workflow_runs_on_pull_requests_and_keeps_main_as_baseline():
    doc = yaml.safe_load((WORKFLOWS / "evalkit.yml").read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    uses = [s.get("uses", "") for s in steps(WORKFLOWS / "evalkit.yml")]
    assert sum(u.startswith("actions/upload-artifact") for u in uses) == 2


def run_step(script: str, tmp_path: Path, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Execute a workflow step's script as the runner would (bash -e, GITHUB_OUTPUT file).

    The shell runs for real; the ``evalkit`` it calls is relayed into this process (tests/cli_relay.py),
    so the step's runs share the session's embedding model instead of loading it in a new process.
    """
    output = tmp_path / "github_output"
    output.write_text("")
    with CliRelay(tmp_path / "bin") as relay:
        full = cli_env(**env, GITHUB_OUTPUT=str(output), GITHUB_ENV=str(tmp_path / "github_env"),
                       PATH=f"{relay.shim.parent}{os.pathsep}{os.environ['PATH']}")
        proc = relay.run(["bash", "-e", "-c", script], cwd=tmp_path, env=full, timeout=600)
        assert relay.calls and all(call[0] == "run" for call in relay.calls), relay.calls
    values = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc.returncode, values


@pytest.mark.slow
def test_run_step_compares_with_main_and_reports_a_regression(tmp_path: Path):
    (script,) = [s["run"] for s in steps(WORKFLOWS / "evalkit.yml") if s.get("id") == "run"]
    counts = {"classify": 30, "customer-qa": 5, "reasoning": 5, "fallback": 5}
    suite = slice_suite(tmp_path / "suite", per_task=counts)
    main_dir = tmp_path / "main"
    main_dir.mkdir()
    code, out = run_step(script, main_dir, {"SUITE": str(suite)})
    assert code == 0 and out["status"] == "0"
    baseline = main_dir / out["run_dir"]
    assert (baseline / "report.html").is_file()
    # The pull request rewrites the classify description (a worse router).
    (suite / "router.json").write_text(json.dumps(worse_router()))
    pr_dir = tmp_path / "pr"
    pr_dir.mkdir()
    code, out = run_step(script, pr_dir, {"SUITE": str(suite), "BASELINE": str(baseline)})
    assert code == 0, "exit 1 is recorded, not raised, so the reports still get uploaded"
    assert out["status"] == "1"
    run_dir = pr_dir / out["run_dir"]
    # `evalkit run --baseline` compared in one step: the comparison sits beside the run's reports.
    for name in ("compare.html", "diff.json", "compare.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    diff = json.loads((run_dir / "diff.json").read_text())
    assert diff["verdict"]["significant_regression"] and diff["regressed"]
    assert diff["a"]["run_id"] == baseline.name and diff["config"]["tasks"][0]["task"] == "classify"
    summary = json.loads((run_dir / "summary.json").read_text())
    base = json.loads((baseline / "summary.json").read_text())
    (gate,) = summary["gates"]
    assert gate["expr"] == "accuracy >= baseline - 0.02" and gate["passed"] is False
    assert gate["baseline"] == pytest.approx(base["accuracy"])
    assert gate["threshold"] == pytest.approx(base["accuracy"] - 0.02)
    # Re-rendering re-reads the baseline run named in the manifest and keeps the verdict.
    again = run_cli("report", run_dir)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["gates"] == summary["gates"]
